"""Features of the reward model: one row per (logged row, candidate item) at the row's position.

``cross_fit`` reads (n_rows, n_items, n_features) arrays whose categorical columns hold codes.
A plain impressions log only knows the item and the slot; the Open Bandit Dataset adds four user
segments and a user-item affinity.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

MAX_CELLS = 50_000_000
"""Largest rows x candidates grid built in memory (about 400 MB per float64 feature column)."""


def item_index(item_ids: np.ndarray, logged: np.ndarray, source: str = "impressions") -> np.ndarray:
    """Position of each logged item id in ``item_ids`` (sorted), or a ValueError naming the row."""
    idx = np.searchsorted(item_ids, logged)
    bad = (idx >= item_ids.shape[0]) | (item_ids[np.minimum(idx, item_ids.shape[0] - 1)] != logged)
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"{source} row {i}: item_id {logged[i]} is not among the candidate items; add it to item_ids"
        )
    return idx


def _grid(n: int, n_items: int) -> None:
    if n * n_items > MAX_CELLS:
        raise ValueError(
            f"{n} rows x {n_items} candidate items exceeds {MAX_CELLS:,} cells; evaluate a slice of the "
            "log (fewer rows or items) at a time"
        )


def impression_features(
    impressions: pd.DataFrame, item_ids: np.ndarray
) -> tuple[np.ndarray, tuple[int, ...]]:
    """(n, n_items, 2) features [item code, position] of a plain impressions log; both categorical."""
    n, n_items = len(impressions), item_ids.shape[0]
    _grid(n, n_items)
    feats = np.empty((n, n_items, 2))
    feats[:, :, 0] = np.arange(n_items)[None, :]
    feats[:, :, 1] = impressions["position"].to_numpy()[:, None]
    return feats, (0, 1)


def obd_features(log) -> tuple[np.ndarray, tuple[int, ...]]:
    """(n, n_items, 7) features of an ``recsys.data.ObdLog``: user segments 0-3, item, position
    (categorical) and the row's user-item affinity to the candidate (numeric)."""
    n, n_items = log.affinity.shape
    _grid(n, n_items)
    feats = np.empty((n, n_items, 7))
    feats[:, :, 0:4] = log.user_features[:, None, :]
    feats[:, :, 4] = np.arange(n_items)[None, :]
    feats[:, :, 5] = log.impressions["position"].to_numpy()[:, None]
    feats[:, :, 6] = log.affinity
    return feats, (0, 1, 2, 3, 4, 5)
