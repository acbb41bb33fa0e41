"""Logged rows, propensities and importance weights: the checked inputs of every estimator.

An off-policy estimate reads one row per shown item (the impressions schema): its reward, the
logging policy's probability of that item at that position (``logged_propensity``) and the target
policy's probability of the same (``target_propensity``). Target distributions over all items follow
zr-obp's ``action_dist`` layout: ``(n_rows, n_actions)`` at each row's own position, or
``(n_rows, n_actions, n_positions)`` read at ``positions``.
"""

from __future__ import annotations

import numpy as np

SUM_TOLERANCE = 1e-6
"""How far a row of a target action distribution may sum away from 1."""


def _first_bad_row(bad: np.ndarray) -> int:
    return int(np.flatnonzero(bad)[0])


def as_rows(values, name: str, n: int | None = None) -> np.ndarray:
    """``values`` as a float64 vector of one value per logged row; raise naming ``name`` otherwise."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise ValueError(f"{name} has shape {arr.shape}; pass a 1-D array with one value per logged row")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} has {arr.shape[0]} rows but rewards has {n}; pass one value per logged row")
    return arr


def check_rewards(rewards) -> np.ndarray:
    """Rewards as float64 (n,); every value must be finite."""
    r = as_rows(rewards, "rewards")
    if r.shape[0] == 0:
        raise ValueError("rewards is empty; an estimate needs at least one logged row")
    bad = ~np.isfinite(r)
    if bad.any():
        i = _first_bad_row(bad)
        raise ValueError(f"rewards row {i}: {r[i]} is not finite; drop the row or fix its reward")
    return r


def check_logged_propensity(values, n: int) -> np.ndarray:
    """The logging policy's propensities; each must lie in (0, 1]: a missing or zero one names its row."""
    p = as_rows(values, "logged_propensity", n)
    bad = ~((p > 0) & (p <= 1))  # NaN fails both comparisons
    if bad.any():
        i = _first_bad_row(bad)
        raise ValueError(
            f"logged_propensity row {i}: {p[i]} is not in (0, 1]; every logged row needs the logging "
            "policy's probability of its item at its position (fix the logger or drop the row)"
        )
    return p


def check_target_propensity(values, n: int) -> np.ndarray:
    """The target policy's probabilities of the logged items; each must lie in [0, 1]."""
    p = as_rows(values, "target_propensity", n)
    bad = ~((p >= 0) & (p <= 1))
    if bad.any():
        i = _first_bad_row(bad)
        raise ValueError(
            f"target_propensity row {i}: {p[i]} is not in [0, 1]; pass the target policy's probability "
            "of the logged item at the logged position"
        )
    return p


def check_positions(positions, n: int) -> np.ndarray:
    """Slate positions as int64 (n,), 0-based like the impressions schema."""
    arr = np.asarray(positions)
    if arr.ndim != 1 or arr.shape[0] != n:
        raise ValueError(f"positions has shape {arr.shape}; expected ({n},), one 0-based slot per logged row")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr) & (arr == np.round(arr))):
        i = _first_bad_row(~(np.isfinite(arr) & (arr == np.round(arr))))
        raise ValueError(f"positions row {i}: {arr[i]} is not a whole number; positions count slots from 0")
    if arr.dtype.kind not in "iuf":
        raise ValueError(f"positions has dtype {arr.dtype}; pass integer slots counted from 0")
    arr = arr.astype(np.int64)
    bad = arr < 0
    if bad.any():
        i = _first_bad_row(bad)
        raise ValueError(f"positions row {i}: {arr[i]} is negative; positions count slots from 0")
    return arr


def importance_weights(
    logged_propensity: np.ndarray, target_propensity: np.ndarray, clip: float | None = None
) -> np.ndarray:
    """w = pi_e / pi_b per row (Horvitz & Thompson 1952; Precup et al. 2000), capped at ``clip``.

    Clipping trades a bias for a bounded variance (Strehl et al. 2010; Bottou et al. 2013).
    """
    w = target_propensity / logged_propensity
    if clip is not None:
        if not clip > 0:
            raise ValueError(f"clip={clip} must be > 0 (the largest importance weight kept) or None")
        w = np.minimum(w, clip)
    return w


def effective_sample_size(weights) -> float:
    """Kish's effective sample size (sum w)^2 / sum w^2 (Kish 1965); 0 when every weight is 0."""
    w = np.asarray(weights, dtype=np.float64)
    sq = float(np.dot(w, w))
    return float(w.sum() ** 2 / sq) if sq > 0 else 0.0


def is_uniform(logged_propensity: np.ndarray, positions: np.ndarray) -> bool:
    """True when the logger gave one propensity per position (a uniform logger, replay's premise)."""
    return all(
        np.allclose(p, p[0], rtol=1e-9, atol=0)
        for p in (logged_propensity[positions == k] for k in np.unique(positions))
    )


def check_action_dist(action_dist, n: int, name: str = "action_dist") -> np.ndarray:
    """A target distribution (n, n_actions[, n_positions]) whose every (row, position) sums to 1."""
    dist = np.asarray(action_dist, dtype=np.float64)
    if dist.ndim not in (2, 3) or dist.shape[0] != n:
        raise ValueError(
            f"{name} has shape {dist.shape}; expected ({n}, n_actions) or ({n}, n_actions, n_positions)"
        )
    bad = ~((dist >= 0) & (dist <= 1))
    if bad.any():
        i = _first_bad_row(bad.reshape(n, -1).any(axis=1))
        raise ValueError(f"{name} row {i}: has a value outside [0, 1]; pass probabilities")
    off = np.abs(dist.sum(axis=1) - 1) > SUM_TOLERANCE
    if off.any():
        i = _first_bad_row(off.reshape(n, -1).any(axis=1))
        total = dist[i].sum(axis=0)
        raise ValueError(
            f"{name} row {i}: sums to {np.round(total, 6).tolist()} over actions; each row (and each "
            "position) must be a probability distribution over the candidate items"
        )
    return dist


def at_logged_position(per_action, positions: np.ndarray | None, name: str) -> np.ndarray:
    """Reduce (n, n_actions, n_positions) to (n, n_actions) at each row's position; pass 2-D through."""
    arr = np.asarray(per_action, dtype=np.float64)
    if arr.ndim == 2:
        return arr
    if positions is None:
        raise ValueError(f"{name} is 3-D (n, n_actions, n_positions); pass positions to pick each row's slot")
    if positions.max() >= arr.shape[2]:
        raise ValueError(
            f"positions holds slot {positions.max()} but {name} has {arr.shape[2]} positions; "
            "pass one distribution per slot"
        )
    return arr[np.arange(arr.shape[0]), :, positions]


def logged_action_probability(
    action_dist: np.ndarray, actions, positions: np.ndarray | None = None
) -> np.ndarray:
    """The target's probability of each row's logged action: action_dist[i, actions[i](, positions[i])]."""
    dist = at_logged_position(action_dist, positions, "action_dist")
    idx = np.asarray(actions)
    if idx.shape != (dist.shape[0],) or idx.dtype.kind not in "iu":
        raise ValueError(
            f"actions has shape {idx.shape} and dtype {idx.dtype}; pass ({dist.shape[0]},) integer column indices"
        )
    bad = (idx < 0) | (idx >= dist.shape[1])
    if bad.any():
        i = _first_bad_row(bad)
        raise ValueError(f"actions row {i}: {idx[i]} is not a column of action_dist (0..{dist.shape[1] - 1})")
    return dist[np.arange(dist.shape[0]), idx]
