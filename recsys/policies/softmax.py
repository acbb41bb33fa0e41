"""Softmax (Boltzmann) exploration on the learned reward estimate: sample the slate without
replacement from softmax(logit(estimate) / temperature).

The logits are the log-odds of each candidate's learned click probability (``PerItemPolicy``):
for an unseen product that is the model's calibrated log-odds, an affine map of its score, so a
temperature keeps the meaning it has on the model's scores; clicks and views then move it.

Sampling without replacement from softmax(scores / temperature) is the Plackett–Luce model
(Plackett 1975; Luce 1959), drawn here with the Gumbel-top-k trick (Kool et al. 2019).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np

from recsys.policies.base import Choice, Context, check_range
from recsys.policies.evidence import PerItemPolicy
from recsys.policies.propensity import (
    gumbel_scores,
    plackett_luce_first_two,
    plackett_luce_prefix,
    sampled_marginals,
    slot_frequencies,
)


@dataclass
class Softmax(PerItemPolicy):
    """Plackett–Luce slates from softmax(logit(estimate) / temperature).

    Propensities: positions 0 and 1 and the realized prefix are exact; positions >= 2 are a
    seeded Monte-Carlo estimate from ``n_draws`` Gumbel-top-k samples.
    """

    name: ClassVar[str] = "softmax"

    temperature: float = 1.0
    """Softmax temperature: small is near-greedy, large is near-uniform."""
    n_draws: int = 200
    """Monte-Carlo draws for the propensities of positions >= 2."""

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
        propensities = slot_frequencies(perturbed[1:], idx) if k > 2 else np.empty(k)
        exact = plackett_luce_first_two(logits)
        head = min(k, 2)
        propensities[:head] = exact[idx[:head], np.arange(head)]
        return Choice(idx, propensities, plackett_luce_prefix(logits, idx), logits)

    def _base_distribution(self, ctx: Context, k: int, rng: np.random.Generator) -> np.ndarray:
        logits = self.logits(ctx)
        dist = sampled_marginals(gumbel_scores(logits, self.n_draws, rng), k)
        head = min(k, 2)
        dist[:, :head] = plackett_luce_first_two(logits)[:, :head]
        return dist
