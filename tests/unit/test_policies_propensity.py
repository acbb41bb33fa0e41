"""Propensities: columns sum to one, exact forms match brute force, and slates drawn with a fixed
seed land on each (item, position) as often as the policy says they should."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import stats
from threadpoolctl import threadpool_limits

from recsys.policies import Context, Feedback, make_policy
from recsys.policies.propensity import (
    conditional_slot_probabilities,
    epsilon_greedy_marginals,
    epsilon_greedy_prefix,
    gumbel_scores,
    others_order_statistics,
    plackett_luce_first_two,
    plackett_luce_prefix,
    slot_frequencies,
    tie_marginals,
    tie_prefix,
)
from recsys.policies.softmax import logit_cdf

N, K, D = 6, 3, 4


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Matrices here are tiny: BLAS threads only add wake-up latency on a shared 2-core machine."""
    with threadpool_limits(1):
        yield


def tiny_context(seed: int = 0, n: int = N) -> Context:
    rng = np.random.default_rng(seed)
    return Context(
        item_ids=np.arange(100, 100 + n),
        scores=rng.normal(size=n),
        features=rng.normal(size=(n, D)),
        prior=rng.uniform(0.05, 0.6, size=n),
    )


def trained(name: str, **params) -> object:
    """A policy with some learned state, so posteriors are not all at the prior."""
    policy = make_policy(name, **params)
    ctx = tiny_context(1)
    rng = np.random.default_rng(2)
    rewards = rng.integers(0, 2, size=ctx.n).astype(float)
    policy.update(Feedback(ctx.item_ids, rewards, features=ctx.features))
    return policy


ALL = ["greedy", "epsilon_greedy", "softmax", "ucb1", "thompson", "linucb", "lints"]
EXACT = ["greedy", "epsilon_greedy", "ucb1", "linucb"]


@pytest.mark.parametrize("name", ALL)
def test_each_position_is_a_distribution_over_candidates(name):
    dist = trained(name).action_distribution(tiny_context(), K)
    assert dist.shape == (N, K)
    np.testing.assert_allclose(dist.sum(axis=0), 1.0, atol=1e-12)
    assert (dist >= 1e-3 / N - 1e-15).all(), "the floor keeps every cell above floor / n"
    # Rao-Blackwellised columns (thompson, softmax) are unbiased per cell, not constrained per row:
    # an item's cells may sum a little above 1 (by about the estimator's error, 1 / sqrt(n_draws))
    slack = 1e-12 if name in EXACT or name == "lints" else 0.02
    assert (dist.sum(axis=1) <= 1.0 + slack).all(), "an item fills at most one position"


@pytest.mark.parametrize("name", EXACT + ["softmax"])
def test_slate_propensities_are_the_action_distribution_cells(name):
    policy, ctx = trained(name), tiny_context()
    dist = policy.action_distribution(ctx, K)
    for seed in range(20):
        slate = policy.select(ctx, K, np.random.default_rng(seed))
        exact = slice(None) if name in EXACT else slice(0, 2)  # softmax: positions 0-1 are exact
        np.testing.assert_allclose(slate.propensities[exact], dist[slate.indices, np.arange(K)][exact], rtol=1e-12)


@pytest.mark.parametrize("name", ALL)
def test_empirical_frequencies_match_propensities(name):
    """Chi-square per position: 3,000 seeded slates against the policy's own (n, k) distribution."""
    policy, ctx = trained(name, floor=0.05), tiny_context()
    if hasattr(policy, "n_draws"):
        policy = policy.with_params(n_draws=20_000)
    expected = policy.action_distribution(ctx, K, np.random.default_rng(123))
    sampler = policy.with_params(n_draws=1) if hasattr(policy, "n_draws") else policy
    rng = np.random.default_rng(7)
    draws = 3000
    counts = np.zeros((N, K))
    for _ in range(draws):
        counts[sampler.select(ctx, K, rng).indices, np.arange(K)] += 1
    for j in range(K):
        p_value = stats.chisquare(counts[:, j], expected[:, j] * draws).pvalue
        assert p_value > 1e-4, f"{name} position {j}: counts {counts[:, j]} vs expected {expected[:, j] * draws}"


