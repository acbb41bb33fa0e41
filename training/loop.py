"""The per-worker training function: ``train_loop(config)`` under ``TorchTrainer``, or in one plain
process when no Ray Train context exists (tests and Tune reuse it as is).

Per epoch: run the steps, refresh the catalog's pooled text under the new fine-tuned layers,
validate (full ranking, summed over workers), checkpoint from rank 0, and stop early after
``patience`` epochs without a better validation NDCG@10. A restarted or rerun worker group
resumes from the latest checkpoint: model, optimizer, counters and metric history.
"""

from __future__ import annotations

import contextlib
import math
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsys.model import ItemTable, TwoTower
from recsys.model.base import resolve_base
from training.batches import TextCache, batch_loss, make_batch
from training.checkpoints import load_train_state, optimizer_from_files, save_checkpoint
from training.config import TrainConfig
from training.progress import epoch_line, say, step_line
from training.run_data import RunData
from training.session import LocalSession, RaySession, Session
from training.validation import validate
from training.warm_start import warm_start

FAILURE_MARKER = "injected_failure.marker"


class InjectedFailure(RuntimeError):
    """Raised once by the ``inject_failure_epoch`` testing hook."""


def default_session(config: dict, cfg: TrainConfig) -> Session:
    """The Ray Train session when running under TorchTrainer, else a one-process local session."""
    try:
        return RaySession()
    except RuntimeError:
        run_dir = Path(cfg.storage) / cfg.run_name
        return LocalSession(run_dir, f"{config['prepared'].rstrip('/')}/examples.parquet",
                            "cuda" if cfg.gpu else "cpu")


