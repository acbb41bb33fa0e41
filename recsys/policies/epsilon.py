"""Per-position epsilon-greedy on the learned reward estimate: each slot explores on its own with
probability epsilon (Sutton & Barto 2018, sec. 2.2, per slot of the slate)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsys.policies.base import Choice, Context, check_range
from recsys.policies.evidence import PerItemPolicy
from recsys.policies.propensity import epsilon_greedy_marginals, epsilon_greedy_prefix


@dataclass
class EpsilonGreedy(PerItemPolicy):
    """Position by position: the best remaining item by the learned estimate (as ``greedy`` ranks)
    with prob. 1 - epsilon, else a uniformly random remaining one.

    The ranking is deterministic (ties: model score, then candidate index), so propensities are exact.
    """

    name: ClassVar[str] = "epsilon_greedy"

    epsilon: float = 0.1
    """Probability that a position shows a uniformly random remaining candidate."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("epsilon", self.epsilon, 0.0, 1.0)

    def _choose(self, ctx: Context, k: int, rng: np.random.Generator, forced: np.ndarray | None) -> Choice:
        order, point = self.ranking(ctx)
        idx = self._draw(order, k, rng) if forced is None else forced
        rank = np.empty(ctx.n, dtype=np.int64)
        rank[order] = np.arange(ctx.n)
        marginals = epsilon_greedy_marginals(rank[idx], ctx.n, self.epsilon, k)
        propensities = marginals[np.arange(k), np.arange(k)]
        prefix = epsilon_greedy_prefix(order, idx, self.epsilon)
        return Choice(idx, propensities, prefix, point)

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
        order = self.ranking(ctx)[0]
        rank = np.empty(ctx.n, dtype=np.int64)
        rank[order] = np.arange(ctx.n)
        return epsilon_greedy_marginals(rank, ctx.n, self.epsilon, k)