def all_slates(n: int, k: int):
    return itertools.permutations(range(n), k)


def brute_force_epsilon_greedy(scores: np.ndarray, eps: float, k: int) -> dict[tuple, float]:
    """Probability of every ordered slate by walking the sampling process position by position."""
    order = list(np.argsort(-scores, kind="stable"))
    out = {}
    for slate in all_slates(len(scores), k):
        prob, shown = 1.0, set()
        for j, item in enumerate(slate):
            best = next(i for i in order if i not in shown)
            prob *= eps / (len(scores) - j) + (1 - eps) * (item == best)
            shown.add(item)
        out[slate] = prob
    return out


def brute_force_plackett_luce(logits: np.ndarray, k: int) -> dict[tuple, float]:
    w = np.exp(logits)
    out = {}
    for slate in all_slates(len(logits), k):
        prob, left = 1.0, w.sum()
        for item in slate:
            prob *= w[item] / left
            left -= w[item]
        out[slate] = prob
    return out


def marginals(slate_probs: dict[tuple, float], n: int, k: int) -> np.ndarray:
    dist = np.zeros((n, k))
    for slate, prob in slate_probs.items():
        dist[list(slate), np.arange(k)] += prob
    return dist


@pytest.mark.parametrize("eps", [0.0, 0.3, 1.0])
def test_epsilon_greedy_dynamic_programme_matches_enumeration(eps):
    scores = np.array([0.3, 2.0, -1.0, 0.9, 0.1])
    truth = brute_force_epsilon_greedy(scores, eps, 3)
    rank = np.empty(5, dtype=np.int64)
    rank[np.argsort(-scores, kind="stable")] = np.arange(5)
    np.testing.assert_allclose(epsilon_greedy_marginals(rank, 5, eps, 3), marginals(truth, 5, 3), atol=1e-12)
    order = np.argsort(-scores, kind="stable")
    for slate in [(1, 3, 0), (2, 1, 4), (0, 1, 3)]:
        np.testing.assert_allclose(epsilon_greedy_prefix(order, np.array(slate), eps)[-1], truth[slate], atol=1e-15)


def test_plackett_luce_exact_positions_and_prefix_match_enumeration():
    logits = np.array([1.5, -0.2, 0.7, 3.0, 0.0])
    truth = brute_force_plackett_luce(logits, 3)
    np.testing.assert_allclose(plackett_luce_first_two(logits), marginals(truth, 5, 3)[:, :2], atol=1e-12)
    for slate in [(3, 0, 2), (1, 4, 0)]:
        np.testing.assert_allclose(plackett_luce_prefix(logits, np.array(slate))[-1], truth[slate], rtol=1e-12)


def test_plackett_luce_survives_a_dominant_item():
    logits = np.array([60.0, 0.0, 0.1, -0.3])
    first_two = plackett_luce_first_two(logits)
    np.testing.assert_allclose(first_two.sum(axis=0), 1.0)
    assert first_two[0, 1] < 1e-20 and first_two[2, 1] > first_two[1, 1] > first_two[3, 1] > 0


def test_ties_share_their_positions_uniformly_and_exactly():
    values = np.array([1.0, np.inf, 0.5, np.inf, np.inf, 1.0])
    dist = tie_marginals(values, 4)
    np.testing.assert_allclose(dist[[1, 3, 4], :3], 1 / 3)
    np.testing.assert_allclose(dist[[0, 5], 3], 1 / 2)
    np.testing.assert_allclose(tie_prefix(values, np.array([4, 1, 3, 5])), [1 / 3, 1 / 6, 1 / 6, 1 / 12])
    assert tie_prefix(values, np.array([0, 1, 3, 4]))[0] == 0.0


