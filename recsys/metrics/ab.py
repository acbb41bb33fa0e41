"""A/B statistics: each arm's CTR with its interval, and its lift over the control arm.

The unit of a trial is the served slate: an impression is "clicked" when any of its items got a
positive reward. Intervals are Wilson score intervals (Wilson 1927) and the lift's p-value is the
two-sided two-proportion z-test with a pooled variance. Where the outcome of each unit is known
(the demo's visits), :func:`lift_interval` gives the relative lift of any per-unit mean with a BCa
bootstrap interval (Efron 1987). The serving bandit's ``/experiments`` and the demo's report both
read these.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass
class ArmCounts:
    """Running totals of one arm, kept by the bandit and persisted with its snapshots."""

    impressions: int = 0
    """Slates served."""
    clicked: int = 0
    """Slates with at least one positive reward."""
    items_shown: int = 0
    """Items shown over all slates."""
    items_explored: int = 0
    """Shown items the policy placed by exploring rather than by its greedy ranking."""
    positive_feedback: int = 0
    """Feedback events with a positive reward."""
    feedback: int = 0
    """Feedback events accepted (each (impression, item) once)."""
    reward_sum: float = 0.0
    """Sum of accepted rewards."""


def wilson_interval(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """The Wilson score interval of a binomial proportion (scipy's ``binomtest``); (0, 1) with no trials."""
    if trials == 0:
        return 0.0, 1.0
    ci = stats.binomtest(int(successes), int(trials)).proportion_ci(confidence_level=level, method="wilson")
    return float(ci.low), float(ci.high)


def two_proportion_p_value(s1: int, n1: int, s2: int, n2: int) -> float:
    """Two-sided p-value of H0: p1 == p2 by the pooled two-proportion z-test; 1.0 when undefined."""
    if n1 == 0 or n2 == 0:
        return 1.0
    pooled = (s1 + s2) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0
    z = (s1 / n1 - s2 / n2) / se
    return float(2 * stats.norm.sf(abs(z)))


def lift_interval(treatment: np.ndarray, control: np.ndarray, seed: int = 0,
                  level: float = 0.95) -> tuple[float, float, float]:
    """Relative lift mean(treatment) / mean(control) - 1 with a BCa bootstrap interval over units
    (``scipy.stats.bootstrap``, 2,000 resamples of each arm); NaNs where it is undefined (fewer than
    2 units in an arm, or a control mean of 0)."""
    treatment, control = np.asarray(treatment, dtype=float), np.asarray(control, dtype=float)
    if len(treatment) < 2 or len(control) < 2 or control.mean() == 0:
        return math.nan, math.nan, math.nan

    def lift(a, b, axis=-1):
        return a.mean(axis=axis) / b.mean(axis=axis) - 1.0

    point = float(lift(treatment, control))
    with np.errstate(divide="ignore", invalid="ignore"):  # a resample of an all-but-zero control
        ci = stats.bootstrap((treatment, control), lift, n_resamples=2000, confidence_level=level,
                             vectorized=True, random_state=seed).confidence_interval
    return point, float(ci.low), float(ci.high)


def experiment_report(arms: Sequence[tuple[str, str, ArmCounts]]) -> list[dict]:
    """One row per arm (name, policy, counts): CTR with its 95% interval, lift and p-value vs the first arm."""
    rows = []
    control = arms[0][2] if arms else None
    for name, policy, c in arms:
        ctr = c.clicked / c.impressions if c.impressions else 0.0
        low, high = wilson_interval(c.clicked, c.impressions)
        row = {
            "arm": name,
            "policy": policy,
            "impressions": c.impressions,
            "clicks": c.clicked,
            "ctr": ctr,
            "ctr_ci95": [low, high],
            "share_explored": c.items_explored / c.items_shown if c.items_shown else 0.0,
            "feedback": c.feedback,
            "is_control": c is control,
        }
        control_ctr = control.clicked / control.impressions if control and control.impressions else 0.0
        row["lift_vs_control"] = (ctr - control_ctr) / control_ctr if control_ctr > 0 else None
        row["p_value_vs_control"] = (
            two_proportion_p_value(c.clicked, c.impressions, control.clicked, control.impressions)
            if control is not None else 1.0
        )
        rows.append(row)
    return rows
