"""From an exploration sweep's trial records to its outputs: the ranked table, the pick, the plots,
the serving snippet, pick.json, trials.csv and report.md.

The pick is the best *eligible* finished trial; a trial whose estimate is not trustworthy (too
small an effective sample size) is ranked but never picked, and the report says why.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.policies import Arm
from tuning.objective import Objective
from tuning.plots import Curve, plot_regret_over_time, plot_reward_vs_rate
from tuning.report import Report, write_report
from tuning.serving_arm import snippet
from tuning.space import BASELINES, EXPLORATION_PARAMS, trial_arm
from tuning.trials import TrialRecord


@dataclass
class ExplorationOutcome:
    """What a finished exploration sweep hands back to its caller."""

    pick: Arm | None
    """The chosen policy and parameters (None when no trial may be picked)."""
    pick_value: float
    """The objective of the pick (nan without one)."""
    metric: str
    """Name of the objective metric."""
    table: pd.DataFrame
    """Every trial, ranked best first; failed and ineligible ones included."""
    report: Path
    """Path of report.md."""
    seconds: float
    """Wall time of the Tune run."""
    usage: dict = field(default_factory=dict)
    """Concurrency and CPU use of the run."""
    no_pick_reason: str = ""
    """Why there is no pick, when there is none."""
    explorer: Arm | None = None
    """The best eligible trial of a policy that explores (not static or greedy); the pick when it explores."""
    explorer_value: float = math.nan
    """The objective of ``explorer``."""


def rate_of(arm: Arm) -> tuple[str | None, float]:
    """The arm's main exploration parameter (the plotted one) and its value."""
    for name in EXPLORATION_PARAMS.get(arm.policy, ()):
        if name in arm.params:
            return name, float(arm.params[name])
    return None, math.nan


def trial_table(records: list[TrialRecord], objective: Objective) -> pd.DataFrame:
    """One row per trial, best first; finished trials before failed ones."""
    rows = []
    for r in records:
        arm = trial_arm(r.config) if "policy" in r.config else None
        m = r.metrics
        done = r.ok and objective.metric in m
        eligible, why = objective.eligible(m) if done else (False, "")
        rate_name, rate = rate_of(arm) if arm else (None, math.nan)
        rows.append({
            "trial": r.trial, "status": "ok" if done else "error", "policy": arm.policy if arm else "?",
            "arm": arm.label() if arm else "?", "params": json.dumps(arm.params if arm else {}), "rate_name": rate_name, "rate": rate,
            "objective": float(m.get(objective.metric, math.nan)),
            **{k: float(m.get(k, math.nan)) for k in ("reward", "reward_low", "reward_high", "regret", "ess")},
            "eligible": bool(eligible), "why_not": why,
            "error": r.error or ("" if done else f"no {objective.metric!r} reported"),
        })
    table = pd.DataFrame(rows)
    if table.empty:
        return table
    table["_failed"] = table["status"] != "ok"
    table = table.sort_values(["_failed", "objective"], ascending=[True, objective.mode == "min"], kind="stable")
    return table.drop(columns="_failed").reset_index(drop=True)


def pick_best(table: pd.DataFrame, exclude: tuple[str, ...] = ()) -> tuple[Arm | None, float, str]:
    """The first eligible finished row of the ranked table (policies in ``exclude`` left out), or None with the reason."""
    table = table[~table["policy"].isin(exclude)] if not table.empty else table
    done = table[table["status"] == "ok"] if not table.empty else table
    candidates = done[done["eligible"]] if not done.empty else done
    if candidates.empty:
        if done.empty:
            return None, math.nan, "no trial finished"
        reasons = sorted(set(done["why_not"]) - {""})
        return None, math.nan, "no trial is eligible: " + "; ".join(reasons[:3])
    best = candidates.iloc[0]
    return Arm(best["policy"], json.loads(best["params"])), float(best["objective"]), ""


def best_curves(records: list[TrialRecord], table: pd.DataFrame) -> dict[str, Curve]:
    """Regret-over-time curve of each policy's best finished trial (online objectives report one)."""
    by_trial = {r.trial: r for r in records}
    curves = {}
    for _, row in table[table["status"] == "ok"].drop_duplicates("policy").iterrows():
        m = by_trial[row["trial"]].metrics
        if "regret_curve" in m:
            curves[row["arm"]] = Curve(*(np.asarray(m[k], dtype=float) for k in
                                         ("curve_rounds", "regret_curve", "regret_curve_low", "regret_curve_high")))
    return curves


def write_outputs(cfg, objective: Objective, records: list[TrialRecord], seconds: float, usage: dict,
                  notes: list[str]) -> ExplorationOutcome:
    """Write every output file of the sweep under ``cfg.out`` and return the outcome."""
    out = Path(cfg.out)
    table = trial_table(records, objective)
    pick, value, reason = pick_best(table)
    explorer, explorer_value, _ = pick_best(table, exclude=BASELINES)
    plots = {"Reward against exploration rate": plot_reward_vs_rate(table, out / "plots" / "reward_vs_rate.png",
                                                                     objective.reward_label)}
    curves = best_curves(records, table)
    if curves:
        plots["Cumulative regret of each policy's best configuration"] = plot_regret_over_time(
            curves, out / "plots" / "regret_over_time.png")
    snippets = {}
    if pick is not None:
        snippets["Serving config (Serve user_config of the bandit)"] = snippet(pick, cfg.model)
        (out / "serving.yaml").write_text(snippet(pick, cfg.model))
    (out / "pick.json").write_text(json.dumps({
        "policy": pick.policy if pick else None, "params": pick.params if pick else None,
        "metric": objective.metric, "value": None if pick is None else value, "no_pick_reason": reason,
        "objective": objective.describe(), "model": None if cfg.model is None else str(cfg.model),
    }, indent=2))
    table.to_csv(out / "trials.csv", index=False)
    shown = [c for c in ("trial", "arm", "objective", "reward", "reward_low", "reward_high", "regret", "ess",
                         "eligible", "why_not") if c in table and not table[c].isna().all()]
    ok = table[table["status"] == "ok"] if not table.empty else table
    failed = table[table["status"] != "ok"][["trial", "arm", "error"]] if not table.empty else table
    all_notes = list(notes)
    if pick is None:
        all_notes.insert(0, f"NO PICK: {reason}")
    if not ok.empty and not ok["eligible"].all():
        n_bad = int((~ok["eligible"]).sum())
        all_notes.append(f"{n_bad} finished trial(s) are ranked but not eligible for the pick (see why_not)")
    summary = {
        "objective": f"{objective.describe()}; metric {objective.metric} ({objective.mode})",
        "policies": ", ".join(cfg.policies),
        "search": cfg.search, "trials": f"{len(table)} ({len(failed)} failed)",
        "pick": f"{pick.label()} with {objective.metric} = {value:.5g}" if pick else f"none ({reason})",
        "best exploring policy": (f"{explorer.label()} with {objective.metric} = {explorer_value:.5g}"
                                  if explorer else "none"),
        "seconds": f"{seconds:.1f}",
        "concurrency and CPU": ", ".join(f"{k} {v}" for k, v in usage.items()) or "n/a",
        "Tune results (TensorBoard logs)": str(cfg.experiment_dir),
    }
    report = Report("Exploration sweep", summary, ok[shown].rename(columns={"objective": objective.metric}),
                    failed, plots, snippets, all_notes)
    path = write_report(report, out)
    return ExplorationOutcome(pick, value, objective.metric, table, path, seconds, usage, reason, explorer, explorer_value)
