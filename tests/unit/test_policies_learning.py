"""Learning and state: determinism, exact save/load, live reconfiguration, the model prior of
Thompson sampling, the shared linear posterior, and position de-biasing."""

from __future__ import annotations

import numpy as np
import pytest
from threadpoolctl import threadpool_limits

from recsys.policies import (
    POLICIES,
    Context,
    Feedback,
    LinearPosterior,
    Thompson,
    examination_weights,
    linear_policy_features,
    load_state,
    make_policy,
    read_state,
    save_state,
)
from recsys.policies.evidence import ItemEvidence


@pytest.fixture(autouse=True)
def one_blas_thread():
    """Matrices here are tiny: BLAS threads only add wake-up latency on a shared 2-core machine."""
    with threadpool_limits(1):
        yield


def context(n: int = 12, d: int = 5, seed: int = 0, first_id: int = 500) -> Context:
    rng = np.random.default_rng(seed)
    return Context(np.arange(first_id, first_id + n), rng.normal(size=n), rng.normal(size=(n, d)),
                   rng.uniform(0.02, 0.5, size=n))


def play(policy, rounds: int = 30, seed: int = 0) -> None:
    """Select and learn for a few rounds in a fixed random world."""
    rng = np.random.default_rng(seed)
    for t in range(rounds):
        ctx = context(seed=t % 3)
        slate = policy.select(ctx, 4, rng)
        rewards = (rng.random(4) < 0.3).astype(float)
        policy.update(Feedback(slate.item_ids, rewards, np.arange(4), ctx.features[slate.indices]))


def same_slates(a, b, seed: int = 9) -> bool:
    ctx = context(seed=1)
    x, y = a.select(ctx, 4, np.random.default_rng(seed)), b.select(ctx, 4, np.random.default_rng(seed))
    return (np.array_equal(x.item_ids, y.item_ids) and np.array_equal(x.propensities, y.propensities)
            and np.array_equal(x.explored, y.explored))


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_same_seed_and_inputs_give_the_same_slates(name):
    a, b = make_policy(name), make_policy(name)
    play(a), play(b)
    assert same_slates(a, b)


@pytest.mark.parametrize("name", sorted(POLICIES))
def test_state_dict_round_trips_exactly_through_a_file(name, tmp_path):
    policy = make_policy(name, floor=0.01)
    play(policy)
    path = save_state(policy, tmp_path / "bandit.safetensors")
    loaded = load_state(path)
    arrays, header = policy.state_dict()
    arrays2, header2 = loaded.state_dict()
    assert header == header2 and type(loaded) is type(policy)
    assert arrays.keys() == arrays2.keys()
    for key in arrays:
        assert arrays[key].dtype == arrays2[key].dtype
        np.testing.assert_array_equal(arrays[key], arrays2[key])
    assert same_slates(policy, loaded)
    assert b"pickle" not in path.read_bytes() and read_state(path)[1]["version"] == 1


def test_with_params_keeps_learned_state_and_changes_exploration():
    policy = make_policy("lints", scale=0.5)
    play(policy)
    bolder = policy.with_params(scale=2.0)
    assert bolder.scale == 2.0 and bolder.n_updates == policy.n_updates
    np.testing.assert_array_equal(bolder.posterior.mean, policy.posterior.mean)
    assert policy.scale == 0.5, "the original is untouched"


def test_a_new_item_starts_at_the_model_prior_and_learns_its_appeal():
    policy = Thompson(prior_strength=8.0)
    ctx = context()
    shape, rate = policy.appeal(ctx)
    np.testing.assert_array_equal(shape, 8.0), np.testing.assert_array_equal(rate, 8.0)
    np.testing.assert_allclose(policy.estimate(ctx), ctx.prior)
    policy.update(Feedback(ctx.item_ids[:1], [1.0], prior=ctx.prior[:1]))
    policy.update(Feedback(ctx.item_ids[:1], [0.0], prior=ctx.prior[:1]))
    shape2, rate2 = policy.appeal(ctx)
    assert (shape2[0], rate2[0]) == (9.0, 8.0 + 2 * ctx.prior[0])
    np.testing.assert_array_equal(shape2[1:], shape[1:])
    np.testing.assert_allclose(policy.estimate(ctx)[0], ctx.prior[0] * 9.0 / (8.0 + 2 * ctx.prior[0]))
    flat = Thompson(prior_strength=2.0).estimate(Context(ctx.item_ids, ctx.scores))
    np.testing.assert_array_equal(flat, 0.5)


