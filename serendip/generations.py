"""What the demo does between its two generations of traffic: the served log is read back and checked
off-policy, the model is retrained on it, the new model goes live, and both models are scored offline.

Generation 0 serves the A/B arms with model 0. Then:

1. ``drain_log``: wait until every slate of generation 0 has left its reward window and sits in the
   served log (``<state_dir>/impressions``), so what follows reads the whole generation;
2. ``off_policy``: the sweep's candidate policies, and each served arm's self-check (its estimate on
   the log against its own on-policy value), with ``recsys.ope.served.evaluate_served``;
3. ``retrain``: ``serendip retrain`` (``training.config.RetrainConfig``): the shop's history plus the
   served log, warm-started from model 0, as model 1;
4. ``redeploy``: ``serendip deploy`` (``serving.app.deploy_model``): only the scorer's ``user_config``
   changes, so the bandit and its state keep running;
5. ``held_out_ndcg``: NDCG@10 of both models on the same held-out shoppers and positives.

Generation 1 then serves the same arms with model 1 to the same shoppers' world.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from recsys.policies import Arm

OPE_ESTIMATORS = ("ips", "snips", "dr", "sndr")
"""The estimators that apply to a served log (``recsys.ope.served.ESTIMATORS``)."""


@dataclass
class Update:
    """What happened between the generations, for the report."""

    log: dict
    """Generation 0's served log on disk (``log_footprint``)."""
    ope: pd.DataFrame
    """``evaluate_served``'s table: candidates, and ``arm:NAME`` self-checks with ``online``, ``rel_error``, ``covers``."""
    ope_arms: dict
    """Served arm name -> the policy spec it was evaluated as."""
    candidates: list
    """The sweep's trials evaluated off-policy (policy specs)."""
    retrained: Any
    """training.trainer.TrainResult of model 1."""
    redeploy: dict
    """``redeploy``: model versions before and after, whether the bandit restarted."""
    ndcg: dict
    """``held_out_ndcg``: model0/model1/popularity NDCG@10 and Recall@10, users and positives."""


def drain_log(url: str, timeout_s: float) -> dict:
    """Wait until no slate is pending and no logged row is waiting for its Parquet part; ``GET /stats``."""
    import httpx

    deadline = time.monotonic() + timeout_s
    while True:
        stats = httpx.get(f"{url}/stats", timeout=30).json()
        if stats["pending_impressions"] == 0 and stats["log_rows_waiting"] == 0:
            return stats
        if time.monotonic() > deadline:
            raise TimeoutError(f"the served log did not drain in {timeout_s:g} s: {stats['pending_impressions']} "
                               f"slates pending, {stats['log_rows_waiting']} rows waiting")
        time.sleep(0.5)


def log_footprint(log_dir: Path) -> dict:
    """Bytes on disk of the served log's impression and decision parts, per slate (= per /recommend)."""
    from recsys.data.served_log import DECISIONS_DIR

    log_dir = Path(log_dir)
    decisions = sum(p.stat().st_size for p in (log_dir / DECISIONS_DIR).rglob("part-*.parquet"))
    total = sum(p.stat().st_size for p in log_dir.rglob("part-*.parquet"))
    slates = sum(pd.read_parquet(p, columns=["impression_id"]).shape[0]
                 for p in (log_dir / DECISIONS_DIR).rglob("part-*.parquet"))
    return {"slates": slates, "impression_bytes": total - decisions, "decision_bytes": decisions,
            "bytes_per_slate": total / slates if slates else float("nan")}


def candidate_specs(table: pd.DataFrame, served: set[str], top: int) -> list[str]:
    """The sweep's ``top`` best finished trials that no arm served, as OPE policy specs (``name:k=v,...``)."""
    specs = []
    for row in table[table["status"] == "ok"].itertuples():
        params = json.loads(row.params) if isinstance(row.params, str) else dict(row.params or {})
        spec = Arm(row.policy, params).spec(served=False)
        if spec not in served and spec not in specs:
            specs.append(spec)
        if len(specs) == top:
            break
    return specs


def off_policy(log_dir: Path, model: Path, arms: dict[str, str], candidates: list[str], window_s: float,
               n_boot: int, seed: int) -> pd.DataFrame:
    """``evaluate_served`` on the served log: each candidate learning from every slate, each served arm
    (``arms``: name -> spec) learning from its own, on serving's reward-window clock."""
    from recsys.data.served_log import read_served_log
    from recsys.ope.served import ItemVectors, evaluate_served

    impressions, decisions = read_served_log(log_dir)
    catalog = Path(log_dir).parent / "catalog"
    vectors = ItemVectors.load(model, catalog if catalog.is_dir() else None)
    return evaluate_served(impressions, decisions, tuple(candidates), arms, vectors, OPE_ESTIMATORS,
                           n_boot=n_boot, seed=seed, window_s=window_s)


