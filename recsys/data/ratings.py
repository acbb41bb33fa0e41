"""Explicit ratings as events: the one mapping that the RecBole and MovieLens loaders share.

Every rating is a positive interaction: the user chose to watch or buy the item. A high rating is the
stronger signal, so it becomes a ``purchase`` and any other rating a ``click``. The threshold 4 (of 5)
is RecBole's own for ml-100k (``threshold: {'rating': 4}`` in its dataset config). The rating itself
is kept in an extra ``rating`` column, so nothing is lost.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

STRONG_RATING = 4.0
"""Ratings at or above this become ``purchase`` events; lower ones ``click`` events."""


def events_from_ratings(user_id: np.ndarray, item_id: np.ndarray, rating: np.ndarray | None,
                        seconds: np.ndarray | None) -> pd.DataFrame:
    """Events-schema frame (plus ``rating``) from rating arrays; unix seconds become UTC ms timestamps.

    Without timestamps, row i gets i milliseconds after the epoch, which keeps the file's order
    for time-ordered splits. Without ratings, every row is a ``click``.
    """
    n = len(user_id)
    millis = np.arange(n, dtype=np.int64) if seconds is None else np.round(np.asarray(seconds) * 1000)
    events = pd.DataFrame({
        "user_id": np.asarray(user_id, dtype=np.int64),
        "item_id": np.asarray(item_id, dtype=np.int64),
        "ts": pd.to_datetime(millis.astype(np.int64), unit="ms", utc=True),
        "event": "click",
    })
    if rating is not None:
        rating = np.asarray(rating, dtype=np.float64)
        events["event"] = np.where(rating >= STRONG_RATING, "purchase", "click")
        events["rating"] = rating
    return events
