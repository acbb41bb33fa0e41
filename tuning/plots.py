"""The sweep's two pictures: reward against exploration rate, and cumulative regret over time.

Both read the ranked trial table (:mod:`tuning.trials`) and write a PNG with matplotlib's Agg
backend, so they work on a headless machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

EXPLOIT_ONLY = "greedy"
"""The policy that learns and never explores: the plot's starting point at exploration rate 0."""
ZERO_IS_EXPLOIT_ONLY = ("epsilon", "temperature")
"""Rates at whose zero (or limit) the policy is exactly greedy: its line starts from greedy's point."""


def reward_lines(table: pd.DataFrame) -> tuple[dict[str, pd.Series], dict[str, pd.DataFrame]]:
    """What the reward plot draws from the finished trials: (bands, lines) by legend label.

    Bands are the policies without a parameter (their best trial); lines are the others' trials by
    rate, and a line whose rate is ``ZERO_IS_EXPLOIT_ONLY`` starts from greedy's trial at rate 0.
    """
    done = table[table["status"] == "ok"]
    start = done[done["policy"] == EXPLOIT_ONLY].head(1)[["reward", "reward_low", "reward_high"]].assign(rate=0.0)
    bands, lines = {}, {}
    for policy, rows in done.groupby("policy", sort=True):
        if rows["rate"].isna().all():
            kind = "exploit only: rate 0" if policy == EXPLOIT_ONLY else "no parameter"
            bands[f"{policy} ({kind})"] = rows.iloc[0]
            continue
        rows = rows.dropna(subset=["rate"]).sort_values("rate")
        name = rows["rate_name"].iloc[0]
        if name in ZERO_IS_EXPLOIT_ONLY:
            rows = pd.concat([start, rows], ignore_index=True)
        lines[f"{policy} ({name})"] = rows.reset_index(drop=True)
    return bands, lines


def plot_reward_vs_rate(table: pd.DataFrame, path: Path, ylabel: str) -> Path:
    """One line per policy: the reward (with its interval) against its main exploration parameter.

    The exploit-only baseline (greedy) is the reference: a dashed band, and the point at rate 0 where
    the epsilon and temperature lines start (no exploration is greedy). Other policies without a
    parameter (static) are dotted bands. ``table`` needs the columns policy, rate_name, rate, reward,
    reward_low, reward_high, status.
    """
    bands, lines = reward_lines(table)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, best in bands.items():
        exploit = best["policy"] == EXPLOIT_ONLY
        ax.axhline(best["reward"], color="black" if exploit else "grey", linestyle="--" if exploit else ":", label=label)
        ax.axhspan(best["reward_low"], best["reward_high"], color="black" if exploit else "grey", alpha=0.08)
    for label, rows in lines.items():
        line = ax.plot(rows["rate"], rows["reward"], marker="o", label=label)[0]
        ax.fill_between(rows["rate"], rows["reward_low"], rows["reward_high"], color=line.get_color(), alpha=0.15)
    rates = table.loc[table["status"] == "ok", "rate"].dropna()
    if len(rates) and (rates > 0).all() and rates.max() / rates.min() > 20:
        zero = any((rows["rate"] == 0).any() for rows in lines.values())
        if zero:  # greedy's rate 0 stays on the axis: linear below the smallest rate, logarithmic above
            ax.set_xscale("symlog", linthresh=float(rates.min()))
        else:
            ax.set_xscale("log")
    ax.set_xlabel("exploration parameter (epsilon, temperature, c, alpha, prior strength, noise scale)")
    ax.set_ylabel(ylabel)
    ax.set_title("Reward against exploration rate, from greedy at 0 (band: 95% interval)")
    ax.grid(alpha=0.3)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    return _save(fig, path)


class Curve(NamedTuple):
    """Cumulative regret of one configuration at some rounds: mean over seeds and its band."""

    rounds: np.ndarray
    """Round numbers (1-based) the values are taken at."""
    mean: np.ndarray
    """Mean cumulative regret over seeds."""
    low: np.ndarray
    """Lower edge of the band (e.g. the lowest seed)."""
    high: np.ndarray
    """Upper edge of the band."""


def plot_regret_over_time(curves: dict[str, Curve], path: Path) -> Path:
    """Cumulative regret against round, one line (with its band over seeds) per label."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, curve in curves.items():
        line = ax.plot(curve.rounds, curve.mean, label=label)[0]
        ax.fill_between(curve.rounds, curve.low, curve.high, color=line.get_color(), alpha=0.15)
    ax.set_xlabel("round")
    ax.set_ylabel("cumulative regret against the oracle")
    ax.set_title("Best configuration of each policy (band: range over seeds)")
    ax.grid(alpha=0.3)
    if curves:
        ax.legend(fontsize=8)
    return _save(fig, path)


def plot_metric_by_epoch(history: pd.DataFrame, metric: str, path: Path) -> Path:
    """The hyperparameter sweep's learning curves: ``metric`` per epoch, one line per trial."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for trial, rows in history.groupby("trial", sort=True):
        ax.plot(rows["training_iteration"], rows[metric], marker="o", label=str(trial))
    ax.set_xlabel("epoch (Tune iteration)")
    ax.set_ylabel(metric)
    ax.set_title(f"{metric} per epoch; lines that stop early were cut by the scheduler")
    ax.grid(alpha=0.3)
    if len(history):
        ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    """Write the figure as a PNG and free it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
