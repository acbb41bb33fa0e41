"""Per-item click evidence keyed by item id, for the policies that learn one estimate per item.

New items arrive while the shop runs, so rows are appended on first feedback and found again
through a sorted id index. Views are *effective* views: each impression counts with the
examination probability of its position (PBM-UCB, Lagrée, Vernade & Cappé 2016). Expected clicks
are what the model predicted for those impressions: the sum of examination x model click prior.

The reward estimate keeps the model's personalisation and learns what the model cannot know, a
product's own appeal: P(click | user u, item i) = min(1, p_ui * a_i), where p_ui is the model's
calibrated prior and a_i a per-item multiplier with a Gamma(s, s) prior (mean 1, the model is
right). Under the Poisson approximation of rare clicks the posterior is conjugate,
a_i ~ Gamma(s + clicks_i, s + expected_i): the observed-over-expected ratio shrunk to 1, the
empirical-Bayes rate of Clayton & Kaldor (1987). Averaging raw clicks / views over all shoppers
instead would replace each shopper's prior with the item's population CTR and unlearn the model.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from recsys.policies.base import Context, Feedback, Policy, check_range

PRIOR_CLIP = 1e-6
"""Model click probabilities are clipped to [PRIOR_CLIP, 1 - PRIOR_CLIP]: every item can be learned."""
FLAT_PRIOR = 0.5
"""The click prior assumed where the model gives none (``Context.prior`` or ``Feedback.prior`` None)."""


@dataclass
class ItemEvidence:
    """Clicks and effective views per item id; unseen items have none."""

    item_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    """int64 (N,): known items, in order of first feedback."""
    clicks: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """float (N,): summed rewards per item."""
    views: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """float (N,): summed examination probabilities per item."""
    expected: np.ndarray | None = None
    """float (N,): summed examination x model prior per item (None: views x ``FLAT_PRIOR``)."""
    total_views: float = field(default=0.0, init=False)
    _sorted: np.ndarray = field(init=False, repr=False)
    _rows: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.item_ids = np.asarray(self.item_ids, dtype=np.int64)
        self.clicks = np.asarray(self.clicks, dtype=np.float64)
        self.views = np.asarray(self.views, dtype=np.float64)
        self.expected = (self.views * FLAT_PRIOR if self.expected is None
                         else np.asarray(self.expected, dtype=np.float64))
        if not self.item_ids.shape == self.clicks.shape == self.views.shape == self.expected.shape:
            raise ValueError(f"ItemEvidence: item_ids {self.item_ids.shape}, clicks {self.clicks.shape}, views "
                             f"{self.views.shape} and expected {self.expected.shape} must have the same shape; "
                             "pass one value per item")
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

    def lookup(self, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(clicks, views, expected) of each item id, zeros for unseen items."""
        rows = self.rows(item_ids)
        if self.item_ids.shape[0] == 0:
            zeros = np.zeros(rows.shape[0])
            return zeros, zeros.copy(), zeros.copy()
        seen = rows >= 0
        return tuple(np.where(seen, column[rows], 0.0) for column in (self.clicks, self.views, self.expected))

    def add(self, item_ids: np.ndarray, clicks: np.ndarray, views: np.ndarray, expected: np.ndarray | None = None) -> None:
        """Add evidence for a batch (repeated ids accumulate), appending rows for new items."""
        expected = views * FLAT_PRIOR if expected is None else expected
        rows = self.rows(item_ids)
        if (rows < 0).any():
            new = np.unique(item_ids[rows < 0])
            self.item_ids = np.concatenate([self.item_ids, new])
            self.clicks = np.concatenate([self.clicks, np.zeros(new.shape[0])])
            self.views = np.concatenate([self.views, np.zeros(new.shape[0])])
            self.expected = np.concatenate([self.expected, np.zeros(new.shape[0])])
            self._reindex()
            rows = self.rows(item_ids)
        size = self.item_ids.shape[0]
        self.clicks += np.bincount(rows, weights=clicks, minlength=size)
        self.views += np.bincount(rows, weights=views, minlength=size)
        self.expected += np.bincount(rows, weights=expected, minlength=size)
        # summed from the arrays, not incrementally, so a reloaded state decides bit-identically
        self.total_views = float(self.views.sum())

    def arrays(self) -> dict[str, np.ndarray]:
        """The evidence as named arrays for ``state_dict``."""
        return {"item_ids": self.item_ids.copy(), "clicks": self.clicks.copy(), "views": self.views.copy(),
                "expected": self.expected.copy()}

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> ItemEvidence:
        """Rebuild from ``arrays()`` output (a state saved without ``expected`` assumes the flat prior)."""
        return cls(arrays["item_ids"], arrays["clicks"], arrays["views"], arrays.get("expected"))


