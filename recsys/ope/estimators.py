"""Off-policy estimators of a target policy's value from logged impressions.

The value is the target's expected reward per logged row (one row per shown item): a per-slot CTR
when rewards are clicks. Estimation is position-wise, as the Open Bandit Pipeline does for slates
(independent IPS, Saito et al. 2021): each row is weighted by the target's over the logger's
probability of *that item at that position*, and the self-normalized estimators normalize within
each position, weighting positions by their share of rows.

Each estimator is a function of a few per-row sums, so the point estimate and every bootstrap
resample go through the same formula.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recsys.ope.intervals import bootstrap_interval
from recsys.ope.propensity import (
    as_rows,
    at_logged_position,
    check_logged_propensity,
    check_positions,
    check_rewards,
    check_target_propensity,
    effective_sample_size,
    importance_weights,
    is_uniform,
    logged_action_probability,
)

# Columns of the per-row statistics every estimator is summed from.
N, W, WR, P, PR, QT, WQ = range(7)
N_STATS = 7


def _share(sums: np.ndarray) -> np.ndarray:
    """Each position's share of rows, (..., K)."""
    n = sums[..., N]
    return n / n.sum(axis=-1, keepdims=True)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, and 0 where a position has no weight at all (nothing to normalize)."""
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den > 0)


def replay(sums: np.ndarray) -> np.ndarray:
    """Replay (Li, Chu, Langford & Wang 2011): mean reward of the rows the target would also have
    shown, here in expectation over a stochastic target: sum pi_e r / sum pi_e per position.
    Unbiased only when the logging policy is uniform."""
    return (_share(sums) * _ratio(sums[..., PR], sums[..., P])).sum(axis=-1)


def ips(sums: np.ndarray) -> np.ndarray:
    """IPS (Horvitz & Thompson 1952; Precup, Sutton & Singh 2000): (1/n) sum w r."""
    return sums[..., WR].sum(axis=-1) / sums[..., N].sum(axis=-1)


def snips(sums: np.ndarray) -> np.ndarray:
    """SNIPS (Swaminathan & Joachims 2015): sum w r / sum w, per position."""
    return (_share(sums) * _ratio(sums[..., WR], sums[..., W])).sum(axis=-1)


def dm(sums: np.ndarray) -> np.ndarray:
    """Direct method: (1/n) sum_i sum_a pi_e(a | x_i) q(x_i, a) from a reward model q."""
    return sums[..., QT].sum(axis=-1) / sums[..., N].sum(axis=-1)


def dr(sums: np.ndarray) -> np.ndarray:
    """Doubly robust (Dudik, Langford & Li 2011): DM + (1/n) sum w (r - q(x_i, a_i))."""
    correction = sums[..., WR] - sums[..., WQ]
    return (sums[..., QT] + correction).sum(axis=-1) / sums[..., N].sum(axis=-1)


def sndr(sums: np.ndarray) -> np.ndarray:
    """Self-normalized DR (as in zr-obp): DM + sum w (r - q) / sum w, per position."""
    dm_k = _ratio(sums[..., QT], sums[..., N])
    correction = _ratio(sums[..., WR] - sums[..., WQ], sums[..., W])
    return (_share(sums) * (dm_k + correction)).sum(axis=-1)


ESTIMATORS = {"replay": replay, "ips": ips, "snips": snips, "dm": dm, "dr": dr, "sndr": sndr}
"""Estimator name -> formula over summed statistics (..., positions, 7) -> (...)."""

NEEDS_REWARD_MODEL = frozenset({"dm", "dr", "sndr"})


@dataclass(frozen=True)
class RewardPredictions:
    """A reward model's predictions, reduced to what DM, DR and SNDR read."""

    logged: np.ndarray
    """q(x_i, a_i, k_i): the predicted reward of each row's logged item at its position, (n,)."""
    target: np.ndarray
    """sum_a pi_e(a | x_i, k_i) q(x_i, a, k_i): the prediction averaged over the target, (n,)."""

    def __post_init__(self):
        logged = as_rows(self.logged, "reward_model_pred.logged")
        target = as_rows(self.target, "reward_model_pred.target", logged.shape[0])
        for name, arr in (("logged", logged), ("target", target)):
            bad = ~np.isfinite(arr)
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise ValueError(
                    f"reward_model_pred.{name} row {i}: {arr[i]} is not finite; refit the reward model"
                )
        object.__setattr__(self, "logged", logged)
        object.__setattr__(self, "target", target)

    @classmethod
    def from_candidates(cls, q_hat, action_dist, actions, positions=None) -> RewardPredictions:
        """Build from per-candidate predictions and the target distribution (zr-obp layout).

        ``q_hat`` and ``action_dist`` are (n, n_actions) at each row's position, or
        (n, n_actions, n_positions) read at ``positions``; ``actions`` indexes the logged item.
        """
        pos = None if positions is None else check_positions(positions, np.shape(q_hat)[0])
        q = at_logged_position(q_hat, pos, "q_hat")
        dist = at_logged_position(action_dist, pos, "action_dist")
        if q.shape != dist.shape:
            raise ValueError(
                f"q_hat has shape {q.shape} but action_dist has {dist.shape}; pass one prediction per candidate"
            )
        return cls(logged=logged_action_probability(q, actions), target=(q * dist).sum(axis=1))