@pytest.mark.parametrize("name", ["greedy", "epsilon_greedy", "softmax", "ucb1", "linucb"])
def test_prefix_propensity_is_the_probability_of_the_whole_slate(name):
    """Exact-prefix policies: the full-slate probability matches its frequency over seeded draws."""
    policy, ctx = trained(name, floor=0.05), tiny_context()
    rng = np.random.default_rng(11)
    sampler = policy.with_params(n_draws=1) if name == "softmax" else policy
    seen: dict[tuple, int] = {}
    claimed: dict[tuple, float] = {}
    draws = 3000
    for _ in range(draws):
        slate = sampler.select(ctx, K, rng)
        key = tuple(slate.indices)
        seen[key] = seen.get(key, 0) + 1
        claimed[key] = slate.prefix_propensities[-1]
    top = max(seen, key=seen.get)
    observed = seen[top] / draws
    assert abs(observed - claimed[top]) < 4 * np.sqrt(claimed[top] * (1 - claimed[top]) / draws) + 1e-9


def test_monte_carlo_propensities_are_seeded_and_shrink_with_more_draws():
    policy, ctx = trained("lints"), tiny_context()
    a = policy.select(ctx, K, np.random.default_rng(5))
    b = policy.select(ctx, K, np.random.default_rng(5))
    np.testing.assert_array_equal(a.propensities, b.propensities)
    precise = policy.with_params(n_draws=50_000).action_distribution(ctx, K, np.random.default_rng(0))
    rough = policy.with_params(n_draws=200).action_distribution(ctx, K, np.random.default_rng(1))
    assert np.abs(rough - precise).max() < 0.15
    assert a.prefix_propensities is None, "Monte-Carlo policies do not claim an exact prefix"


def test_unseen_items_tie_at_infinity_and_share_every_position():
    """A fresh UCB1 ranks all candidates at +inf: a uniformly random slate, with exact propensities."""
    policy, ctx = make_policy("ucb1", floor=0.0), tiny_context()
    np.testing.assert_allclose(policy.action_distribution(ctx, K), 1 / N)
    rng = np.random.default_rng(3)
    counts = np.zeros((N, K))
    for _ in range(1200):
        slate = policy.select(ctx, K, rng)
        np.testing.assert_allclose(slate.propensities, 1 / N)
        np.testing.assert_allclose(slate.prefix_propensities, np.cumprod(1 / (N - np.arange(K))))
        counts[slate.indices, np.arange(K)] += 1
    assert stats.chisquare(counts.ravel(), np.full(N * K, 1200 / N)).pvalue > 1e-4


# ---- Monte-Carlo propensities as importance weights --------------------------------------

MONTE_CARLO = ["thompson", "lints", "softmax"]


def score_rows(policy, ctx: Context, draws: int, rng: np.random.Generator) -> np.ndarray:
    """Independent score rows of each Monte-Carlo policy, sampled the plain way for a reference."""
    if policy.name == "softmax":
        return policy.logits(ctx)[None, :] + rng.gumbel(size=(draws, ctx.n))
    rows = policy.sample_scores(ctx, draws, rng)
    return rows[0] if policy.name == "lints" else rows


def wide_context(n: int = 40) -> Context:
    """Many candidates with close scores: deep positions spread over many items (p ~ 1/n each)."""
    rng = np.random.default_rng(4)
    return Context(np.arange(n), rng.normal(size=n), rng.normal(size=(n, D)), rng.uniform(0.1, 0.14, size=n))