def appeal_posterior(clicks: np.ndarray, expected: np.ndarray, prior_strength: float) -> tuple[np.ndarray, np.ndarray]:
    """Gamma (shape, rate) of each item's appeal multiplier: (s + clicks, s + expected clicks)."""
    return prior_strength + clicks, prior_strength + expected


def click_estimate(prior: np.ndarray, appeal: np.ndarray) -> np.ndarray:
    """P(click) = model prior x appeal multiplier, clipped to [PRIOR_CLIP, 1 - PRIOR_CLIP]."""
    return np.clip(prior * appeal, PRIOR_CLIP, 1.0 - PRIOR_CLIP)


@dataclass
class PerItemPolicy(Policy):
    """A policy whose whole learned state is one ``ItemEvidence``, read through one reward estimate.

    Every per-item policy (greedy, epsilon-greedy, softmax, UCB1, Thompson sampling) acts on the
    same estimate of each candidate's click probability (see the module docstring): the model's
    calibrated prior times the item's posterior-mean appeal. An item with no evidence sits at the
    model's prior; without a model prior p = ``FLAT_PRIOR`` and only the evidence ranks.
    """

    prior_strength: float = 10.0
    """s: how many expected clicks' worth of evidence the model's prior is worth (0: evidence alone)."""
    evidence: ItemEvidence = field(default_factory=ItemEvidence, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("prior_strength", self.prior_strength, 0.0, float("inf"), open_high=True)

    def model_prior(self, ctx: Context) -> np.ndarray:
        """The model's click probability of every candidate, clipped; ``FLAT_PRIOR`` without a model prior."""
        return np.clip(np.full(ctx.n, FLAT_PRIOR) if ctx.prior is None else ctx.prior, PRIOR_CLIP, 1.0 - PRIOR_CLIP)

    def appeal(self, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        """Gamma (shape, rate) of every candidate's appeal multiplier."""
        clicks, _, expected = self.evidence.lookup(ctx.item_ids)
        return appeal_posterior(clicks, expected, self.prior_strength)

    def estimate(self, ctx: Context) -> np.ndarray:
        """The learned click probability of every candidate (an item with no evidence: its prior)."""
        shape, rate = self.appeal(ctx)
        mean = np.divide(shape, rate, out=np.ones(ctx.n), where=rate > 0)
        return click_estimate(self.model_prior(ctx), mean)

    def ranking(self, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        """(order, point): candidates best first by the estimate, ties by model score then index,
        and a point value whose descending order is exactly that ranking."""
        order = np.lexsort((-ctx.scores, -self.estimate(ctx)))
        point = np.empty(ctx.n)
        point[order] = -np.arange(ctx.n, dtype=np.float64)
        return order, point

    def update(self, fb: Feedback) -> None:
        """Add clicks, examination-weighted views and the model's expected clicks for each row."""
        theta = self._examination_of(fb)
        prior = FLAT_PRIOR if fb.prior is None else np.clip(fb.prior, PRIOR_CLIP, 1.0 - PRIOR_CLIP)
        self.evidence.add(fb.item_ids, fb.rewards, theta, theta * prior)
        super().update(fb)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return self.evidence.arrays()

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        # a state saved before greedy, epsilon-greedy and softmax learned has no evidence: start empty
        self.evidence = ItemEvidence.from_arrays(arrays) if "item_ids" in arrays else ItemEvidence()
