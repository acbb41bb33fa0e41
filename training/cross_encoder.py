"""Fine-tune the cross-encoder reranker (``recsys.model.cross_encoder``) with Ray Train.

The same machinery as the two-tower's ``serendip train``: the shop is prepared by
``training.prepare`` (the same split, so a two-tower and a reranker of one seed hold out the same
positives), its examples are a Ray Dataset sharded over ``TorchTrainer`` workers (gloo on CPU, nccl
and bf16 autocast on GPU), every worker talks to a ``training.session.Session``, and rank 0
checkpoints the reranker directory, which is exported to ``out``.

A training pair is (behaviour, candidate, clicked or not): the positives are the training clicks
(with their search query when they followed one), and each click's negatives are products the shop
showed that shopper without a click (the log's views; any shopper's where that one has none, random
products where the log has none), read with the click's own behaviour text. Each step takes
``batch_size`` pairs, a share ``1 / (1 + negatives)`` of them clicks, and minimises binary
cross-entropy on the one logit.

    python -m training.cross_encoder --data data/shop --out models/reranker
"""

from __future__ import annotations

import dataclasses
import json
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from recsys.model.cross_encoder import CrossEncoder, CrossEncoderConfig, behaviour_text
from training.checkpoints import MODEL_DIR
from training.config import TrainConfig, TrainConfigError
from training.loop import lr_factor
from training.run_data import RunData
from training.session import LocalSession, RaySession, Session

TRAIN_STATE = "reranker_state.json"


@dataclass
class RerankerTrainConfig:
    """Fine-tune the cross-encoder reranker on a shop's logs with Ray Train."""

    data: Path = Path("data/shop")
    """Folder with items and events tables (and optionally the queries search log)."""
    out: Path = Path("models/reranker")
    """Reranker directory to write (serve it with --rerank-model)."""
    base: str = ""
    """BERT-family base model ("" = MiniLM-L6)."""
    history_items: int = 5
    """Newest history items the behaviour side reads."""
    max_len: int = 128
    """Tokens of one (behaviour, candidate) pair."""
    epochs: int = 1
    """Passes over the training clicks."""
    max_steps: int = 0
    """Stop after this many optimizer steps in total (0 = no cap)."""
    batch_size: int = 32
    """Pairs per step per worker."""
    negatives: int = 3
    """Non-clicked pairs per clicked pair in a step."""
    lr: float = 3e-5
    """AdamW learning rate (warm-up then linear decay)."""
    warmup: float = 0.1
    """Share of the steps with a linear warm-up."""
    protocol: str = "random"
    """The split (training.config's protocols): the same as the two-tower's keeps their held-out positives alike."""
    workers: int = 1
    """Ray Train workers."""
    gpu: bool = False
    """One GPU per worker (nccl + bf16 autocast)."""
    cpus_per_worker: float = 1.0
    """CPUs Ray reserves per worker."""
    storage_path: str = ""
    """Where Ray Train keeps checkpoints ("" = runs/training)."""
    name: str = ""
    """Run name ("" = reranker-<out folder name>)."""
    seed: int = 0
    """Seed of the split, the sampling and the head's initialisation."""
    timeout_s: int = 600
    """Collective-communication timeout."""
    log_every: int = 50
    """Print a progress line every this many steps."""

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        for name in ("epochs", "batch_size", "workers", "log_every", "timeout_s"):
            if int(getattr(self, name)) < 1:
                raise TrainConfigError(f"--{name.replace('_', '-')}={getattr(self, name)}: must be >= 1")
        for name in ("max_steps", "negatives"):
            if getattr(self, name) < 0:
                raise TrainConfigError(f"--{name}={getattr(self, name)}: must be >= 0")
        if self.batch_size < self.negatives + 1:
            raise TrainConfigError(f"--batch-size={self.batch_size}: must hold one click and its {self.negatives} "
                                   f"negatives; use --batch-size {self.negatives + 1} or more")
        if not self.lr > 0:
            raise TrainConfigError(f"--lr={self.lr}: must be > 0")
        self.model_config()
        self.train_config()

    def model_config(self) -> CrossEncoderConfig:
        """What the reranker reads."""
        return CrossEncoderConfig(base=self.base, history_items=self.history_items, max_len=self.max_len)

    def train_config(self) -> TrainConfig:
        """The two-tower run settings whose ``prepare`` and cluster checks this run reuses."""
        return TrainConfig(data=self.data, out=self.out, base=self.base, protocol=self.protocol, seed=self.seed,
                           workers=self.workers, gpu=self.gpu, cpus_per_worker=self.cpus_per_worker,
                           storage_path=self.storage_path, name=self.name or f"reranker-{self.out.name}",
                           timeout_s=self.timeout_s)

    def to_dict(self) -> dict:
        """JSON-ready dict, what the workers receive."""
        return {**asdict(self), "data": str(self.data), "out": str(self.out)}


