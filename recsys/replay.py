"""Simulation replay: run one exploration policy against the simulated shop and score it exactly.

Each round, ``batch`` shoppers visit; each gets ``n_candidates`` random products, the policy ranks
``k`` of them, the world draws clicks from its exact probabilities, and the policy learns from
the round's clicks in one batched update (feedback arrives a round late, as from a served log).
Regret is the oracle slate's expected clicks minus the policy's, in the world's current state,
so it is exact (no click noise). Products injected mid-run measure cold start: the expected CTR
of each new product over its first ``cold_impressions`` impressions.

The replay joins a policy (``recsys.policies``) and a world (``recsys.simulator``); the tuning
sweep, the demo and ``benchmarks/quality_bandit.py`` all call :func:`run_replay`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from recsys.policies import Context, Feedback, Policy, Slate
from recsys.simulator import World

RECENT_CLICKS = 10
"""Clicks of the shopper's history that the satiation feature looks at."""


@dataclass
class Observation:
    """What a policy sees about each (shopper, candidate) pair of one round."""

    scores: np.ndarray
    """float (B, m): the model's score of each candidate."""
    prior: np.ndarray | None
    """float (B, m): the model's calibrated click probability of each candidate (None: no model prior)."""
    features: np.ndarray
    """float (B, m, f): features for the linear policies."""
    users: np.ndarray | None = None
    """float (B, d): the model's user vector of each shopper (per-arm contextual learners read it)."""


Observer = Callable[[World, np.ndarray, np.ndarray], Observation]
"""(world, user ids (B,), candidate item indices (B, m)) -> Observation."""


def recent_category_shares(world: World, users: np.ndarray, window: int) -> np.ndarray:
    """(B, C) share of each shopper's last ``window`` clicks that fell in each category."""
    n_cat = len(world.vocab.categories)
    history, _, mask = world.histories(users, window)
    clicked = np.where(mask, world.item_category[history], n_cat)
    offsets = np.arange(len(users))[:, None] * (n_cat + 1)
    counts = np.bincount((clicked + offsets).ravel(), minlength=len(users) * (n_cat + 1))
    return counts.reshape(len(users), n_cat + 1)[:, :n_cat] / window


def world_model(world: World, users: np.ndarray, candidates: np.ndarray) -> Observation:
    """The best case of a calibrated text model, from the world's own ``prior_probs``.

    It knows each shopper's logged tastes and every product's words, but not latent interests
    the shopper has not clicked yet, nor satiation, drift or a product's own appeal. Features:
    a bias, the prior, the product's category one-hot, and the share of the shopper's last
    ``RECENT_CLICKS`` and last 3 clicks in that category (what satiation feeds on, as a log shows it).
    """
    prior = world.prior_probs(users, candidates)
    categories = world.item_category[candidates]
    n_cat = len(world.vocab.categories)
    recent = [np.take_along_axis(recent_category_shares(world, users, w), categories, axis=1)[..., None]
              for w in (RECENT_CLICKS, 3)]
    bias = np.ones(prior.shape + (1,))
    features = np.concatenate([bias, prior[..., None], np.eye(n_cat)[categories], *recent], axis=2)
    clipped = np.clip(prior, 1e-6, 1 - 1e-6)
    return Observation(np.log(clipped / (1 - clipped)), prior, features)


def without_prior(observe: Observer) -> Observer:
    """The same observer with the model's click prior withheld (a flat-prior baseline)."""

    def observe_flat(world: World, users: np.ndarray, candidates: np.ndarray) -> Observation:
        obs = observe(world, users, candidates)
        return Observation(obs.scores, None, obs.features, obs.users)

    return observe_flat


@dataclass
class ReplayResult:
    """Per-round outcome of one policy in one world."""

    policy: str
    """The policy's name."""
    regret: np.ndarray
    """float (rounds,): oracle minus policy expected clicks, summed over the round's shoppers."""
    expected_clicks: np.ndarray
    """float (rounds,): the policy's expected clicks per round."""
    clicks: np.ndarray
    """int (rounds,): clicks drawn per round."""
    cold_ctr: float
    """Expected CTR of injected products over their first ``cold_impressions`` impressions (NaN: none shown)."""
    cold_impressions: int
    """Impressions counted in ``cold_ctr``."""
    explored_share: float
    """Share of shown items flagged as explored."""
    seconds: float
    """Wall time of the replay."""
    new_clicks: float = 0.0
    """Expected clicks on the injected products over the whole run (how far new products got)."""
    extra: dict = field(default_factory=dict)
    """Room for callers' annotations (seed, parameters)."""

    @property
    def cumulative_regret(self) -> float:
        """Total regret over all rounds."""
        return float(self.regret.sum())


