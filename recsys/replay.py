"""Simulation replay: run one exploration policy against the simulated shop and score it exactly.

Each round, ``batch`` shoppers visit; each gets ``n_candidates`` random products, the policy ranks
``k`` of them, the world draws clicks from its exact probabilities, and the policy learns from
the round's clicks in one batched update (feedback arrives a round late, as from a served log).
Regret is the oracle slate's expected clicks minus the policy's, in the world's current state,
so it is exact (no click noise). Products injected mid-run measure cold start: the expected CTR
of each new product over its first ``cold_impressions`` impressions.

The replay joins a recommender and a world (``recsys.simulator``) in one loop, :func:`replay_rounds`.
The recommender is a policy in this process (:class:`PolicyRecommender`, what :func:`run_replay` and
so the tuning sweep and ``benchmarks/quality_bandit.py`` use), or the served app over HTTP
(``serendip.served_app``, the demo's shoppers).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import pandas as pd

from recsys.policies import Context, Feedback, Policy, Slate
from recsys.simulator import World
from recsys.simulator.world import StepResult

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


@dataclass
class Served:
    """What a recommender answered for one round's visits."""

    answered: np.ndarray
    """int (B',): which of the round's visits got a whole slate (all of them in process; a failed request drops one)."""
    slates: np.ndarray
    """int (B', k): each answered visit's slate as item indices into the world's catalog, in rank order."""
    explored: int
    """Shown items the recommender flagged as explored."""
    arms: list[str]
    """Which policy ranked each answered visit (the A/B arm when served)."""


@dataclass
class Round:
    """One round after the shoppers acted on their slates: what the recommender learns from."""

    t: int
    """Round number, from 0."""
    users: np.ndarray
    """int (B',): the answered visits' shoppers."""
    candidates: np.ndarray
    """int (B', m): their candidates (item indices)."""
    served: Served
    """The slates they saw."""
    step: StepResult
    """What they did with them (clicks, carts, purchases, exact click probabilities)."""
    regret: np.ndarray
    """float (B',): each visit's oracle expected clicks minus its slate's, before the step."""


class Recommender(Protocol):
    """What ranks each round's visits and learns from them."""

    name: str

    def recommend(self, world: World, users: np.ndarray, candidates: np.ndarray, k: int,
                  rng: np.random.Generator) -> Served:
        """Slates for the shoppers ``users`` (B,) from their ``candidates`` (B, m)."""

    def learn(self, world: World, outcome: Round) -> None:
        """Take in the round's feedback."""

    def add_items(self, rows: pd.DataFrame) -> None:
        """New products (their items-table rows) joined the catalog."""


class PolicyRecommender:
    """A policy ranking in this process on what ``observe`` shows it, learning from the round's clicks."""

    def __init__(self, policy: Policy, observe: Observer = world_model) -> None:
        self.policy, self.observe, self.name = policy, observe, policy.name
        self._last: tuple[list[Slate], Observation] | None = None

    def recommend(self, world: World, users: np.ndarray, candidates: np.ndarray, k: int,
                  rng: np.random.Generator) -> Served:
        """The policy's slates on the observer's scores, prior and features."""
        obs = self.observe(world, users, candidates)
        slates = self.policy.select_many(contexts_of(world, obs, candidates), k, rng)
        self._last = (slates, obs)
        chosen = np.take_along_axis(candidates, np.stack([s.indices for s in slates]), axis=1)
        return Served(np.arange(len(users)), chosen, sum(int(s.explored.sum()) for s in slates),
                      [self.name] * len(users))

    def learn(self, world: World, outcome: Round) -> None:
        """One batched update on the round's clicks."""
        slates, obs = self._last
        self.policy.update(feedback_of(slates, obs, outcome.step.clicks))

    def add_items(self, rows: pd.DataFrame) -> None:
        """Nothing to do: new products reach the policy as candidates."""


def run_replay(world: World, policy: Policy, rounds: int, batch: int, seed: int, *, k: int = 10,
               n_candidates: int = 100, inject_round: int | None = None, inject_n: int = 50,
               cold_impressions: int = 20, observe: Observer = world_model) -> ReplayResult:
    """Play ``rounds`` rounds of ``batch`` visits with ``policy`` in this process (:func:`replay_rounds`)."""
    return replay_rounds(world, PolicyRecommender(policy, observe), rounds, batch, seed, k=k,
                         n_candidates=n_candidates, inject_round=inject_round, inject_n=inject_n,
                         cold_impressions=cold_impressions)


def replay_rounds(world: World, recommender: Recommender, rounds: int, batch: int, seed: int, *, k: int = 10,
                  n_candidates: int = 100, inject_round: int | None = None, inject_n: int = 50,
                  cold_impressions: int = 20, on_round: Callable[[Round], None] | None = None) -> ReplayResult:
    """Play ``rounds`` rounds of ``batch`` visits; the recommender learns after each round.

    Shoppers, candidates, injected products and click draws come from streams of ``seed`` that
    do not depend on the recommender, so two policies replayed on equal worlds face the same traffic
    (common random numbers). ``world`` is modified (satiation, drift, injected products): pass a
    fresh one per replay. ``inject_round`` (default: a third of the way in) adds ``inject_n`` products.
    ``on_round`` sees every round that had an answered visit, after the recommender learned from it.
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
            recommender.add_items(world.inject_items(inject_n, inject_rng))
            cold.injected(first, inject_n)
        users = traffic.choice(world.n_users, size=batch, replace=False)
        candidates = np.stack([traffic.choice(world.n_items, n_candidates, replace=False) for _ in range(batch)])
        served = recommender.recommend(world, users, candidates, k, policy_rng)
        if len(served.answered) == 0:
            continue
        users, candidates = users[served.answered], candidates[served.answered]
        visit_regret = world.regret(users, served.slates, candidates)
        result = world.step(users, served.slates, clicks_rng)
        regret[t], expected_clicks[t], clicks[t] = visit_regret.sum(), result.expected.sum(), result.clicks.sum()
        cold.observe(served.slates, result.expected)
        explored += served.explored
        shown += len(users) * k
        done = Round(t, users, candidates, served, result, visit_regret)
        recommender.learn(world, done)
        if on_round is not None:
            on_round(done)
    return ReplayResult(recommender.name, regret, expected_clicks, clicks, cold.ctr, cold.count,
                        explored / shown if shown else float("nan"), time.perf_counter() - start,
                        new_clicks=cold.all_clicks)
