"""``serendip train``: the Ray Train shell around :func:`training.loop.train_loop`.

``TorchTrainer`` + ``ScalingConfig(num_workers, use_gpu)`` (gloo on CPU, nccl on GPU), the
examples as a Ray Dataset read from Parquet, checkpoints in ``storage_path`` (local or cloud),
automatic resume when a run with the same name and inputs exists (other inputs are refused, see
``training.prepare``), and ``FailureConfig(max_failures)`` restarts from the latest checkpoint.
Every input problem is raised before a worker starts. ``retrain`` is ``train`` on a served log,
warm-started from the served model (``training.config.RetrainConfig``).
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import ray
import ray.data
from ray.train import CheckpointConfig, FailureConfig, RunConfig, ScalingConfig
from ray.train.torch import TorchConfig, TorchTrainer

from recsys.model import check_base
from training.checkpoints import MODEL_DIR
from training.config import RetrainConfig, TrainConfig
from training.local_ray import init_ray
from training.loop import train_loop
from training.prepare import Prepared, prepare


class ClusterError(ValueError):
    """The request does not fit the Ray cluster (e.g. more workers than CPUs); the message says what fits."""


@dataclass
class TrainResult:
    """What a finished run produced."""

    model_dir: Path
    """The exported best model (servable by ``serendip serve``)."""
    metrics: list[dict]
    """Per-epoch metrics (loss, val_ndcg10, ..., samples_per_s)."""
    best: dict
    """Metrics of the exported epoch."""
    run_path: str
    """Ray Train's run folder in storage (checkpoints)."""
    stopped: str = ""
    """Why training ended: "epochs", early stop or max_steps."""


def connect() -> None:
    """Join the cluster in RAY_ADDRESS, or start a local Ray with token auth; no-op when Ray is up."""
    init_ray()


def check_cluster(cfg: TrainConfig) -> None:
    """Fail before any worker starts when the workers cannot fit the cluster's CPUs/GPUs."""
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0.0), resources.get("GPU", 0.0)
    if cfg.workers * cfg.cpus_per_worker > cpus + 1e-9:
        fit = int(cpus // cfg.cpus_per_worker)
        raise ClusterError(
            f"--workers={cfg.workers} x --cpus-per-worker={cfg.cpus_per_worker} needs "
            f"{cfg.workers * cfg.cpus_per_worker:g} CPUs but the Ray cluster has {cpus:g}; use --workers {max(fit, 1)} "
            "or lower --cpus-per-worker"
        )
    if cfg.gpu and cfg.workers > gpus:
        raise ClusterError(
            f"--gpu with --workers={cfg.workers} needs {cfg.workers} GPUs but the Ray cluster has {gpus:g}; "
            f"use --workers {int(gpus)} or drop --gpu" if gpus else "--gpu: the Ray cluster has no GPU; drop --gpu"
        )


def build_trainer(cfg: TrainConfig, *, callbacks=None, name: str | None = None, storage_path: str | None = None,
                  prepared: Prepared | None = None) -> TorchTrainer:
    """A ``TorchTrainer`` for this run (prepares the inputs first unless ``prepared`` is given).

    ``name``/``storage_path`` override the config's (a Tune trial passes a stable per-trial name).
    """
    cfg = dataclasses.replace(cfg, name=name or cfg.name, storage_path=storage_path or cfg.storage_path)
    prepared = prepared or prepare(cfg)
    # Materialized on the driver before the workers start: a lazy read runs Ray Data tasks that need CPUs the
    # Train workers then hold, and on a machine with no spare CPU it never finishes.
    examples = ray.data.read_parquet(prepared.path("examples.parquet")).materialize()
    per_worker = {"CPU": cfg.cpus_per_worker, **({"GPU": 1} if cfg.gpu else {})}
    return TorchTrainer(
        train_loop,
        train_loop_config={**cfg.to_dict(), "prepared": prepared.uri, "fingerprint": prepared.fingerprint,
                           "lineage": prepared.lineage},
        scaling_config=ScalingConfig(num_workers=cfg.workers, use_gpu=cfg.gpu, resources_per_worker=per_worker),
        torch_config=TorchConfig(backend="nccl" if cfg.gpu else "gloo", timeout_s=cfg.timeout_s),
        run_config=RunConfig(
            name=cfg.run_name,
            storage_path=cfg.storage,
            failure_config=FailureConfig(max_failures=cfg.max_failures),
            checkpoint_config=CheckpointConfig(
                num_to_keep=2, checkpoint_score_attribute="val_ndcg10", checkpoint_score_order="max"
            ),
            callbacks=callbacks,
        ),
        datasets={"train": examples},
    )


def export_model(checkpoint, out: Path) -> Path:
    """Copy the checkpoint's model directory to ``out`` (replacing what was there)."""
    with tempfile.TemporaryDirectory(prefix="serendip-export-") as tmp:
        checkpoint.to_directory(tmp)
        staging = out.with_name(f".{out.name}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(Path(tmp) / MODEL_DIR, staging)
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(out)
    return out


def fit(cfg: TrainConfig, *, callbacks=None) -> TrainResult:
    """Validate, train on Ray (resuming a run of the same name), and export the best epoch to ``cfg.out``."""
    check_base(cfg.base)
    prepared = prepare(cfg)
    connect()
    check_cluster(cfg)
    result = build_trainer(cfg, callbacks=callbacks, prepared=prepared).fit()
    if result.error:
        raise result.error
    best = result.get_best_checkpoint("val_ndcg10", "max") or result.checkpoint
    if best is None:
        raise RuntimeError(f"run {cfg.run_name}: no checkpoint was reported; see the worker logs in {result.path}")
    best_metrics = next((m for c, m in result.best_checkpoints or [] if c.path == best.path), result.metrics or {})
    summary = result.return_value or {}
    model_dir = export_model(best, cfg.out)
    return TrainResult(model_dir, summary.get("history", []), dict(best_metrics), str(result.path),
                       summary.get("stopped", ""))


def train(cfg: TrainConfig) -> int:
    """Entry of ``serendip train`` / ``python -m training``: fit and print a one-line JSON summary."""
    print(f"[train] config: {json.dumps(cfg.to_dict(), default=str)}", flush=True)
    result = fit(cfg)
    keep = ("epoch", "loss", "val_ndcg10", "val_recall10", "val_auc", "samples_per_s")
    print(json.dumps({"model_dir": str(result.model_dir), "run_path": result.run_path, "stopped": result.stopped,
                      "best": {k: result.best.get(k) for k in keep}}, default=float), flush=True)
    return 0


def retrain(cfg: RetrainConfig) -> int:
    """Entry of ``serendip retrain``: the parent's recipe on the shop plus its served log, warm-started."""
    return train(cfg.train_config())
