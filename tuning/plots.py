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


def plot_reward_vs_rate(table: pd.DataFrame, path: Path, ylabel: str) -> Path:
    """One line per policy: the reward (with its interval) against its main exploration parameter.

    Policies without a parameter (greedy) are a dashed horizontal band. ``table`` needs the
    columns policy, rate_name, rate, reward, reward_low, reward_high, status.
    """
    done = table[table["status"] == "ok"]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for policy, rows in done.groupby("policy", sort=True):
        rows = rows.sort_values("rate")
        if rows["rate"].isna().all():
            best = rows.iloc[0]
            line = ax.axhline(best["reward"], linestyle="--", label=f"{policy} (no parameter)")
            ax.axhspan(best["reward_low"], best["reward_high"], color=line.get_color(), alpha=0.12)
            continue
        rows = rows.dropna(subset=["rate"])
        label = f"{policy} ({rows['rate_name'].iloc[0]})"
        line = ax.plot(rows["rate"], rows["reward"], marker="o", label=label)[0]
        ax.fill_between(rows["rate"], rows["reward_low"], rows["reward_high"], color=line.get_color(), alpha=0.15)
    rates = done["rate"].dropna()
    if len(rates) and (rates > 0).all() and rates.max() / rates.min() > 20:
        ax.set_xscale("log")
    ax.set_xlabel("exploration parameter (epsilon, temperature, alpha, prior strength, noise scale)")
    ax.set_ylabel(ylabel)
    ax.set_title("Reward against exploration rate (band: 95% interval)")
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
