"""Bernoulli Thompson sampling with a per-item Beta prior from the model (Thompson 1933;
Chapelle & Li 2011), so a brand-new item starts at the model's belief instead of Beta(1, 1)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsys.policies.base import Choice, Context, check_range
from recsys.policies.evidence import PerItemPolicy
from recsys.policies.propensity import sampled_marginals, slot_frequencies

PRIOR_CLIP = 1e-6
"""Model click probabilities are clipped to [PRIOR_CLIP, 1 - PRIOR_CLIP] so the Beta stays proper."""


@dataclass
class Thompson(PerItemPolicy):
    """Posterior Beta(s p + clicks, s (1 - p) + max(views - clicks, 0)) per item, p = model prior.

    The evidence is stored without the prior, so a retrained model's new prior applies at once.
    Without a model prior (``Context.prior`` None) p = 0.5, and s = 2 is the flat Beta(1, 1).
    Propensities are a seeded Monte-Carlo estimate from ``n_draws`` posterior samples.
    """

    name: ClassVar[str] = "thompson"

    prior_strength: float = 10.0
    """s: how many pseudo-views the model's click probability is worth."""
    n_draws: int = 100
    """Posterior samples for the Monte-Carlo propensities."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("prior_strength", self.prior_strength, 0.0, float("inf"), open_low=True, open_high=True)
        check_range("n_draws", self.n_draws, 1, 1_000_000)

    def posterior(self, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        """Beta parameters (alpha, beta) of every candidate."""
        clicks, views = self.evidence.lookup(ctx.item_ids)
        p = 0.5 if ctx.prior is None else np.clip(ctx.prior, PRIOR_CLIP, 1.0 - PRIOR_CLIP)
        alpha = self.prior_strength * p + clicks
        beta = self.prior_strength * (1.0 - p) + np.maximum(views - clicks, 0.0)
        return alpha * np.ones(ctx.n), beta * np.ones(ctx.n)

    def _choose(self, ctx: Context, k: int, rng: np.random.Generator, forced: np.ndarray | None) -> Choice:
        alpha, beta = self.posterior(ctx)
        samples = rng.beta(alpha, beta, size=(self.n_draws + 1, ctx.n))
        idx = np.argsort(-samples[0], kind="stable")[:k] if forced is None else forced
        return Choice(idx, slot_frequencies(samples[1:], idx), None, alpha / (alpha + beta))

    def _base_distribution(self, ctx: Context, k: int, rng: np.random.Generator) -> np.ndarray:
        alpha, beta = self.posterior(ctx)
        return sampled_marginals(rng.beta(alpha, beta, size=(self.n_draws, ctx.n)), k)