@dataclass
class Pairs:
    """One step's pairs."""

    behaviours: list[str]
    candidates: list[str]
    labels: torch.Tensor


@dataclass(frozen=True)
class ShownNotClicked:
    """The log's non-clicks grouped by user: what each shopper was shown and did not click."""

    users: np.ndarray
    """int64 (U,) sorted users with at least one non-click."""
    starts: np.ndarray
    counts: np.ndarray
    items: np.ndarray
    """int64 (N,) item ids, by user."""

    @classmethod
    def of(cls, negatives: pd.DataFrame) -> ShownNotClicked:
        """Group the label-0 examples by user."""
        ordered = negatives.sort_values("user_id", kind="stable")
        users, starts, counts = np.unique(ordered["user_id"].to_numpy(np.int64), return_index=True, return_counts=True)
        return cls(users, starts, counts, ordered["item_id"].to_numpy(np.int64))

    def draw(self, users: np.ndarray, k: int, catalog: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """(len(users), k) items each user was shown without a click; any non-click (or, with none
        logged, any product) for a user who has none."""
        slot = np.clip(np.searchsorted(self.users, users), 0, max(len(self.users) - 1, 0))
        own = (self.users[slot] == users) if len(self.users) else np.zeros(len(users), bool)
        pick = rng.random((len(users), k))
        if not len(self.items):
            return catalog[(pick * len(catalog)).astype(np.int64)]
        start = np.where(own, self.starts[slot], 0)[:, None]
        count = np.where(own, self.counts[slot], len(self.items))[:, None]
        return self.items[start + (pick * count).astype(np.int64)]


def step_pairs(positives: pd.DataFrame, shown: ShownNotClicked, data: RunData, cfg: RerankerTrainConfig,
               rng: np.random.Generator) -> Pairs:
    """A step's clicked rows and, per click, ``cfg.negatives`` products that shopper was shown without a
    click, each paired with the click's own behaviour text (its search query included), so the pairs of
    one behaviour differ only in the candidate."""
    users = positives["user_id"].to_numpy(np.int64)
    rows, _, mask = data.history.gather(users, cfg.history_items, positions=positives["pos"].to_numpy(np.int64),
                                        mode="others")
    query_rows = positives["query_row"].to_numpy(np.int64) if "query_row" in positives else np.full(len(users), -1)
    behaviours = [behaviour_text([data.texts[r] for r in rows[b][mask[b]]],
                                 data.query_texts[query_rows[b]] if query_rows[b] >= 0 else None)
                  for b in range(len(users))]
    negative_items = shown.draw(users, cfg.negatives, data.item_ids, rng)
    items = np.concatenate([positives["item_id"].to_numpy(np.int64), negative_items.ravel()])
    candidates = [data.texts[r] for r in data.rows_of(data.item_ids, items)]
    labels = torch.cat([torch.ones(len(users)), torch.zeros(negative_items.size)])
    return Pairs(behaviours + [b for b in behaviours for _ in range(cfg.negatives)], candidates, labels)


def _session(config: dict, cfg: RerankerTrainConfig) -> Session:
    try:
        return RaySession()
    except RuntimeError:
        tc = cfg.train_config()
        return LocalSession(Path(tc.storage) / tc.run_name, f"{config['prepared'].rstrip('/')}/examples.parquet",
                            "cuda" if cfg.gpu else "cpu")


def reranker_loop(config: dict, session: Session | None = None) -> dict:
    """The per-worker loop (``TorchTrainer``'s ``train_func``, or one process with a LocalSession)."""
    cfg = RerankerTrainConfig(**{k: v for k, v in config.items() if k in {f.name for f in dataclasses.fields(RerankerTrainConfig)}})
    session = session or _session(config, cfg)
    torch.manual_seed(cfg.seed)
    data = RunData.load(config["prepared"])
    with session.latest_checkpoint() as checkpoint:
        if checkpoint is None:
            encoder, state = CrossEncoder.from_base(cfg.model_config()), {"epochs_done": 0, "global_step": 0, "history": []}
        else:
            encoder = CrossEncoder.from_pretrained(Path(checkpoint) / MODEL_DIR)
            state = json.loads((Path(checkpoint) / TRAIN_STATE).read_text())
    encoder.train()
    model = session.prepare_model(encoder)
    optimizer = torch.optim.AdamW([p for p in encoder.parameters() if p.requires_grad], lr=cfg.lr)
    examples = session.examples()
    positives, shown = examples[examples["label"] == 1], ShownNotClicked.of(examples[examples["label"] == 0])
    per_step = max(1, cfg.batch_size // (1 + cfg.negatives))
    steps = int(session.all_reduce(torch.tensor([max(1, len(positives) // per_step)]), op="min").item())
    total = min(cfg.epochs * steps, cfg.max_steps or cfg.epochs * steps)
    on_gpu = session.device.type == "cuda"
    for epoch in range(state["epochs_done"], cfg.epochs):
        if cfg.max_steps and state["global_step"] >= cfg.max_steps:
            break
        rng = np.random.default_rng([cfg.seed, epoch, session.rank])
        order = rng.permutation(len(positives))
        losses, started = [], time.perf_counter()
        for step in range(steps):
            if cfg.max_steps and state["global_step"] >= cfg.max_steps:
                break
            pairs = step_pairs(positives.iloc[order[step * per_step: (step + 1) * per_step]], shown, data, cfg, rng)
            for group in optimizer.param_groups:
                group["lr"] = cfg.lr * lr_factor(state["global_step"], total, cfg.warmup)
            with torch.autocast("cuda", dtype=torch.bfloat16, enabled=on_gpu):
                logits = model(pairs.behaviours, pairs.candidates)
            loss = F.binary_cross_entropy_with_logits(logits.float(), pairs.labels.to(logits.device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(encoder.parameters(), 1.0)
            optimizer.step()
            state["global_step"] += 1
            losses.append(float(loss.detach()))
            if session.rank == 0 and (step + 1) % cfg.log_every == 0:
                print(f"[reranker] epoch {epoch} step {step + 1}/{steps} loss {np.mean(losses[-cfg.log_every:]):.4f}",
                      flush=True)
        seconds = time.perf_counter() - started
        metrics = {"epoch": epoch, "step": state["global_step"], "loss": float(np.mean(losses)) if losses else float("nan"),
                   "train_seconds": seconds, "pairs_per_s": len(losses) * per_step * (1 + cfg.negatives) / max(seconds, 1e-9)}
        state = {**state, "epochs_done": epoch + 1, "history": [*state["history"], metrics]}
        _report(session, encoder, state, metrics, config)
    return {"history": state["history"]}


def _report(session: Session, encoder: CrossEncoder, state: dict, metrics: dict, config: dict) -> None:
    """Every rank reports (a barrier); rank 0 attaches the reranker directory as the checkpoint."""
    if session.rank != 0:
        session.report(metrics, None)
        return
    with tempfile.TemporaryDirectory(prefix="serendip-reranker-") as tmp:
        encoder.save_pretrained(Path(tmp) / MODEL_DIR, {"data_fingerprint": config.get("fingerprint", ""),
                                                        "metrics": metrics, "train_config": config})
        (Path(tmp) / TRAIN_STATE).write_text(json.dumps(state, default=float))
        session.report(metrics, Path(tmp))


def fit_reranker(cfg: RerankerTrainConfig) -> tuple[Path, list[dict]]:
    """Prepare the shop, fine-tune on Ray Train, export the last epoch to ``cfg.out``; (out, epoch metrics)."""
    import ray.data
    from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    from recsys.model import check_base
    from training.prepare import prepare
    from training.trainer import check_cluster, connect, export_model

    check_base(cfg.base)
    tc = cfg.train_config()
    prepared = prepare(tc)
    connect()
    check_cluster(tc)
    examples = ray.data.read_parquet(prepared.path("examples.parquet")).materialize()
    per_worker = {"CPU": cfg.cpus_per_worker, **({"GPU": 1} if cfg.gpu else {})}
    trainer = TorchTrainer(
        reranker_loop,
        train_loop_config={**cfg.to_dict(), "prepared": prepared.uri, "fingerprint": prepared.fingerprint},
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=cfg.gpu, resources_per_worker=per_worker),
        torch_config=TorchConfig(backend="nccl" if cfg.gpu else "gloo", timeout_s=cfg.timeout_s),
        run_config=RunConfig(name=tc.run_name, storage_path=tc.storage, failure_config=FailureConfig(max_failures=1),
                             checkpoint_config=CheckpointConfig(num_to_keep=1)),
        datasets={"train": examples},
    )
    result = trainer.fit()
    if result.error:
        raise result.error
    if result.checkpoint is None:
        raise RuntimeError(f"run {tc.run_name}: no checkpoint was reported; see the worker logs in {result.path}")
    return export_model(result.checkpoint, cfg.out), (result.return_value or {}).get("history", [])


if __name__ == "__main__":
    import tyro

    out, history = fit_reranker(tyro.cli(RerankerTrainConfig, prog="python -m training.cross_encoder"))
    print(json.dumps({"reranker_dir": str(out), "epochs": history}, default=float), flush=True)
