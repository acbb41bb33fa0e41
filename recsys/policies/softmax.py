"""Softmax (Boltzmann) exploration on the learned reward estimate: sample the slate without
replacement from softmax(logit(estimate) / temperature).

The logits are the log-odds of each candidate's learned click probability (``PerItemPolicy``):
for an unseen product that is the model's calibrated log-odds, an affine map of its score; clicks
and views then move it.

Sampling without replacement from softmax(scores / temperature) is the Plackett–Luce model
(Plackett 1975; Luce 1959), drawn here with the Gumbel-top-k trick (Kool et al. 2019). The
Gumbel perturbations are independent per item, so the propensities of positions >= 2 are
Rao-Blackwellised (``recsys.policies.propensity.conditional_slot_probabilities``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsys.policies.base import Choice, Context, check_range
from recsys.policies.evidence import PerItemPolicy
from recsys.policies.propensity import (
    conditional_marginals,
    conditional_slot_probabilities,
    gumbel_cdf,
    gumbel_scores,
    plackett_luce_first_two,
    plackett_luce_prefix,
)


def logit_cdf(logits: np.ndarray) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """``cdf(x, items)`` = P(logit_i + Gumbel <= x) for candidates ``items``."""

    def cdf(x: np.ndarray, items: np.ndarray) -> np.ndarray:
        return gumbel_cdf(x, logits[items])

    return cdf


@dataclass
class Softmax(PerItemPolicy):
    """Plackett–Luce slates from softmax(logit(estimate) / temperature).

    Propensities: positions 0 and 1 and the realized prefix are exact; positions >= 2 are a
    seeded conditional Monte-Carlo estimate over ``n_draws`` further Gumbel-top-k samples: unbiased,
    never below the floor's share alone, relative standard error roughly 1 / sqrt(n_draws) for
    likely placements (``benchmarks/propensity_reference.py`` measures it against 100,000 draws).
    """

    name: ClassVar[str] = "softmax"

    temperature: float = 0.1
    """Softmax temperature on the log-odds: small is near-greedy, large is near-uniform. A page's
    log-odds spread a few tenths (std 0.3-0.5 with the demo's model), so 0.1 explores among the
    close calls and 1 is near-uniform."""
    n_draws: int = 200
    """Further Gumbel draws for the conditional Monte-Carlo propensities of positions >= 2."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("temperature", self.temperature, 0.0, float("inf"), open_low=True, open_high=True)
        check_range("n_draws", self.n_draws, 1, 1_000_000)

    def logits(self, ctx: Context) -> np.ndarray:
        """log-odds of the learned click estimate over the temperature."""
        p = self.estimate(ctx)
        return np.log(p / (1.0 - p)) / self.temperature

    def _choose(self, ctx: Context, k: int, rng: np.random.Generator, forced: np.ndarray | None) -> Choice:
        logits = self.logits(ctx)
        perturbed = gumbel_scores(logits, self.n_draws + 1, rng)
        idx = np.argsort(-perturbed[0], kind="stable")[:k] if forced is None else forced
        head = min(k, 2)
        propensities = np.empty(k)
        propensities[:head] = plackett_luce_first_two(logits)[idx[:head], np.arange(head)]
        if k > 2:
            propensities[2:] = conditional_slot_probabilities(perturbed[1:], logit_cdf(logits), idx[2:], np.arange(2, k))
        return Choice(idx, propensities, plackett_luce_prefix(logits, idx), logits)

    def _base_distribution(self, ctx: Context, k: int, rng: np.random.Generator) -> np.ndarray:
        logits = self.logits(ctx)
        dist = conditional_marginals(gumbel_scores(logits, self.n_draws, rng), logit_cdf(logits), k)
        head = min(k, 2)
        dist[:, :head] = plackett_luce_first_two(logits)[:, :head]
        return dist