@dataclass(frozen=True)
class Estimate:
    """One estimator's value of a target policy, with its 95% (1 - alpha) interval."""

    name: str
    """Estimator name (a key of ESTIMATORS)."""
    value: float
    """Estimated reward per logged row under the target policy."""
    ci_low: float
    """Lower end of the percentile-bootstrap interval (nan when not computed)."""
    ci_high: float
    """Upper end of the interval."""
    ess: float
    """Kish effective sample size of the weights the estimator puts on rows."""
    n: int
    """Number of logged rows."""
    events: float = 0.0
    """Reward mass in the effective sample, ESS * sum(w r) / sum(w): the clicks the interval rests on.
    Under ~10 the percentile bootstrap cannot see the clicks that high-weight rows never got."""
    by_position: dict[int, float] = field(default_factory=dict)
    """The same estimator on each position's rows alone."""


def _check_uniform(logged_propensity: np.ndarray, positions: np.ndarray) -> None:
    if is_uniform(logged_propensity, positions):
        return
    for k in np.unique(positions):
        p = logged_propensity[positions == k]
        if not np.allclose(p, p[0], rtol=1e-9, atol=0):
            raise ValueError(
                f"replay needs a uniform logging policy (one propensity per position); logged_propensity "
                f"ranges from {p.min():g} to {p.max():g} at position {k}; use 'ips' or 'snips' instead"
            )


def row_statistics(
    rewards, logged_propensity, target_propensity, reward_model_pred=None, clip: float | None = None
) -> np.ndarray:
    """Checked per-row statistics (n, 7) that every estimator sums: 1, w, w r, pi_e, pi_e r, q_t, w q_l."""
    r = check_rewards(rewards)
    n = r.shape[0]
    pb = check_logged_propensity(logged_propensity, n)
    pe = check_target_propensity(target_propensity, n)
    w = importance_weights(pb, pe, clip)
    stats = np.zeros((n, N_STATS))
    stats[:, N], stats[:, W], stats[:, WR] = 1.0, w, w * r
    stats[:, P], stats[:, PR] = pe, pe * r
    if reward_model_pred is not None:
        if reward_model_pred.logged.shape[0] != n:
            raise ValueError(
                f"reward_model_pred has {reward_model_pred.logged.shape[0]} rows but rewards has {n}; "
                "predict for every logged row"
            )
        stats[:, QT], stats[:, WQ] = reward_model_pred.target, w * reward_model_pred.logged
    return stats


def cluster_sums(stats: np.ndarray, positions: np.ndarray, clusters=None) -> tuple[np.ndarray, np.ndarray]:
    """The distinct positions and the statistics summed per (cluster, position): (n_clusters, K, 7).

    Without ``clusters`` every row is its own cluster.
    """
    n = stats.shape[0]
    slots, slot = np.unique(positions, return_inverse=True)
    if clusters is None:
        group = np.arange(n)
    else:
        group = np.unique(np.asarray(clusters).reshape(-1), return_inverse=True)[1]
        if group.shape[0] != n:
            raise ValueError(
                f"clusters has {group.shape[0]} rows but rewards has {n}; pass one id per logged row"
            )
    sums = np.zeros((group.max() + 1, slots.shape[0], N_STATS))
    np.add.at(sums, (group, slot), stats)
    return slots, sums


def effective_events(weights: np.ndarray, rewards: np.ndarray) -> float:
    """(sum w r)(sum w) / sum w^2 = Kish ESS x self-normalized reward; the logged reward count when w = 1."""
    sq = float(np.dot(weights, weights))
    return float(np.dot(weights, rewards) * weights.sum() / sq) if sq > 0 else 0.0


def _weights_of(name: str, stats: np.ndarray) -> np.ndarray:
    if name == "dm":
        return stats[:, N]
    return stats[:, P] if name == "replay" else stats[:, W]


def estimate(
    name: str,
    rewards,
    logged_propensity,
    target_propensity,
    reward_model_pred: RewardPredictions | None = None,
    positions=None,
    clip: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    *,
    clusters=None,
    alpha: float = 0.05,
) -> Estimate:
    """Estimate the target policy's value with estimator ``name`` and a bootstrap interval.

    ``rewards``, ``logged_propensity`` and ``target_propensity`` hold one value per logged row;
    ``positions`` (0-based slots) makes the estimate position-wise; ``clusters`` (e.g. impression
    ids) makes the bootstrap resample whole slates; ``clip`` caps importance weights.
    """
    if name not in ESTIMATORS:
        raise ValueError(f"unknown estimator {name!r}; choose one of {', '.join(ESTIMATORS)}")
    if name in NEEDS_REWARD_MODEL and reward_model_pred is None:
        raise ValueError(
            f"estimator {name!r} needs reward_model_pred; fit one with recsys.ope.reward_model.cross_fit"
        )
    stats = row_statistics(
        rewards,
        logged_propensity,
        target_propensity,
        reward_model_pred if name in NEEDS_REWARD_MODEL else None,
        clip,
    )
    n = stats.shape[0]
    pos = np.zeros(n, dtype=np.int64) if positions is None else check_positions(positions, n)
    if name == "replay":
        _check_uniform(check_logged_propensity(logged_propensity, n), pos)
    slots, sums = cluster_sums(stats, pos, clusters)
    formula = ESTIMATORS[name]
    weights = _weights_of(name, stats)
    total = sums.sum(axis=0)
    ci_low, ci_high = bootstrap_interval(sums, formula, n_boot, seed, alpha)
    return Estimate(
        name=name,
        value=float(formula(total)),
        ci_low=ci_low,
        ci_high=ci_high,
        ess=effective_sample_size(weights),
        n=n,
        events=effective_events(weights, np.asarray(rewards, dtype=np.float64)),
        by_position={int(s): float(formula(total[k : k + 1])) for k, s in enumerate(slots)},
    )
