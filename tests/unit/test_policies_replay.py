"""Simulation replay: exact regret, common random numbers across policies, cold-start measurement."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from recsys.policies import Context, Feedback, make_policy
from recsys.replay import run_replay, without_prior, world_model
from recsys.simulator import World, WorldConfig

CFG = WorldConfig(users=60, items=120, seed=3)


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Matrices here are tiny: BLAS threads only add wake-up latency on a shared 2-core machine."""
    with threadpool_limits(1):
        yield


def replay(name: str, seed: int = 0, observe=world_model, **params):
    return run_replay(World.create(CFG), make_policy(name, **params), rounds=12, batch=6, seed=seed,
                      k=4, n_candidates=20, inject_round=4, inject_n=10, cold_impressions=5, observe=observe)


def test_replay_is_deterministic_and_regret_is_exact_and_non_negative():
    a, b = replay("lints"), replay("lints")
    np.testing.assert_array_equal(a.regret, b.regret)
    np.testing.assert_array_equal(a.clicks, b.clicks)
    assert (a.regret >= -1e-12).all() and a.cumulative_regret > 0
    assert a.cold_impressions > 0 and 0 < a.cold_ctr < 1


def test_the_oracle_has_no_regret_and_static_beats_uniform():
    """An 'oracle' observer (true attraction as the score) gives zero regret to the model-only ranking."""

    def truth(world, users, candidates):
        obs = world_model(world, users, candidates)
        obs.scores = world.attraction(users, candidates)
        return obs

    oracle = replay("static", observe=truth, floor=0.0)
    np.testing.assert_allclose(oracle.regret, 0.0, atol=1e-9)
    greedy = replay("static")
    uniform = replay("epsilon_greedy", epsilon=1.0)
    assert greedy.cumulative_regret < uniform.cumulative_regret


def test_policies_face_the_same_shoppers_and_candidates():
    """Common random numbers: the first round's regret of two policies differs only by their slates."""
    seen = []

    def spy(world, users, candidates):
        seen.append((users.copy(), candidates.copy()))
        return world_model(world, users, candidates)

    replay("greedy", observe=spy)
    first = list(seen)
    seen.clear()
    replay("thompson", observe=without_prior(spy))
    for (u1, c1), (u2, c2) in zip(first, seen, strict=True):
        np.testing.assert_array_equal(u1, u2)
        np.testing.assert_array_equal(c1, c2)


def test_replay_rejects_impossible_sizes():
    with pytest.raises(ValueError, match="k=30 within"):
        run_replay(World.create(CFG), make_policy("greedy"), rounds=1, batch=1, seed=0, k=30, n_candidates=20)


LEARNERS = {"greedy": {}, "epsilon_greedy": {"epsilon": 0.03}, "softmax": {"temperature": 0.25},
            "ucb1": {"c": 0.2, "prior_strength": 10.0},
            "thompson": {}, "linucb": {"alpha": 0.5}, "lints": {"scale": 0.2}}
"""Every learning policy, with exploration rates of the order a sweep picks."""


def bernoulli_regret(name: str, params: dict, seed: int, arms: int = 20, rounds: int = 3000) -> float:
    """Cumulative regret in a context-free Bernoulli world this project did not shape: no model
    signal at all (scores 0, no prior), one-hot features, one item per round, feedback at once."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(0.05, 0.5, arms)
    policy = make_policy(name, **params)
    ctx = Context(np.arange(arms), np.zeros(arms), np.eye(arms))
    regret = 0.0
    for _ in range(rounds):
        shown = policy.select(ctx, 1, rng).indices
        regret += means.max() - means[shown[0]]
        policy.update(Feedback(shown, (rng.random(1) < means[shown]).astype(float), features=ctx.features[shown]))
    return regret


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_every_learning_policy_beats_uniform_where_the_model_knows_nothing(name):
    """The textbook check: with no model signal, static and uniform random are one; a learner is far better."""
    uniform = [bernoulli_regret("epsilon_greedy", {"epsilon": 1.0}, seed) for seed in range(3)]
    learner = [bernoulli_regret(name, LEARNERS[name], seed) for seed in range(3)]
    assert np.mean(learner) < 0.5 * np.mean(uniform)


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_every_learning_policy_beats_static_in_the_simulated_shop(name):
    """The model prior knows tastes but not each product's own appeal: learning it lowers regret."""
    cfg = WorldConfig(users=200, items=100, seed=3)

    def regret(policy_name: str, params: dict, seed: int) -> float:
        return run_replay(World.create(cfg), make_policy(policy_name, **params), rounds=300, batch=10, seed=seed,
                          k=4, n_candidates=20, inject_round=100, inject_n=10, cold_impressions=5,
                          observe=world_model).cumulative_regret

    static = [regret("static", {}, seed) for seed in range(2)]
    learner = [regret(name, LEARNERS[name], seed) for seed in range(2)]
    assert np.mean(learner) < np.mean(static)