@pytest.mark.parametrize("name", MONTE_CARLO)
def test_logged_propensities_track_a_large_draw_reference(name):
    """Reference / logged averages near 1 over shown items, and no shown item is left with the floor alone.

    30 draws on a wide posterior: the earlier estimator (further draws only) gave mean
    ratios of 300-470 here, with 50-80 of the 180 shown items at the floor alone.
    """
    params = {"thompson": {"prior_strength": 2.0}, "lints": {"scale": 2.0}, "softmax": {"temperature": 0.5}}[name]
    policy, ctx, k = make_policy(name, n_draws=30, **params), wide_context(), 6
    rng = np.random.default_rng(8)
    policy.update(Feedback(ctx.item_ids[:10], rng.integers(0, 2, 10).astype(float), features=ctx.features[:10]))
    floor_share = policy.floor / ctx.n
    ratios = []
    for _ in range(30):
        slate = policy.select(ctx, k, rng)
        truth = floor_share + (1 - policy.floor) * slot_frequencies(score_rows(policy, ctx, 40_000, rng), slate.indices)
        ratios.append(truth / slate.propensities)
        collapsed = (slate.propensities < 2 * floor_share) & (truth > 0.01)
        assert not collapsed.any(), f"{name}: logged {slate.propensities[collapsed]} vs reference {truth[collapsed]}"
    assert 1 / 1.5 < np.mean(ratios) < 1.5, f"{name}: mean reference / logged {np.mean(ratios):.3f}"


def test_others_order_statistics_match_brute_force():
    samples = np.random.default_rng(0).normal(size=(4, 5))
    items, ranks = np.repeat(np.arange(5), 6), np.tile(np.arange(6), 5)
    got = others_order_statistics(samples, items, ranks)
    for r, (item, rank) in itertools.product(range(4), zip(items, ranks, strict=True)):
        others = np.sort(np.delete(samples[r], item))[::-1]
        want = np.inf if rank == 0 else (others[rank - 1] if rank <= 4 else -np.inf)
        assert got[r, list(zip(items, ranks, strict=True)).index((item, rank))] == want


def test_conditional_estimate_is_unbiased_for_plackett_luce():
    """Mean over 400 seeds of the 20-draw Rao-Blackwellised estimate matches exact enumeration."""
    logits = np.array([1.5, -0.2, 0.7, 3.0, 0.0])
    truth = marginals(brute_force_plackett_luce(logits, 3), 5, 3)
    items, slots = np.repeat(np.arange(5), 3), np.tile(np.arange(3), 5)
    rng = np.random.default_rng(12)
    runs = np.stack([conditional_slot_probabilities(gumbel_scores(logits, 20, rng), logit_cdf(logits), items, slots)
                     for _ in range(400)]).reshape(400, 5, 3)
    error = np.abs(runs.mean(axis=0) - truth)
    assert (error < 4 * runs.std(axis=0) / np.sqrt(400) + 1e-12).all(), f"bias {error.max():.4f}"
    assert (runs > 0).all(), "every reachable slot gets a positive estimate in every run"


def test_conditional_estimate_is_unbiased_for_thompson():
    """The Gamma-CDF estimate averages to the 400,000-draw frequency of each (item, slot)."""
    policy, ctx = trained("thompson", prior_strength=3.0), tiny_context()
    rng = np.random.default_rng(13)
    cdf = policy.score_cdf(ctx)
    items, slots = np.repeat(np.arange(N), K), np.tile(np.arange(K), N)
    runs = np.stack([conditional_slot_probabilities(policy.sample_scores(ctx, 20, rng), cdf, items, slots)
                     for _ in range(300)]).reshape(300, N, K)
    reference = np.stack([slot_frequencies(policy.sample_scores(ctx, 400_000, rng), np.full(K, i)) for i in range(N)])
    noise = 4 * np.sqrt(runs.var(axis=0) / 300 + reference * (1 - reference) / 400_000)
    assert (np.abs(runs.mean(axis=0) - reference) < noise + 1e-9).all()


@pytest.mark.parametrize("name", MONTE_CARLO)
def test_action_distribution_agrees_with_logged_propensities(name):
    """Off-policy evaluation recomputes a target with action_distribution: it must match what select logs."""
    policy = trained(name).with_params(n_draws=20_000)
    ctx = tiny_context()
    dist = policy.action_distribution(ctx, K, np.random.default_rng(3))
    for seed in range(5):
        slate = policy.select(ctx, K, np.random.default_rng(seed))
        np.testing.assert_allclose(slate.propensities, dist[slate.indices, np.arange(K)], rtol=0.05, atol=2e-3)
