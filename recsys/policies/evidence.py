"""Per-item click evidence keyed by item id, for policies that learn one estimate per item.

New items arrive while the shop runs, so rows are appended on first feedback and found again
through a sorted id index. Views are *effective* views: each impression counts with the
examination probability of its position, so clicks / views estimates attractiveness under the
position-based model (PBM-UCB, Lagrée, Vernade & Cappé 2016).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recsys.policies.base import Feedback, Policy


@dataclass
class ItemEvidence:
    """Clicks and effective views per item id; unseen items have none."""

    item_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """int64 (N,): known items, in order of first feedback."""
    clicks: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """float (N,): summed rewards per item."""
    views: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """float (N,): summed examination probabilities per item."""
    total_views: float = field(default=0.0, init=False)
    _sorted: np.ndarray = field(init=False, repr=False)
    _rows: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.item_ids = np.asarray(self.item_ids, dtype=np.int64)
        self.clicks = np.asarray(self.clicks, dtype=np.float64)
        self.views = np.asarray(self.views, dtype=np.float64)
        if not self.item_ids.shape == self.clicks.shape == self.views.shape:
            raise ValueError(f"ItemEvidence: item_ids {self.item_ids.shape}, clicks {self.clicks.shape} and "
                             f"views {self.views.shape} must have the same shape; pass one value per item")
        self._reindex()

    def _reindex(self) -> None:
        self._rows = np.argsort(self.item_ids, kind="stable")
        self._sorted = self.item_ids[self._rows]
        self.total_views = float(self.views.sum())

    def rows(self, item_ids: np.ndarray) -> np.ndarray:
        """Row of each item id, -1 where the item has no evidence yet."""
        if self._sorted.shape[0] == 0:
            return np.full(item_ids.shape[0], -1, dtype=np.int64)
        pos = np.minimum(np.searchsorted(self._sorted, item_ids), self._sorted.shape[0] - 1)
        return np.where(self._sorted[pos] == item_ids, self._rows[pos], -1)

    def lookup(self, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(clicks, views) of each item id, zeros for unseen items."""
        rows = self.rows(item_ids)
        seen = rows >= 0
        clicks = np.where(seen, self.clicks[rows], 0.0) if self.clicks.shape[0] else np.zeros(rows.shape[0])
        views = np.where(seen, self.views[rows], 0.0) if self.views.shape[0] else np.zeros(rows.shape[0])
        return clicks, views

    def add(self, item_ids: np.ndarray, clicks: np.ndarray, views: np.ndarray) -> None:
        """Add evidence for a batch (repeated ids accumulate), appending rows for new items."""
        rows = self.rows(item_ids)
        if (rows < 0).any():
            new = np.unique(item_ids[rows < 0])
            self.item_ids = np.concatenate([self.item_ids, new])
            self.clicks = np.concatenate([self.clicks, np.zeros(new.shape[0])])
            self.views = np.concatenate([self.views, np.zeros(new.shape[0])])
            self._reindex()
            rows = self.rows(item_ids)
        size = self.item_ids.shape[0]
        self.clicks += np.bincount(rows, weights=clicks, minlength=size)
        self.views += np.bincount(rows, weights=views, minlength=size)
        # summed from the arrays, not incrementally, so a reloaded state decides bit-identically
        self.total_views = float(self.views.sum())

    def arrays(self) -> dict[str, np.ndarray]:
        """The evidence as named arrays for ``state_dict``."""
        return {"item_ids": self.item_ids.copy(), "clicks": self.clicks.copy(), "views": self.views.copy()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ItemEvidence:
        """Rebuild from ``arrays()`` output."""
        return cls(arrays["item_ids"], arrays["clicks"], arrays["views"])


@dataclass
class PerItemPolicy(Policy):
    """A policy whose whole learned state is one ``ItemEvidence`` (UCB1, Bernoulli Thompson)."""

    evidence: ItemEvidence = field(default_factory=ItemEvidence, init=False, repr=False)

    def update(self, fb: Feedback) -> None:
        """Add clicks and examination-weighted views for each (item, reward) row."""
        self.evidence.add(fb.item_ids, fb.rewards, self._examination_of(fb))
        super().update(fb)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return self.evidence.arrays()

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.evidence = ItemEvidence.from_arrays(arrays)
