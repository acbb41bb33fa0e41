"""The bandit's input for one shopper, built from the trained model: each candidate's score, the
model's calibrated click prior and the linear policies' features.

Serving (``serving.retrieval``), the tuning sweep's replay and the quality benchmark
(``recsys.model_observer``) all call :func:`bandit_input`, so a policy tuned or benchmarked
offline sees exactly the numbers it sees when served.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.model.two_tower import TwoTower
from recsys.policies import linear_policy_features


@dataclass(frozen=True, slots=True)
class BanditInput:
    """What the policies read about one shopper's candidates."""

    scores: np.ndarray
    """float64 (n,): user . item / temperature."""
    prior: np.ndarray | None
    """float64 (n,): calibrated P(click) in [0, 1]; None when the model has no calibration."""
    features: np.ndarray | None
    """float64 (n, 2 + d): ``linear_policy_features`` rows; None when not asked for."""


def bandit_input(model: TwoTower, user: np.ndarray, item_vecs: np.ndarray, scores: np.ndarray | None = None,
                 with_features: bool = True) -> BanditInput:
    """Scores, prior and features of ``item_vecs`` (n, d) for one user vector (d,).

    ``scores`` may be passed when the caller already ranked the catalog with the same formula
    (serving's retrieval does, over every item), so it is not computed twice.
    """
    user = np.asarray(user, dtype=np.float32)
    if scores is None:
        scores = np.asarray(item_vecs, dtype=np.float32) @ user / model.temperature
    scores = np.asarray(scores, dtype=np.float64)
    prior = None if model.calibrator is None else np.clip(model.click_probability(scores), 0.0, 1.0)
    features = linear_policy_features(user, item_vecs, prior) if with_features else None
    return BanditInput(scores, prior, features)
