"""Per-position epsilon-greedy: each slot explores on its own with probability epsilon."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsys.policies.base import Choice, Context, Policy, check_range
from recsys.policies.propensity import epsilon_greedy_marginals, epsilon_greedy_prefix


@dataclass
class EpsilonGreedy(Policy):
    """Position by position: the best remaining item with prob. 1 - epsilon, else a uniform remaining one.

    Ties in the model score keep the lower candidate index first, so propensities are exact.
    """

    name: ClassVar[str] = "epsilon_greedy"

    epsilon: float = 0.1
    """Probability that a position shows a uniformly random remaining candidate."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("epsilon", self.epsilon, 0.0, 1.0)

    def _choose(self, ctx: Context, k: int, rng: np.random.Generator, forced: np.ndarray | None) -> Choice:
        order = np.argsort(-ctx.scores, kind="stable")
        idx = self._draw(order, k, rng) if forced is None else forced
        rank = np.empty(ctx.n, dtype=np.int64)
        rank[order] = np.arange(ctx.n)
        marginals = epsilon_greedy_marginals(rank[idx], ctx.n, self.epsilon, k)
        propensities = marginals[np.arange(k), np.arange(k)]
        prefix = epsilon_greedy_prefix(order, idx, self.epsilon)
        return Choice(idx, propensities, prefix, ctx.scores)

    def _draw(self, order: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        n = order.shape[0]
        shown = np.zeros(n, dtype=bool)
        idx = np.empty(k, dtype=np.int64)
        for j in range(k):
            if rng.random() < self.epsilon:
                idx[j] = np.flatnonzero(~shown)[rng.integers(n - j)]
            else:
                idx[j] = order[np.argmin(shown[order])]
            shown[idx[j]] = True
        return idx

    def _base_distribution(self, ctx: Context, k: int, rng: np.random.Generator) -> np.ndarray:
        order = np.argsort(-ctx.scores, kind="stable")
        rank = np.empty(ctx.n, dtype=np.int64)
        rank[order] = np.arange(ctx.n)
        return epsilon_greedy_marginals(rank, ctx.n, self.epsilon, k)
