"""From a hyperparameter sweep's trials to its outputs: the ranked table, the exported best model,
the learning-curve plot, best.json, trials.csv and report.md."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from tuning.plots import plot_metric_by_epoch
from tuning.report import Report, write_report
from tuning.trials import TrialRecord

METRIC = "val_ndcg10"


@dataclass
class HparamOutcome:
    """What a finished hyperparameter sweep hands back."""

    model_dir: Path
    """The best trial's best epoch, exported as a servable model directory."""
    best_value: float
    """Its validation NDCG@10."""
    best_params: dict
    """The searched hyperparameters of the best trial."""
    table: pd.DataFrame
    """Every trial, best first; failed ones last with their error."""
    report: Path
    """Path of report.md."""
    seconds: float
    """Wall time of the Tune run."""
    usage: dict = field(default_factory=dict)
    """Concurrency and CPU use of the run."""


def trial_table(records: list[TrialRecord], searched: tuple[str, ...], max_epochs: int) -> pd.DataFrame:
    """One row per trial: searched values, epochs run, best and last val_ndcg10, how it ended."""
    rows = []
    for r in records:
        history = r.history if METRIC in r.history else pd.DataFrame(columns=[METRIC, "training_iteration"])
        done = r.ok and len(history) > 0
        epochs_run = int(history["training_iteration"].max()) if done else 0
        planned = int(r.config.get("epochs", max_epochs))
        ended = "error" if not r.ok else ("stopped early" if epochs_run < planned else "completed")
        best_row = history.loc[history[METRIC].idxmax()] if done else None
        rows.append({
            "trial": r.trial, "status": "ok" if done else "error", "ended": ended,
            **{name: r.config.get(name) for name in searched},
            "epochs_run": epochs_run, "best_" + METRIC: float(history[METRIC].max()) if done else math.nan,
            "last_" + METRIC: float(history[METRIC].iloc[-1]) if done else math.nan,
            "checkpoint": str(best_row.get("checkpoint_path", "")) if best_row is not None else "",
            "error": r.error or ("" if done else f"no {METRIC!r} reported"),
        })
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["_failed"] = table["status"] != "ok"
    table = table.sort_values(["_failed", "best_" + METRIC], ascending=[True, False], kind="stable")
    return table.drop(columns="_failed").reset_index(drop=True)


def learning_curves(records: list[TrialRecord]) -> pd.DataFrame:
    """Every trial's val_ndcg10 per Tune iteration (epoch), long format."""
    frames = [r.history[["training_iteration", METRIC]].assign(trial=r.trial)
              for r in records if METRIC in r.history]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=["trial", "training_iteration", METRIC])


def export_best(table: pd.DataFrame, out: Path) -> Path:
    """Copy the best trial's best checkpoint's model to ``out`` and check that it loads."""
    from ray.train import Checkpoint

    from recsys.model import TwoTower
    from training.trainer import export_model

    best = table.iloc[0]
    if not best["checkpoint"] or not Path(best["checkpoint"]).exists():
        raise FileNotFoundError(
            f"trial {best['trial']}: its best checkpoint {best['checkpoint']!r} is missing; "
            "the Train run keeps the 2 best epochs, so check the storage path was not cleaned"
        )
    model_dir = export_model(Checkpoint(best["checkpoint"]), out)
    TwoTower.from_pretrained(model_dir)
    return model_dir


def write_outputs(cfg, records: list[TrialRecord], seconds: float, usage: dict, notes: list[str]) -> HparamOutcome:
    """Export the best model and write every output of the sweep under ``cfg.out``."""
    out = Path(cfg.out)
    searched = tuple(cfg.space.search)
    table = trial_table(records, searched, cfg.max_epochs)
    model_dir = export_best(table, out / "model")
    best = table.iloc[0]
    params = {name: _plain(best[name]) for name in searched}
    plot = plot_metric_by_epoch(learning_curves(records), METRIC, out / "plots" / "val_ndcg10_by_epoch.png")
    (out / "best.json").write_text(json.dumps({
        "model_dir": str(model_dir), METRIC: float(best["best_" + METRIC]), "params": params,
        "trial": best["trial"], "checkpoint": best["checkpoint"]}, indent=2, default=str))
    table.to_csv(out / "trials.csv", index=False)
    ok = table[table["status"] == "ok"]
    failed = table[table["status"] != "ok"][["trial", *searched, "error"]]
    summary = {
        "objective": f"{METRIC} (max), reported every epoch by training.train_loop",
        "search": f"{cfg.search}; scheduler {cfg.scheduler}; {cfg.workers_per_trial} worker(s) per trial",
        "trials": f"{len(table)} ({len(failed)} failed, {int((ok['ended'] == 'stopped early').sum())} stopped early)",
        "best": f"trial {best['trial']}: {METRIC} = {best['best_' + METRIC]:.4f} with {params}",
        "model": f"{model_dir} (serve it: `serendip serve --model {model_dir}`)",
        "seconds": f"{seconds:.1f}",
        "concurrency and CPU": ", ".join(f"{k} {v}" for k, v in usage.items()) or "n/a",
        "Tune results (TensorBoard logs)": str(cfg.experiment_dir),
    }
    shown = ok.drop(columns=["status", "checkpoint", "error"])
    report = Report("Hyperparameter sweep", summary, shown, failed, {"Validation NDCG@10 per epoch": plot}, {}, notes)
    path = write_report(report, out)
    return HparamOutcome(model_dir, float(best["best_" + METRIC]), params, table, path, seconds, usage)


def _plain(value):
    """numpy scalars -> Python numbers for JSON."""
    return value.item() if hasattr(value, "item") else value
