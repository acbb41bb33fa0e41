"""Users' recent histories as padded index tensors for the user tower, newest first.

A :class:`HistoryIndex` holds every user's events flattened and sorted by (user, newest first), so
the history of a batch of users is one vectorized gather. Each event has a global position in that
order; a training example refers to its own event by position, which gives both history modes:

- ``"before"`` (time-ordered protocols): only events older than the example;
- ``"others"`` (random-split protocols): all the user's other events, because the held-out items
  of a random split are scattered through time, so at test time the history surrounds them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.data.schemas import EVENT_TYPES

HISTORY_MODES = ("before", "others")


def sort_for_history(events: pd.DataFrame) -> pd.DataFrame:
    """Events in history order: by user, newest first (ties by item id), with a fresh 0..n-1 index."""
    return events.sort_values(["user_id", "ts", "item_id"], ascending=[True, False, True], kind="stable").reset_index(
        drop=True
    )


def event_codes(events: pd.Series) -> np.ndarray:
    """Index of each event name in EVENT_TYPES (int64)."""
    codes = pd.Categorical(events, categories=list(EVENT_TYPES)).codes.astype(np.int64)
    if (codes < 0).any():
        bad = events[codes < 0].iloc[0]
        raise ValueError(f"events: event {bad!r} is not one of {EVENT_TYPES}")
    return codes


@dataclass(frozen=True)
class HistoryIndex:
    """Per-user event runs: ``rows[offsets[u]:offsets[u+1]]`` are user u's item rows, newest first."""

    user_ids: np.ndarray
    """int64 (U,) sorted unique users."""
    offsets: np.ndarray
    """int64 (U+1,) run boundaries into ``rows``/``events``."""
    rows: np.ndarray
    """int64 (N,) catalog row of each event's item."""
    events: np.ndarray
    """int64 (N,) index into EVENT_TYPES."""

    @classmethod
    def build(cls, events: pd.DataFrame, item_rows: np.ndarray) -> HistoryIndex:
        """Index events that are already in :func:`sort_for_history` order; ``item_rows`` (N,) per event."""
        users = events["user_id"].to_numpy(np.int64)
        if len(users) and (np.diff(users) < 0).any():
            raise ValueError("HistoryIndex.build: events must be sorted by user (use sort_for_history)")
        user_ids, starts = np.unique(users, return_index=True)
        offsets = np.append(starts, len(users)).astype(np.int64)
        return cls(user_ids, offsets, np.asarray(item_rows, np.int64), event_codes(events["event"]))

    def user_slots(self, user_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start and length of each user's run (unknown users: length 0)."""
        query = np.asarray(user_ids, np.int64)
        slot = np.clip(np.searchsorted(self.user_ids, query), 0, max(len(self.user_ids) - 1, 0))
        known = (self.user_ids[slot] == query) if len(self.user_ids) else np.zeros(query.shape, bool)
        start = np.where(known, self.offsets[slot], 0)
        length = np.where(known, self.offsets[slot + 1] - self.offsets[slot], 0) if len(self.user_ids) else start
        return start, length

    def gather(
        self,
        user_ids: np.ndarray,
        length: int,
        positions: np.ndarray | None = None,
        mode: str = "others",
        drop: float = 0.0,
        rng: np.random.Generator | None = None,
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Padded histories: (rows (B, L), events (B, L), mask (B, L) True=valid), newest first.

        ``positions`` (B,) are the examples' own global event positions (None = evaluation: the
        whole history; -1 = an example that is not a history event, e.g. an impression negative). ``drop`` randomly hides that share of history events (training noise).
        """
        if mode not in HISTORY_MODES:
            raise ValueError(f"history mode {mode!r}: use one of {HISTORY_MODES}")
        start, n = self.user_slots(user_ids)
        end = start + n
        if positions is not None and mode == "before":
            own = np.asarray(positions, np.int64)
            start = np.where(own >= 0, own + 1, start)
        span = length + (1 if positions is not None and mode == "others" else 0)
        if drop > 0:
            span = int(np.ceil(span / (1.0 - drop))) + 1
        idx = start[:, None] + np.arange(span)[None, :]
        valid = idx < end[:, None]
        if positions is not None and mode == "others":
            valid &= idx != np.asarray(positions, np.int64)[:, None]
        if drop > 0:
            valid &= (rng or np.random.default_rng()).random(idx.shape) >= drop
        # Stable-sort valid slots to the front of each row, keeping newest-first order.
        order = np.argsort(~valid, axis=1, kind="stable")[:, :length]
        idx = np.take_along_axis(idx, order, 1)
        mask = np.take_along_axis(valid, order, 1)
        safe = np.where(mask, idx, 0)
        if len(self.rows) == 0:
            zeros = np.zeros(mask.shape, np.int64)
            return zeros, zeros, np.zeros(mask.shape, bool)
        rows = np.where(mask, self.rows[safe], 0)
        events = np.where(mask, self.events[safe], 0)
        if mask.shape[1] < length:
            pad = length - mask.shape[1]
            rows, events = np.pad(rows, ((0, 0), (0, pad))), np.pad(events, ((0, 0), (0, pad)))
            mask = np.pad(mask, ((0, 0), (0, pad)))
        return rows, events, mask

    def items_of(self, user_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(batch position, item row) pairs of every event of these users, to mask seen items."""
        start, n = self.user_slots(user_ids)
        batch = np.repeat(np.arange(len(start)), n)
        within = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
        return batch, self.rows[np.repeat(start, n) + within]
