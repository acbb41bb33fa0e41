"""What an exploration trial is scored by: the interface both objectives share, and interval maths.

An objective is a small picklable description (paths and numbers). Tune ships it to each trial,
where ``evaluate`` loads what it needs and scores one :class:`~recsys.policies.Arm`.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

from recsys.policies import Arm


class ObjectiveInputError(ValueError):
    """The objective's input (world, log or model) cannot be used; raised before any trial starts."""


class Objective:
    """Base of the online (simulator) and offline (logged impressions) objectives."""

    metric: str = ""
    """Name of the reported metric Tune optimizes."""
    mode: str = "max"
    """"min" or "max"."""
    reward_label: str = "reward"
    """Y-axis label of the reward-against-exploration-rate plot."""

    def describe(self) -> str:
        """One line for the report: what is optimized and on what."""
        raise NotImplementedError

    def check(self, policies: tuple[str, ...] = ()) -> None:
        """Load and validate every input once, in the driver, before any trial starts."""
        raise NotImplementedError

    def evaluate(self, arm: Arm) -> dict:
        """Score one arm: the metric plus reward, reward_low, reward_high (and objective-specific keys)."""
        raise NotImplementedError

    def eligible(self, metrics: dict) -> tuple[bool, str]:
        """Whether a trial's result may be picked, and why not (default: always)."""
        return True, ""


def mean_interval(values: np.ndarray, level: float = 0.95) -> tuple[float, float, float]:
    """Mean of per-seed values with a Student-t interval (a single seed gives a zero-width one)."""
    values = np.asarray(values, dtype=float)
    mean = float(values.mean())
    if values.size < 2:
        return mean, mean, mean
    half = float(stats.t.ppf(0.5 + level / 2, values.size - 1) * stats.sem(values))
    return mean, mean - half, mean + half