@pytest.mark.parametrize("name", ["greedy", "epsilon_greedy", "softmax", "ucb1", "thompson"])
def test_the_estimate_keeps_the_shoppers_prior_and_learns_the_products_appeal(name):
    """Two shoppers with different priors for one product that clicks at 3x what the model says:
    both estimates triple (the model's personalisation is kept, not averaged away)."""
    rng = np.random.default_rng(4)
    policy = make_policy(name)
    prior = rng.choice([0.02, 0.1], size=20_000)
    policy.update(Feedback(np.full(20_000, 7), (rng.random(20_000) < 3 * prior).astype(float), prior=prior))
    for p in (0.02, 0.1):
        assert abs(policy.estimate(Context([7], [0.0], prior=[p]))[0] / p - 3.0) < 0.15


def test_thompson_prefers_a_new_item_the_model_likes():
    """A brand-new item with a high model prior is shown far more often than one with a low prior."""
    policy = Thompson(prior_strength=20.0, n_draws=1)
    ctx = Context([1, 2, 3], [0.0, 0.0, 0.0], prior=[0.6, 0.1, 0.1])
    rng = np.random.default_rng(0)
    first = [policy.select(ctx, 1, rng).item_ids[0] for _ in range(300)]
    assert first.count(1) > 250


def test_linear_posterior_matches_the_closed_form():
    rng = np.random.default_rng(3)
    post = LinearPosterior(ridge=2.0)
    post.fit_dim(6, "test")
    x, r = rng.normal(size=(40, 6)), rng.random(40)
    post.add(x[:25], r[:25])
    post.add(x[25:], r[25:])
    a = 2.0 * np.eye(6) + x.T @ x
    np.testing.assert_allclose(post.precision, a)
    np.testing.assert_allclose(post.mean, np.linalg.solve(a, x.T @ r))
    np.testing.assert_allclose(post.chol @ post.chol.T, a)
    white = post.whiten(x[:3])
    np.testing.assert_allclose((white * white).sum(axis=0), np.einsum("ij,jk,ik->i", x[:3], np.linalg.inv(a), x[:3]))


@pytest.mark.parametrize("name", ["linucb", "lints"])
def test_linear_policies_learn_the_best_item_from_features(name):
    rng = np.random.default_rng(4)
    w = np.array([1.0, -1.0, 0.5, 0.0])
    features = rng.normal(size=(20, 4))
    truth = 1 / (1 + np.exp(-2 * features @ w))
    ctx = Context(np.arange(20), np.zeros(20), features)
    policy = make_policy(name)
    for _ in range(300):
        slate = policy.select(ctx, 2, rng)
        policy.update(Feedback(slate.item_ids, (rng.random(2) < truth[slate.indices]).astype(float),
                               features=features[slate.indices]))
    greedy = np.argsort(-(features @ policy.posterior.mean))[:3]
    assert int(np.argmax(truth)) in greedy


def test_examination_weights_recover_a_position_based_model():
    rng = np.random.default_rng(5)
    theta = np.array([1.0, 0.7, 0.45, 0.3])
    attract = rng.uniform(0.05, 0.6, size=30)
    rows = 40_000
    items = rng.integers(0, 30, rows)
    positions = rng.integers(0, 4, rows)
    clicks = (rng.random(rows) < theta[positions] * attract[items]).astype(float)
    np.testing.assert_allclose(examination_weights(positions, clicks, items), theta, atol=0.04)


