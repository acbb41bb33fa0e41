"""Position examination weights estimated from click logs, for de-biasing bandit feedback.

The position-based model (PBM; Craswell et al. 2008, Chuklin, Markov & de Rijke 2015 §3.4):
P(click | item i at position j) = theta_j * alpha_i, with theta_j the chance that position j
is looked at and alpha_i the item's attractiveness. Both are fitted by expectation-maximization
(Chuklin et al. 2015 §4; the regression-EM of Wang et al. 2018 with one parameter per item).
On a log whose slates were shuffled at random this reduces to the ratio of per-position CTRs
(Joachims, Swaminathan & Schnabel 2017).
"""

from __future__ import annotations

import numpy as np


def _check_log(positions: np.ndarray, clicks: np.ndarray, item_ids: np.ndarray) -> None:
    if not positions.shape == clicks.shape == item_ids.shape or positions.ndim != 1:
        raise ValueError(f"examination_weights: positions {positions.shape}, clicks {clicks.shape} and item_ids "
                         f"{item_ids.shape} must be 1-D with one entry per impression row")
    if positions.size == 0:
        raise ValueError("examination_weights: the log is empty; pass at least one impression row")
    if positions.min() < 0:
        raise ValueError(f"examination_weights: position {positions.min()} is negative; positions count from 0")
    bad = ~((clicks >= 0.0) & (clicks <= 1.0))
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(f"examination_weights: click {clicks[row]} at row {row} is not in [0, 1]")


def examination_weights(positions: np.ndarray, clicks: np.ndarray, item_ids: np.ndarray, *, method: str = "em",
                        smoothing: float = 1.0, n_iter: int = 500, tol: float = 1e-9) -> np.ndarray:
    """theta_j for positions 0..max(positions), scaled so theta_0 = 1 and capped at 1.

    ``positions``, ``clicks`` (0/1 or a reward in [0, 1]) and ``item_ids`` have one entry per
    shown (impression, item) row; every position up to the largest must appear in the log.

    - ``method="ratio"``: CTR at j over CTR at 0. Unbiased only when items were placed at
      random (a shuffled or uniformly random log), and then the lowest-variance choice.
    - ``method="em"``: PBM expectation-maximization, for any log. Each item's attractiveness is
      shrunk towards the log's mean with ``smoothing`` pseudo-impressions (a MAP estimate), so
      items seen once or twice do not drive the examination weights.
    Positions that come out more examined than the top (noise in a small log) are capped at 1.
    """
    if method not in ("em", "ratio"):
        raise ValueError(f"examination_weights: method {method!r} is unknown; use 'em' or 'ratio'")
    positions = np.asarray(positions, dtype=np.int64)
    clicks = np.asarray(clicks, dtype=np.float64)
    item_ids = np.asarray(item_ids)
    _check_log(positions, clicks, item_ids)
    n_pos = int(positions.max()) + 1
    shown = np.bincount(positions, minlength=n_pos).astype(np.float64)
    if (shown == 0).any():
        missing = int(np.flatnonzero(shown == 0)[0])
        raise ValueError(f"examination_weights: position {missing} never appears in the log; "
                         "pass impressions for every position up to the largest")
    ctr = np.bincount(positions, weights=clicks, minlength=n_pos) / shown
    if ctr[0] == 0.0:
        raise ValueError("examination_weights: no clicks at position 0; the log is too small to scale the weights")
    theta = ctr / ctr[0] if method == "ratio" else _pbm_em(positions, clicks, item_ids, shown, smoothing, n_iter, tol)
    return np.minimum(theta / theta[0], 1.0)


def _pbm_em(positions: np.ndarray, clicks: np.ndarray, item_ids: np.ndarray, shown: np.ndarray,
            smoothing: float, n_iter: int, tol: float) -> np.ndarray:
    """Unnormalized theta from PBM EM (Chuklin et al. 2015 §4) with MAP-smoothed attractiveness."""
    n_pos = shown.shape[0]
    items, item_row = np.unique(item_ids, return_inverse=True)
    per_item = np.bincount(item_row, minlength=items.shape[0]).astype(np.float64)
    theta = np.full(n_pos, 0.5)
    alpha = np.full(items.shape[0], 0.5)
    for _ in range(n_iter):
        t, a = theta[positions], alpha[item_row]
        skipped = np.maximum(1.0 - t * a, 1e-12)
        # E-step: posterior that the row was examined / that the item attracted, given the click
        examined = clicks + (1.0 - clicks) * t * (1.0 - a) / skipped
        attracted = clicks + (1.0 - clicks) * a * (1.0 - t) / skipped
        new_theta = np.bincount(positions, weights=examined, minlength=n_pos) / shown
        mean = attracted.mean()
        alpha = (np.bincount(item_row, weights=attracted, minlength=items.shape[0]) + smoothing * mean) / (per_item + smoothing)
        done = np.max(np.abs(new_theta - theta)) < tol
        theta = new_theta
        if done:
            break
    return theta