def make_optimizer(core: TwoTower, cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW: fine-tuned BERT layers at ``bert_lr``, the towers at ``lr``; decay on matrices only."""
    groups: dict[tuple[bool, bool], list] = {}
    for name, param in core.named_parameters():
        if param.requires_grad:
            groups.setdefault((name.startswith("item_tower.encoder."), param.ndim >= 2), []).append(param)
    return torch.optim.AdamW([
        {"params": params, "lr": cfg.bert_lr if bert else cfg.lr, "base_lr": cfg.bert_lr if bert else cfg.lr,
         "weight_decay": cfg.weight_decay if matrix else 0.0}
        for (bert, matrix), params in sorted(groups.items())
    ])


def lr_factor(step: int, total: int, warmup: float) -> float:
    """Linear warm-up over ``warmup`` x total steps, then linear decay to zero."""
    warm = max(1, int(warmup * total))
    if step < warm:
        return (step + 1) / warm
    return max(0.0, (total - step) / max(1, total - warm))


def _maybe_fail(cfg: TrainConfig, epoch: int, session: Session) -> None:
    if epoch != cfg.inject_failure_epoch or session.rank != 0 or "://" in cfg.storage:
        return
    marker = Path(cfg.storage) / cfg.run_name / FAILURE_MARKER
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"failure injected in epoch {epoch}\n")
        raise InjectedFailure(f"injected failure in epoch {epoch} (inject_failure_epoch); the next attempt resumes")


def _start(cfg: TrainConfig, data: RunData, session: Session) -> tuple[TwoTower, torch.optim.Optimizer, dict]:
    """Fresh model and counters, or everything restored from the latest checkpoint."""
    torch.manual_seed(cfg.seed)
    with session.latest_checkpoint() as checkpoint:
        if checkpoint is None:
            core = (warm_start(cfg.init_from, cfg.model_config(), data.train_item_ids) if cfg.init_from
                    else TwoTower.from_base(cfg.model_config(), item_ids=data.train_item_ids))
            state = {"epochs_done": 0, "global_step": 0, "best": -math.inf, "best_epoch": -1, "bad_epochs": 0,
                     "history": []}
        else:
            core, state = load_train_state(Path(checkpoint))
        if cfg.bce_weight == 0:
            core.bce_bias.requires_grad_(False)
        core.to(session.device)
        optimizer = make_optimizer(core, cfg)
        if checkpoint is not None:
            optimizer_from_files(optimizer, Path(checkpoint))
    return core, optimizer, state


@dataclass
class Run:
    """Everything one worker's epochs share."""

    cfg: TrainConfig
    config: dict
    session: Session
    data: RunData
    core: TwoTower
    """The model itself (``model`` may be its DDP wrapper)."""
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    cache: TextCache
    examples: pd.DataFrame
    steps: int
    """Steps per epoch, equal on every rank."""
    total: int
    """Steps of the whole run (for the learning-rate schedule)."""
    autocast: Callable
    generator: torch.Generator


def _setup(config: dict, session: Session | None) -> tuple[Run, dict]:
    """Load data and model (fresh or from the latest checkpoint), wrap for DDP, encode the catalog."""
    cfg = TrainConfig.from_dict(config)
    if "prepared" not in config:
        from training.prepare import prepare

        prepared = prepare(cfg)
        config = {**config, "prepared": prepared.uri, "fingerprint": prepared.fingerprint, "lineage": prepared.lineage}
    session = session or default_session(config, cfg)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    if session.rank == 0:
        say(f"[train] {session.world_size} worker(s) on {session.device}, {torch.get_num_threads()} torch threads each")
    data = RunData.load(config["prepared"])
    core, optimizer, state = _start(cfg, data, session)
    model = session.prepare_model(core)
    cache = TextCache.build(core, data)
    examples = session.examples()
    # Equal on every rank (the minimum): under DDP every step is a collective.
    steps = int(session.all_reduce(torch.tensor([max(1, len(examples) // cfg.batch_size)]), op="min").item())
    total = min(cfg.epochs * steps, cfg.max_steps or cfg.epochs * steps)
    on_gpu = session.device.type == "cuda"
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if on_gpu else contextlib.nullcontext
    generator = torch.Generator().manual_seed(cfg.seed * 1000 + session.rank)
    return Run(cfg, config, session, data, core, model, optimizer, cache, examples, steps, total, autocast,
               generator), state


def _train_epoch(run: Run, state: dict, epoch: int) -> tuple[list[float], int, float]:
    """One pass over this worker's shuffled examples: (losses, samples, seconds)."""
    cfg, session = run.cfg, run.session
    rng = np.random.default_rng([cfg.seed, epoch, session.rank])
    order = rng.permutation(len(run.examples))
    run.model.train()
    losses, started, done = [], time.perf_counter(), 0
    for step in range(run.steps):
        if cfg.max_steps and state["global_step"] >= cfg.max_steps:
            break
        frame = run.examples.iloc[order[step * cfg.batch_size : (step + 1) * cfg.batch_size]]
        batch = make_batch(frame, run.data, cfg, rng, session.device)
        for group in run.optimizer.param_groups:
            group["lr"] = group["base_lr"] * lr_factor(state["global_step"], run.total, cfg.warmup)
        loss, parts = batch_loss(run.model, run.core, batch, run.cache, run.data, cfg, run.autocast(), run.generator)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in run.core.parameters() if p.requires_grad], 5.0)
        run.optimizer.step()
        state["global_step"] += 1
        done += len(batch)
        losses.append(float(loss.detach()))
        if session.rank == 0 and (step + 1) % cfg.log_every == 0:
            rate = done * session.world_size / (time.perf_counter() - started)
            say(step_line(epoch, step + 1, run.steps, state["global_step"], run.total,
                          float(np.mean(losses[-cfg.log_every:])), parts, rate))
    return losses, done, time.perf_counter() - started


def train_loop(config: dict, session: Session | None = None) -> dict:
    """Train per ``config`` (TrainConfig.to_dict() plus "prepared" and "fingerprint"); returns the history."""
    run, state = _setup(config, session)
    cfg, session = run.cfg, run.session
    stop = _stop_reason(state, cfg)  # re-evaluated: a rerun may raise --epochs, --max-steps or --patience
    for epoch in range(state["epochs_done"], cfg.epochs):
        if stop:
            break
        _maybe_fail(cfg, epoch, session)
        losses, done, seconds = _train_epoch(run, state, epoch)
        metrics, item_vecs, calibrator = validate(run.core, run.cache, run.data, cfg, session)
        loss_sum = session.all_reduce(torch.tensor([sum(losses), len(losses)], dtype=torch.float64))
        metrics.update(epoch=epoch, step=state["global_step"], loss=float(loss_sum[0] / loss_sum[1].clamp_min(1)),
                       train_seconds=seconds, samples_per_s=done * session.world_size / max(seconds, 1e-9))
        state = _after_epoch(state, metrics, cfg)
        stop = state["stopped"]
        _report(run, state, metrics, calibrator, item_vecs)
        if session.rank == 0:
            say(epoch_line(epoch, state["global_step"], run.total, metrics["loss"], metrics["val_ndcg10"],
                           metrics["samples_per_s"], stop))
    return {"history": state["history"], "best_epoch": state["best_epoch"], "best_val_ndcg10": state["best"],
            "stopped": state.get("stopped") or "epochs"}


def _after_epoch(state: dict, metrics: dict, cfg: TrainConfig) -> dict:
    """Update counters: best metric, epochs without improvement, and why training stops (if it does)."""
    state = dict(state, epochs_done=metrics["epoch"] + 1, history=[*state["history"], metrics])
    if metrics["val_ndcg10"] > state["best"] + 1e-6:
        state.update(best=metrics["val_ndcg10"], best_epoch=metrics["epoch"], bad_epochs=0)
    else:
        state["bad_epochs"] += 1
    state["stopped"] = _stop_reason(state, cfg)
    return state


def _stop_reason(state: dict, cfg: TrainConfig) -> str | None:
    """Why training must stop now (early stopping or the step cap), or None."""
    if cfg.patience and state["bad_epochs"] >= cfg.patience:
        return f"early stop: no better val_ndcg10 for {cfg.patience} epochs"
    if cfg.max_steps and state["global_step"] >= cfg.max_steps:
        return f"max_steps={cfg.max_steps} reached"
    return None


def _report(run: Run, state: dict, metrics: dict, calibrator, item_vecs) -> None:
    """Every rank reports (a barrier); rank 0 attaches the checkpoint."""
    if run.session.rank != 0:
        run.session.report(metrics, None)
        return
    core = run.core
    core.calibrator = calibrator or core.calibrator
    manifest = {"base_model": core.manifest.get("base_model") or resolve_base(core.config.base),
                "data_fingerprint": run.config.get("fingerprint", ""), "metrics": metrics, "epoch": metrics["epoch"],
                "train_config": run.cfg.to_dict(), "run_name": run.cfg.run_name, **run.config.get("lineage", {})}
    with tempfile.TemporaryDirectory(prefix="serendip-ckpt-") as tmp:
        save_checkpoint(Path(tmp), core, run.optimizer, state, ItemTable(run.data.item_ids, item_vecs), manifest)
        run.session.report(metrics, Path(tmp))
