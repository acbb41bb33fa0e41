"""Evaluate target policies on a logged impressions table: one row per (policy, estimator).

The glue between the impressions schema and the array estimators: it maps item ids to candidate
columns, keeps each slate's rows together in the bootstrap (``impression_id``), and runs every
estimator that applies (replay only on a uniform log; DM/DR/SNDR only with a reward model).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from recsys.ope.estimators import ESTIMATORS, NEEDS_REWARD_MODEL, RewardPredictions, estimate
from recsys.ope.propensity import is_uniform
from recsys.ope.targets import TargetPolicy

COLUMNS = ("policy", "estimator", "value", "ci_low", "ci_high", "ess", "events", "n")


def applicable_estimators(
    logged_propensity: np.ndarray, positions: np.ndarray, has_reward_model: bool
) -> tuple[str, ...]:
    """The estimators that are valid on this log: replay needs a uniform logger, DM/DR a model."""
    names = []
    for name in ESTIMATORS:
        if name == "replay" and not is_uniform(logged_propensity, positions):
            continue
        if name in NEEDS_REWARD_MODEL and not has_reward_model:
            continue
        names.append(name)
    return tuple(names)


def evaluate_log(
    impressions: pd.DataFrame,
    target: TargetPolicy | np.ndarray,
    *,
    q_hat: np.ndarray | None = None,
    actions: np.ndarray | None = None,
    estimators: tuple[str, ...] | None = None,
    clip: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    alpha: float = 0.05,
    by_position: bool = False,
) -> pd.DataFrame:
    """Off-policy estimates of ``target`` on an impressions table (validated by recsys.data).

    ``target`` is a ``TargetPolicy`` or just the target's probability of each logged item at its
    position (n,), which suffices for replay/IPS/SNIPS. DM, DR and SNDR also need ``q_hat``
    (n, n_items) from ``reward_model.cross_fit`` and ``actions``, each row's column in it.
    ``estimators=None`` runs every applicable one; naming one that cannot run raises its error.
    Returns columns policy, estimator, value, ci_low, ci_high, ess, events, n (and position when
    ``by_position``, with 'all' for the pooled estimate).
    """
    rewards = impressions["reward"].to_numpy(dtype=np.float64)
    logged = impressions["propensity"].to_numpy(dtype=np.float64)
    positions = impressions["position"].to_numpy()
    clusters = impressions["impression_id"].to_numpy() if "impression_id" in impressions else None
    if isinstance(target, TargetPolicy):
        name, target_propensity = target.name, target.propensity
    else:
        name, target_propensity = "target", np.asarray(target, dtype=np.float64)
    pred = None
    if q_hat is not None and isinstance(target, TargetPolicy):
        if actions is None:
            raise ValueError("evaluate_log: q_hat needs actions, each row's column in q_hat")
        pred = RewardPredictions.from_candidates(q_hat, target.action_dist, actions)
    if estimators is None:
        estimators = applicable_estimators(logged, positions, pred is not None)
    rows = []
    for est_name in estimators:
        est = estimate(
            est_name,
            rewards,
            logged,
            target_propensity,
            pred,
            positions=positions,
            clip=clip,
            n_boot=n_boot,
            seed=seed,
            clusters=clusters,
            alpha=alpha,
        )
        rows.append(
            {
                "policy": name,
                "estimator": est_name,
                "value": est.value,
                "ci_low": est.ci_low,
                "ci_high": est.ci_high,
                "ess": est.ess,
                "events": est.events,
                "n": est.n,
                "position": "all",
            }
        )
        if by_position:
            rows += [
                {"policy": name, "estimator": est_name, "value": v, "position": str(k)}
                for k, v in est.by_position.items()
            ]
    table = pd.DataFrame(rows, columns=[*COLUMNS, "position"])
    return table if by_position else table.drop(columns="position")
