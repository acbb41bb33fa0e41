"""Greedy on the model score: the exploitation baseline every exploring policy is measured against."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsys.policies.base import Choice, Context, Policy, top_k


@dataclass
class Greedy(Policy):
    """Show the k best-scored candidates (ties: lower candidate index first); only the floor explores."""

    name: ClassVar[str] = "greedy"

    def _choose(self, ctx: Context, k: int, rng: np.random.Generator, forced: np.ndarray | None) -> Choice:
        best = top_k(ctx.scores, k)
        idx = best if forced is None else forced
        hit = (idx == best).astype(np.float64)
        return Choice(idx, hit, np.cumprod(hit), ctx.scores)

    def _base_distribution(self, ctx: Context, k: int, rng: np.random.Generator) -> np.ndarray:
        dist = np.zeros((ctx.n, k))
        dist[top_k(ctx.scores, k), np.arange(k)] = 1.0
        return dist
