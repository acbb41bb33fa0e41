"""Thompson sampling (Thompson 1933; Chapelle & Li 2011) on each product's appeal, started from
the model's prior: a brand-new product is sampled around the model's belief, not from Beta(1, 1).

Each candidate's click probability is p_ui * a_i with p_ui the model's calibrated prior and a_i
the item's appeal multiplier, whose posterior is Gamma(s + clicks_i, s + expected_i)
(``recsys.policies.evidence``). A decision draws every a_i once and ranks by p_ui * a_i.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsys.policies.base import Choice, Context, check_range
from recsys.policies.evidence import PerItemPolicy
from recsys.policies.propensity import sampled_marginals, slot_frequencies


@dataclass
class Thompson(PerItemPolicy):
    """Rank by p_ui * a_i with a_i drawn from its Gamma posterior; the evidence is stored without the
    prior, so a retrained model's new prior applies at once. Without a model prior p = 0.5.
    Propensities are a seeded Monte-Carlo estimate from ``n_draws`` posterior samples.
    """

    name: ClassVar[str] = "thompson"

    n_draws: int = 100
    """Posterior samples for the Monte-Carlo propensities."""

    def __post_init__(self) -> None:
        # a proper Gamma prior needs s > 0; the family's own check allows 0 for UCB1
        check_range("prior_strength", self.prior_strength, 0.0, float("inf"), open_low=True, open_high=True)
        super().__post_init__()
        check_range("n_draws", self.n_draws, 1, 1_000_000)

    def sample_scores(self, ctx: Context, draws: int, rng: np.random.Generator) -> np.ndarray:
        """(draws, n) sampled click scores p_ui * a_i (unclipped, so draws never tie)."""
        shape, rate = self.appeal(ctx)
        return self.model_prior(ctx) * rng.gamma(shape, 1.0 / rate, size=(draws, ctx.n))

    def _choose(self, ctx: Context, k: int, rng: np.random.Generator, forced: np.ndarray | None) -> Choice:
        samples = self.sample_scores(ctx, self.n_draws + 1, rng)
        idx = np.argsort(-samples[0], kind="stable")[:k] if forced is None else forced
        return Choice(idx, slot_frequencies(samples[1:], idx), None, self.estimate(ctx))

    def _base_distribution(self, ctx: Context, k: int, rng: np.random.Generator) -> np.ndarray:
        return sampled_marginals(self.sample_scores(ctx, self.n_draws, rng), k)
