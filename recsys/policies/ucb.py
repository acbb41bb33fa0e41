"""UCB1 per item (Auer, Cesa-Bianchi & Fischer 2002), optionally started from the model's prior."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsys.policies.base import Choice, Context, check_range
from recsys.policies.evidence import PerItemPolicy
from recsys.policies.propensity import tie_aware_choice, tie_marginals


@dataclass
class UCB1(PerItemPolicy):
    """Rank by mean + c * sqrt(2 ln t / n_i), with t the total and n_i the item's effective views.

    With ``prior_strength`` s > 0, an item starts with s pseudo-views at the model's click
    probability, so unseen items are not all tied at +inf. Ties are broken uniformly at random
    and the propensities are exact (uniform within each tie group).
    """

    name: ClassVar[str] = "ucb1"

    c: float = 1.0
    """Scale of the confidence bonus (1 is UCB1 as published)."""
    prior_strength: float = 0.0
    """Pseudo-views at the model's click probability (0: unseen items get an infinite index)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("c", self.c, 0.0, float("inf"), open_high=True)

    def _index(self, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        views = self.evidence.lookup(ctx.item_ids)[1]
        n = views + self.prior_strength
        seen = n > 0
        safe = np.where(seen, n, 1.0)
        mean = self.estimate(ctx)
        log_t = math.log(max(self.evidence.total_views + self.prior_strength, 1.0))
        bonus = np.where(seen, self.c * np.sqrt(2.0 * log_t / safe), np.inf)
        return mean + bonus, mean

    def _choose(self, ctx: Context, k: int, rng: np.random.Generator, forced: np.ndarray | None) -> Choice:
        index, mean = self._index(ctx)
        idx, propensities, prefix = tie_aware_choice(index, k, rng, forced)
        return Choice(idx, propensities, prefix, mean)

    def _base_distribution(self, ctx: Context, k: int, rng: np.random.Generator) -> np.ndarray:
        return tie_marginals(self._index(ctx)[0], k)