def test_position_debiasing_estimates_attractiveness_not_click_rate():
    """Shown only at position 2 (examined 40% of the time), an item's posterior mean converges to
    its attractiveness with examination weights, and to 40% of it without."""
    rng = np.random.default_rng(6)
    examination = (1.0, 0.7, 0.4)
    feedback = Feedback(np.full(4000, 7), (rng.random(4000) < 0.4 * 0.5).astype(float), np.full(4000, 2))
    ctx = Context([7], [0.0], prior=[0.1])
    feedback.prior = np.full(4000, 0.1)
    debiased, naive = Thompson(examination=examination), Thompson()
    debiased.update(feedback), naive.update(feedback)
    assert abs(debiased.estimate(ctx)[0] - 0.5) < 0.04 and abs(naive.estimate(ctx)[0] - 0.2) < 0.03


def test_item_evidence_grows_for_new_items_and_accumulates_repeats():
    ev = ItemEvidence()
    ev.add(np.array([30, 10, 30]), np.array([1.0, 0.0, 1.0]), np.array([1.0, 1.0, 0.5]), np.array([0.1, 0.2, 0.05]))
    ev.add(np.array([20, 10]), np.array([1.0, 1.0]), np.array([1.0, 1.0]))
    clicks, views, expected = ev.lookup(np.array([10, 20, 30, 40]))
    np.testing.assert_array_equal(clicks, [1.0, 1.0, 2.0, 0.0])
    np.testing.assert_array_equal(views, [2.0, 1.0, 1.5, 0.0])
    np.testing.assert_allclose(expected, [0.7, 0.5, 0.15, 0.0])  # no prior given: the flat 0.5 per view
    assert ev.total_views == 4.5


def test_linear_policy_features_hold_the_prior_and_reproduce_the_two_tower_score():
    rng = np.random.default_rng(8)
    user, items, prior = rng.normal(size=8), rng.normal(size=(5, 8)), rng.uniform(0.01, 0.3, 5)
    feats = linear_policy_features(user, items, prior)
    assert feats.shape == (5, 10)
    np.testing.assert_array_equal(feats[:, 0], 1.0)
    np.testing.assert_array_equal(feats[:, 1], prior)  # weight 1 on this column reproduces the model at once
    np.testing.assert_allclose(feats[:, 2:].sum(axis=1) / 0.5, items @ user / 0.5)
    bare = linear_policy_features(user, items, None)  # an uncalibrated model: same width, zero prior column
    assert bare.shape == feats.shape and not bare[:, 1].any()


@pytest.mark.parametrize(
    ("user", "items", "prior", "match"),
    [
        (np.ones(3), np.ones((4, 2)), None, r"linear_policy_features: user_vec \(3,\) and item_vecs \(4, 2\) must be"),
        (np.ones(2), np.ones((4, 2)), np.ones(3), r"linear_policy_features: prior \(3,\) must be \(4,\)"),
    ],
)
def test_linear_policy_features_refuse_mismatched_shapes(user, items, prior, match):
    with pytest.raises(ValueError, match=match):
        linear_policy_features(user, items, prior)


def test_explored_marks_positions_that_differ_from_the_greedy_slate():
    ctx = Context([1, 2, 3, 4], [4.0, 3.0, 2.0, 1.0])
    greedy = make_policy("greedy", floor=0.0).select(ctx, 3, np.random.default_rng(0))
    assert not greedy.explored.any() and list(greedy.item_ids) == [1, 2, 3]
    uniform = make_policy("epsilon_greedy", epsilon=1.0, floor=0.0)
    slates = [uniform.select(ctx, 3, np.random.default_rng(s)) for s in range(50)]
    for s in slates:
        np.testing.assert_array_equal(s.explored, s.item_ids != np.array([1, 2, 3]))
    assert any(s.explored.any() for s in slates)


def test_ucb1_with_a_prior_strength_ranks_unseen_items_by_the_model_prior():
    ctx = Context([1, 2, 3, 4], np.zeros(4), prior=[0.1, 0.4, 0.2, 0.3])
    trusting = make_policy("ucb1", prior_strength=5.0, c=0.5, floor=0.0).select(ctx, 4, np.random.default_rng(0))
    assert list(trusting.item_ids) == [2, 4, 3, 1]  # equal bonus for unseen items: the prior decides
    blind = make_policy("ucb1", floor=0.0).action_distribution(ctx, 4)  # prior_strength 0: unseen items all tie
    np.testing.assert_allclose(blind, 0.25)