def contexts_of(world: World, obs: Observation, candidates: np.ndarray) -> list[Context]:
    """One policy Context per shopper of the round."""
    ids = world.item_ids[candidates]
    prior = [None] * len(candidates) if obs.prior is None else obs.prior
    return [Context(ids[b], obs.scores[b], obs.features[b], prior[b]) for b in range(len(candidates))]


def feedback_of(slates: list[Slate], obs: Observation, clicks: np.ndarray) -> Feedback:
    """The round's clicks as one Feedback batch (rows: shopper-major, position-minor)."""
    k = clicks.shape[1]
    rows = np.arange(len(slates))
    idx = np.stack([s.indices for s in slates])
    return Feedback(
        item_ids=np.concatenate([s.item_ids for s in slates]),
        rewards=clicks.astype(np.float64).ravel(),
        positions=np.tile(np.arange(k), len(slates)),
        features=obs.features[rows[:, None], idx].reshape(len(slates) * k, -1),
        prior=None if obs.prior is None else obs.prior[rows[:, None], idx].ravel(),
    )


class ColdStartMeter:
    """Expected CTR of injected products during their first N impressions."""

    def __init__(self, window: int) -> None:
        self.window, self.first_new, self.shown = window, None, None
        self.total, self.count = 0.0, 0
        self.all_clicks = 0.0
        """Expected clicks on the new products over the whole run, not only their first window."""

    def injected(self, first_index: int, n_items: int) -> None:
        """Start counting the ``n_items`` products whose indices start at ``first_index``."""
        self.first_new = first_index
        self.shown = np.zeros(n_items, dtype=np.int64)

    def observe(self, slates: np.ndarray, expected: np.ndarray) -> None:
        """Count each new product's impressions (slates (B, k) item indices) until its window is full."""
        if self.first_new is None:
            return
        new = slates >= self.first_new
        self.all_clicks += float(expected[new].sum())
        for item, prob in zip(slates[new] - self.first_new, expected[new], strict=True):
            if self.shown[item] < self.window:
                self.shown[item] += 1
                self.total += prob
                self.count += 1

    @property
    def ctr(self) -> float:
        """Mean expected click probability over the counted impressions (NaN before any)."""
        return self.total / self.count if self.count else float("nan")


def run_replay(world: World, policy: Policy, rounds: int, batch: int, seed: int, *, k: int = 10,
               n_candidates: int = 100, inject_round: int | None = None, inject_n: int = 50,
               cold_impressions: int = 20, observe: Observer = world_model) -> ReplayResult:
    """Play ``rounds`` rounds of ``batch`` visits; the policy learns after each round.

    Shoppers, candidates, injected products and click draws come from streams of ``seed`` that
    do not depend on the policy, so two policies replayed on equal worlds face the same traffic
    (common random numbers). ``world`` is modified (satiation, drift, injected products): pass a
    fresh one per replay. ``inject_round`` (default: a third of the way in) adds ``inject_n`` products.
    """
    if not (rounds >= 1 and batch >= 1 and 1 <= k <= n_candidates):
        raise ValueError(f"run_replay: rounds={rounds}, batch={batch} must be >= 1 and k={k} within "
                         f"[1, n_candidates={n_candidates}]")
    inject_round = rounds // 3 if inject_round is None else inject_round
    traffic, clicks_rng, policy_rng, inject_rng = (np.random.default_rng([seed, s]) for s in range(4))
    regret, expected_clicks, clicks = np.zeros(rounds), np.zeros(rounds), np.zeros(rounds, dtype=np.int64)
    cold, explored, shown = ColdStartMeter(cold_impressions), 0, 0
    start = time.perf_counter()
    for t in range(rounds):
        if t == inject_round and inject_n > 0:
            first = world.n_items
            world.inject_items(inject_n, inject_rng)
            cold.injected(first, inject_n)
        users = traffic.choice(world.n_users, size=batch, replace=False)
        candidates = np.stack([traffic.choice(world.n_items, n_candidates, replace=False) for _ in range(batch)])
        obs = observe(world, users, candidates)
        slates = policy.select_many(contexts_of(world, obs, candidates), k, policy_rng)
        chosen = np.take_along_axis(candidates, np.stack([s.indices for s in slates]), axis=1)
        regret[t] = world.regret(users, chosen, candidates).sum()
        result = world.step(users, chosen, clicks_rng)
        expected_clicks[t], clicks[t] = result.expected.sum(), result.clicks.sum()
        cold.observe(chosen, result.expected)
        explored += sum(int(s.explored.sum()) for s in slates)
        shown += batch * k
        policy.update(feedback_of(slates, obs, result.clicks))
    return ReplayResult(policy.name, regret, expected_clicks, clicks, cold.ctr, cold.count,
                        explored / shown, time.perf_counter() - start, new_clicks=cold.all_clicks)
