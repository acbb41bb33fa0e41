"""Off-policy estimators on synthetic logs whose true target value is known exactly."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from recsys.ope.estimators import ESTIMATORS, RewardPredictions, estimate
from recsys.ope.propensity import effective_sample_size, logged_action_probability


@dataclass
class World:
    """A tiny contextual slate world: q(x, a, k), logging and target distributions per (x, k)."""

    q: np.ndarray
    logger: np.ndarray
    target: np.ndarray

    @property
    def truth(self) -> float:
        """Expected reward per row under the target, contexts and positions uniform."""
        return float((self.target * self.q).sum(axis=1).mean())


def make_world(n_ctx=4, n_actions=5, n_pos=3, uniform=False, seed=123) -> World:
    rng = np.random.default_rng(seed)
    q = rng.uniform(0.05, 0.6, size=(n_ctx, n_actions, n_pos))
    shape = (n_ctx, n_pos, n_actions)
    logger = np.full(shape, 1 / n_actions) if uniform else rng.dirichlet(np.ones(n_actions), size=shape[:2])
    logger = 0.9 * logger + 0.1 / n_actions
    target = rng.dirichlet(0.5 * np.ones(n_actions), size=shape[:2])
    return World(q=q, logger=logger.transpose(0, 2, 1), target=target.transpose(0, 2, 1))


@dataclass
class Log:
    x: np.ndarray
    a: np.ndarray
    k: np.ndarray
    r: np.ndarray
    pb: np.ndarray
    pe: np.ndarray
    pred: RewardPredictions


def sample_log(world: World, n: int, seed: int, model_q: np.ndarray | None = None) -> Log:
    rng = np.random.default_rng(seed)
    n_ctx, n_actions, n_pos = world.q.shape
    x, k = rng.integers(0, n_ctx, n), rng.integers(0, n_pos, n)
    probs = world.logger[x, :, k]
    a = (probs.cumsum(axis=1) > rng.random(n)[:, None]).argmax(axis=1)
    r = (rng.random(n) < world.q[x, a, k]).astype(float)
    q = world.q if model_q is None else model_q
    pred = RewardPredictions.from_candidates(q[x, :, k], world.target[x, :, k], a)
    return Log(x, a, k, r, probs[np.arange(n), a], world.target[x, a, k], pred)


def run(name: str, log: Log, **kw):
    return estimate(name, log.r, log.pb, log.pe, log.pred, positions=log.k, **kw)


@pytest.mark.parametrize("name", sorted(ESTIMATORS))
def test_every_estimator_is_unbiased_on_a_log_with_known_truth(name):
    world = make_world(uniform=name == "replay")
    values = np.array([run(name, sample_log(world, 400, seed), n_boot=0).value for seed in range(300)])
    se = values.std(ddof=1) / np.sqrt(values.size)
    # Self-normalized estimators carry an O(1/n) bias; 0.002 is far below it at n=400.
    assert abs(values.mean() - world.truth) < 4 * se + 0.002, (values.mean(), world.truth, se)


def test_dr_stays_unbiased_with_a_wrong_reward_model():
    world = make_world()
    wrong = np.full_like(world.q, 0.9)
    dm = np.array([run("dm", sample_log(world, 400, s, wrong), n_boot=0).value for s in range(200)])
    dr = np.array([run("dr", sample_log(world, 400, s, wrong), n_boot=0).value for s in range(200)])
    assert abs(dm.mean() - world.truth) > 0.2  # the model is wrong, so DM is
    assert abs(dr.mean() - world.truth) < 4 * dr.std(ddof=1) / np.sqrt(dr.size)


def balanced_uniform_log(seed: int) -> Log:
    """Every (context, action, position) exactly twice, logged uniformly: sum pi_e = n / n_actions."""
    world = make_world(uniform=True)
    n_ctx, n_actions, n_pos = world.q.shape
    x, a, k = (g.ravel() for g in np.meshgrid(range(n_ctx), range(n_actions), range(n_pos), indexing="ij"))
    x, a, k = np.tile(x, 2), np.tile(a, 2), np.tile(k, 2)
    r = (np.random.default_rng(seed).random(x.size) < world.q[x, a, k]).astype(float)
    pred = RewardPredictions.from_candidates(world.q[x, :, k], world.target[x, :, k], a)
    return Log(x, a, k, r, np.full(x.size, 1 / n_actions), world.target[x, a, k], pred)


@pytest.mark.parametrize("seed", range(5))
def test_ips_equals_replay_on_a_balanced_uniform_log(seed):
    log = balanced_uniform_log(seed)
    assert run("ips", log, n_boot=0).value == pytest.approx(run("replay", log, n_boot=0).value, rel=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_snips_equals_replay_on_any_uniform_log(seed):
    log = sample_log(make_world(uniform=True), 300, seed)
    assert run("snips", log, n_boot=0).value == pytest.approx(run("replay", log, n_boot=0).value, rel=1e-12)


@pytest.mark.parametrize("name", ["ips", "snips", "dr"])
def test_bootstrap_interval_covers_the_truth(name):
    world = make_world()
    covered = []
    for seed in range(60):
        e = run(name, sample_log(world, 500, seed), n_boot=200, seed=seed)
        assert e.ci_low <= e.value <= e.ci_high
        covered.append(e.ci_low <= world.truth <= e.ci_high)
    assert np.mean(covered) >= 0.85


@pytest.mark.parametrize(
    ("weights", "ess"),
    [([1, 1, 1, 1], 4.0), ([1, 0, 0, 0], 1.0), ([2, 2], 2.0), ([0, 0], 0.0), ([1, 3], 1.6)],
)
def test_effective_sample_size_is_kish(weights, ess):
    assert effective_sample_size(weights) == pytest.approx(ess)


def test_estimate_reports_the_ess_of_its_own_weights():
    log = sample_log(make_world(), 500, 0)
    w = log.pe / log.pb
    assert run("ips", log, n_boot=0).ess == pytest.approx(w.sum() ** 2 / (w**2).sum())
    assert run("dm", log, n_boot=0).ess == 500
    uniform = sample_log(make_world(uniform=True), 500, 0)
    assert run("replay", uniform, n_boot=0).ess == pytest.approx(
        uniform.pe.sum() ** 2 / (uniform.pe**2).sum()
    )


def test_clipping_caps_every_weight():
    log = sample_log(make_world(), 500, 1)
    clipped = run("ips", log, clip=2.0, n_boot=0)
    assert clipped.value == pytest.approx(np.mean(np.minimum(log.pe / log.pb, 2.0) * log.r))
    assert clipped.ess >= run("ips", log, n_boot=0).ess


def test_self_normalization_is_per_position():
    # Position 0: weights 1 and 3, rewards 1 and 0 -> 1/4. Position 1: one row, weight 2, reward 1 -> 1.
    e = estimate("snips", [1, 0, 1], [0.5, 0.25, 0.25], [0.5, 0.75, 0.5], positions=[0, 0, 1], n_boot=0)
    assert e.by_position == pytest.approx({0: 0.25, 1: 1.0})
    assert e.value == pytest.approx(2 / 3 * 0.25 + 1 / 3 * 1.0)


def test_cluster_bootstrap_keeps_the_value_and_resamples_whole_slates():
    log = sample_log(make_world(), 600, 2)
    slates = np.arange(600) // 3
    plain, grouped = run("ips", log, n_boot=300), run("ips", log, n_boot=300, clusters=slates)
    assert grouped.value == plain.value
    assert grouped.ci_low < grouped.value < grouped.ci_high
    assert grouped.ci_high - grouped.ci_low != plain.ci_high - plain.ci_low


def test_three_dimensional_action_dist_is_read_at_each_rows_position():
    world = make_world()
    log = sample_log(world, 50, 3)
    q3, dist3 = world.q[log.x], world.target[log.x]  # (n, n_actions, n_positions)
    pred = RewardPredictions.from_candidates(q3, dist3, log.a, positions=log.k)
    np.testing.assert_allclose(pred.target, log.pred.target)
    np.testing.assert_allclose(pred.logged, log.pred.logged)
    np.testing.assert_allclose(logged_action_probability(dist3, log.a, log.k), log.pe)


def test_same_seed_gives_the_same_interval():
    log = sample_log(make_world(), 300, 4)
    assert run("dr", log, seed=7) == run("dr", log, seed=7)


def test_events_are_the_reward_mass_of_the_effective_sample():
    # Weights 1, 0, 1, 0.4 and rewards 1, 1, 0, 1: sum w r = 1.4, sum w = 2.4, sum w^2 = 2.16.
    e = estimate("ips", [1, 1, 0, 1], [0.5] * 4, [0.5, 0.0, 0.5, 0.2], n_boot=0)
    assert e.events == pytest.approx(1.4 * 2.4 / 2.16)
    # Clicks only where the target almost never goes: many rewarded rows, next to no evidence.
    rare = estimate("ips", [1] * 10 + [0] * 10, [0.5] * 20, [1e-4] * 10 + [0.5] * 10, n_boot=0)
    assert rare.events < 0.01
    pred = RewardPredictions([0.1] * 4, [0.1] * 4)
    assert estimate("dm", [1, 1, 0, 1], [0.5] * 4, [0.5, 0.0, 0.5, 0.2], pred, n_boot=0).events == 3


@pytest.mark.parametrize("n_boot", [2, 65, 129])
def test_any_number_of_resamples_works(n_boot):
    e = run("ips", sample_log(make_world(), 200, 5), n_boot=n_boot)
    assert np.isfinite(e.ci_low) and e.ci_low <= e.ci_high
