"""The two non-exploring references: ``greedy`` exploits the learned reward estimate (the control
every exploring policy must beat) and ``static`` ranks by the model alone (what learning adds)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsys.policies.base import Choice, Context, Policy, top_k
from recsys.policies.evidence import PerItemPolicy


def deterministic_choice(best: np.ndarray, forced: np.ndarray | None, point: np.ndarray) -> Choice:
    """The Choice of a policy that always shows ``best`` (the floor may force another slate)."""
    idx = best if forced is None else forced
    hit = (idx == best).astype(np.float64)
    return Choice(idx, hit, np.cumprod(hit), point)


def deterministic_distribution(best: np.ndarray, n: int) -> np.ndarray:
    """(n, k) P(i at j) of a policy that always shows ``best``."""
    dist = np.zeros((n, best.shape[0]))
    dist[best, np.arange(best.shape[0])] = 1.0
    return dist


@dataclass
class Greedy(PerItemPolicy):
    """Show the k candidates with the highest learned click estimate (the model prior updated by
    each item's clicks and views; ties: model score, then candidate index). Only the floor explores."""

    name: ClassVar[str] = "greedy"

    def _choose(self, ctx: Context, k: int, rng: np.random.Generator, forced: np.ndarray | None) -> Choice:
        order, point = self.ranking(ctx)
        return deterministic_choice(order[:k], forced, point)

    def _base_distribution(self, ctx: Context, k: int, rng: np.random.Generator) -> np.ndarray:
        return deterministic_distribution(self.ranking(ctx)[0][:k], ctx.n)


@dataclass
class Static(Policy):
    """Show the k best-scored candidates by the model alone (ties: lower index first); never learns."""

    name: ClassVar[str] = "static"

    def _choose(self, ctx: Context, k: int, rng: np.random.Generator, forced: np.ndarray | None) -> Choice:
        return deterministic_choice(top_k(ctx.scores, k), forced, ctx.scores)

    def _base_distribution(self, ctx: Context, k: int, rng: np.random.Generator) -> np.ndarray:
        return deterministic_distribution(top_k(ctx.scores, k), ctx.n)