def retrain(model: Path, log_dir: Path, shop: Path, out: Path, workers: int, max_steps: int, storage: Path,
            seed: int):
    """``serendip retrain``: model 0's recipe on the shop plus its served log, warm-started; the TrainResult
    and the run's TrainConfig. The workers share the CPUs the running Serve app leaves free."""
    import ray

    from training.config import RetrainConfig
    from training.trainer import fit

    free = ray.available_resources().get("CPU", 0.0)
    per_worker = min(1.0, np.floor(20 * free / workers) / 20)  # Ray reserves CPUs in steps; 0.05 is plenty fine
    if per_worker < 0.1:
        raise RuntimeError(f"retrain: {free:g} CPUs free beside the Serve app for {workers} workers; pass --workers 1")
    cfg = RetrainConfig(model=model, logs=log_dir, data=shop, out=out, catalog=log_dir.parent / "catalog", epochs=1,
                        max_steps=max_steps, workers=workers, cpus_per_worker=float(per_worker),
                        storage_path=str(storage), seed=seed, log_every=max(1, max_steps // 10))
    return fit(cfg.train_config()), cfg.train_config()


def redeploy(url: str, model: Path, timeout_s: float = 300.0) -> dict:
    """``serendip deploy --model``: the scorers switch live; what ``/stats`` says before and after."""
    import httpx

    from serving.app import DeployConfig, dashboard_url, deploy_model
    from serving.config import ServeConfig

    before = httpx.get(f"{url}/stats", timeout=30).json()
    deploy_model(DeployConfig(model=model, app_name=ServeConfig.app_name, dashboard=dashboard_url(),
                              timeout_s=timeout_s))
    after = httpx.get(f"{url}/stats", timeout=30).json()
    return {"model_version_before": before["model_version"], "model_version_after": after["model_version"],
            "bandit_restarted": after["replica_started"] != before["replica_started"],
            "pending_before": before["pending_impressions"], "wal_lsn_before": before["wal_lsn"],
            "wal_lsn_after": after["wal_lsn"]}


def prepared_dir(train_cfg) -> Path:
    """Where a training run wrote its split (``training.prepare``: <storage>/<run name>/prepared)."""
    return Path(train_cfg.storage) / train_cfg.run_name / "prepared"


def held_out_ndcg(models: dict[str, Path], prepared: list[Path], seed: int) -> dict[str, dict]:
    """NDCG@10 (and Recall@10) of each model, and of popularity, on the same held-out shoppers.

    The positives are the test rows of every run's split (neither model trained on them, nor picked a
    checkpoint by them); every model ranks the shop's whole catalog from the same histories (the runs'
    training and validation positives, which are masked), as training's validation does.
    """
    import torch

    from recsys.data.splits import Split
    from recsys.metrics import evaluate_random_split
    from recsys.model import TwoTower, load_item_table
    from recsys.model.scoring import catalog_scorer

    torch.manual_seed(seed)
    keys = ["user_id", "item_id"]
    test = pd.read_parquet(prepared[0] / "test.parquet")
    for p in prepared[1:]:
        test = test.merge(pd.read_parquet(p / "test.parquet")[keys].drop_duplicates(), on=keys)
    seen = pd.concat([pd.read_parquet(p / name) for p in prepared for name in ("history.parquet", "valid.parquet")],
                     ignore_index=True).drop_duplicates(keys)
    split = Split(train=seen, valid=seen.iloc[:0], test=test)
    item_ids = load_item_table(next(iter(models.values()))).item_ids  # model 0's catalog: the shop's products
    out = {"users": int(test["user_id"].nunique()), "positives": len(test)}
    for name, path in models.items():
        scorer = catalog_scorer(TwoTower.from_pretrained(path), load_item_table(path), seen, item_ids)
        report = evaluate_random_split(scorer, split, item_ids, ks=(10,), phase="test")
        out[name] = {"ndcg10": report["model"]["ndcg@10"], "recall10": report["model"]["recall@10"]}
        out["popularity"] = {"ndcg10": report["popularity"]["ndcg@10"], "recall10": report["popularity"]["recall@10"]}
    return out
