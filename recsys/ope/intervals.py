"""Bootstrap confidence intervals for estimators that are functions of summed per-row statistics.

Every estimator in ``estimators.py`` is a ratio of sums, so a resample only has to re-add the
per-cluster sums. Resampling whole clusters (impressions) keeps the rows of one slate together,
since they share a user and a moment.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.stats import bootstrap


def bootstrap_interval(
    cluster_sums: np.ndarray,
    statistic: Callable[[np.ndarray], np.ndarray],
    n_boot: int,
    seed: int,
    alpha: float = 0.05,
    batch: int = 64,
) -> tuple[float, float]:
    """Percentile bootstrap interval (Efron 1979) of ``statistic`` over resampled clusters.

    ``cluster_sums`` is (n_clusters, ...) per-cluster sums; ``statistic`` maps their total, shape
    (..., *cluster_sums.shape[1:]), to the estimate, vectorized over leading axes. The reward model
    behind DM/DR is held fixed, so those intervals leave out its own fitting noise.
    Returns (nan, nan) when ``n_boot`` is 0 or there are fewer than two clusters.
    """
    if n_boot < 0 or n_boot == 1:
        raise ValueError(f"n_boot={n_boot} must be 0 (no interval) or at least 2; 1000 is a good default")
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha} must be in (0, 1); 0.05 gives a 95% interval")
    if n_boot == 0 or cluster_sums.shape[0] < 2:
        return float("nan"), float("nan")

    n_clusters, inner = cluster_sums.shape[0], cluster_sums.shape[1:]
    flat = cluster_sums.reshape(n_clusters, -1)

    def resampled(idx: np.ndarray, axis: int = -1) -> np.ndarray:
        # How often each cluster was drawn, then one matrix product re-adds the sums.
        draws = np.atleast_2d(idx).astype(np.intp)
        offsets = np.arange(draws.shape[0])[:, None] * n_clusters
        counts = np.bincount((draws + offsets).ravel(), minlength=draws.size).reshape(
            draws.shape[0], n_clusters
        )
        values = statistic((counts @ flat).reshape(draws.shape[0], *inner))
        return values if np.ndim(idx) > 1 else values[0]

    result = bootstrap(
        (np.arange(cluster_sums.shape[0]),),
        resampled,
        n_resamples=n_boot,
        batch=batch,
        vectorized=True,
        confidence_level=1 - alpha,
        method="percentile",
        rng=np.random.default_rng(seed),
    )
    ci = result.confidence_interval
    return float(ci.low), float(ci.high)
