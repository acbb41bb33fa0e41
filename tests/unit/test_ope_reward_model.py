"""The cross-fitted reward model: close to the truth, and each row predicted by a model that never saw it."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.ope.estimators import RewardPredictions, estimate
from recsys.ope.reward_model import RewardModelConfig, cross_fit


def synthetic(n=3000, n_ctx=4, n_items=6, n_pos=3, seed=0):
    """Contexts x items x positions with a logistic truth; uniform logging."""
    rng = np.random.default_rng(seed)
    base = rng.normal(size=(n_ctx, 1, 1)) + rng.normal(size=(1, n_items, 1)) - 0.4 * np.arange(n_pos) - 1.5
    truth = 1 / (1 + np.exp(-base))
    x, k, a = rng.integers(0, n_ctx, n), rng.integers(0, n_pos, n), rng.integers(0, n_items, n)
    feats = np.stack(np.broadcast_arrays(x[:, None], np.arange(n_items)[None, :], k[:, None]), axis=-1)
    return feats.astype(float), a, truth[x, :, k], rng


CATEGORICAL = RewardModelConfig(categorical=(0, 1, 2))


@pytest.mark.parametrize("kind", ["logistic", "hgb"])
def test_cross_fitted_predictions_approach_the_truth(kind):
    feats, a, truth, rng = synthetic(n=3000 if kind == "logistic" else 1500)
    r = (rng.random(a.size) < truth[np.arange(a.size), a]).astype(float)
    q = cross_fit(feats, a, r, RewardModelConfig(kind=kind, folds=3, categorical=(0, 1, 2)))
    assert q.shape == truth.shape
    assert np.abs(q - truth).mean() < (0.03 if kind == "logistic" else 0.07)


def test_soft_rewards_fit_as_weighted_labels():
    feats, a, truth, _ = synthetic(n=1500)
    q = cross_fit(feats, a, truth[np.arange(a.size), a], CATEGORICAL)
    assert np.abs(q - truth).mean() < 0.01


def test_a_rows_own_reward_never_reaches_its_prediction():
    feats, a, truth, rng = synthetic(n=600)
    r = np.clip(truth[np.arange(a.size), a] + rng.normal(0, 0.05, a.size), 0.01, 0.99)
    flipped = r.copy()
    flipped[17] = 0.99 if r[17] < 0.5 else 0.01  # same fold (r > 0 either way), opposite evidence
    q, q_flipped = cross_fit(feats, a, r, CATEGORICAL), cross_fit(feats, a, flipped, CATEGORICAL)
    np.testing.assert_array_equal(q[17], q_flipped[17])
    assert not np.array_equal(q, q_flipped)


def test_a_fold_without_any_reward_predicts_zero():
    feats, a, _, _ = synthetic(n=50)
    assert np.all(cross_fit(feats, a, np.zeros(50), CATEGORICAL) == 0.0)


def test_dr_with_a_cross_fitted_model_lands_near_the_truth_and_tighter_than_ips():
    feats, a, truth, rng = synthetic(n=4000, seed=3)
    n, n_items = truth.shape
    r = (rng.random(n) < truth[np.arange(n), a]).astype(float)
    target = np.zeros_like(truth)
    target[np.arange(n), truth.argmax(axis=1)] = 0.8
    target += 0.2 / n_items
    value = (target * truth).mean(axis=0).sum()
    pred = RewardPredictions.from_candidates(cross_fit(feats, a, r, CATEGORICAL), target, a)
    pe, pb = target[np.arange(n), a], np.full(n, 1 / n_items)
    dr = estimate("dr", r, pb, pe, pred, positions=feats[:, 0, 2], n_boot=300)
    ips = estimate("ips", r, pb, pe, positions=feats[:, 0, 2], n_boot=300)
    assert dr.ci_low <= value <= dr.ci_high
    assert dr.ci_high - dr.ci_low < ips.ci_high - ips.ci_low
