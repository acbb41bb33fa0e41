"""recsys.metrics: full-ranking top-K metrics, click metrics, and the evaluation protocols."""

import math

import numpy as np
import pandas as pd
import pytest

from recsys.metrics import (
    ProtocolError,
    auc,
    evaluate_cold_items,
    evaluate_leave_one_out,
    evaluate_random_split,
    expected_calibration_error,
    full_ranking,
    log_loss,
    popularity_scorer,
    rank_chunk,
)


def split_of(train, valid, test):
    cols = ["user_id", "item_id"]
    frame = lambda pairs: pd.DataFrame(pairs, columns=cols)  # noqa: E731
    return type("S", (), {"train": frame(train), "valid": frame(valid), "test": frame(test)})()


def test_hand_computed_user():
    # One user, 6 items; item 0 is seen (masked); positives are items 2 and 5.
    scores = np.array([[9.0, 5.0, 4.0, 3.0, 2.0, 1.0]])
    out = rank_chunk(scores, (np.array([0]), np.array([0])), (np.array([0, 0]), np.array([2, 5])), ks=(2, 5))
    # ranking after masking: 1, 2, 3, 4, 5 -> hits at ranks 2 and 5 (1-based)
    assert out["hit@2"][0] == 1.0
    assert out["recall@2"][0] == 0.5
    assert out["mrr@2"][0] == 0.5
    assert out["ndcg@2"][0] == pytest.approx((1 / math.log2(3)) / (1 + 1 / math.log2(3)))
    assert out["recall@5"][0] == 1.0
    assert out["ndcg@5"][0] == pytest.approx((1 / math.log2(3) + 1 / math.log2(6)) / (1 + 1 / math.log2(3)))


def test_seen_items_are_masked_but_positives_never():
    scores = np.array([[10.0, 9.0, 1.0]])
    out = rank_chunk(scores, (np.array([0, 0]), np.array([0, 1])), (np.array([0]), np.array([1])), ks=(1,))
    assert out["hit@1"][0] == 1.0  # item 1 is both seen and positive: it stays rankable


def test_users_without_positives_are_nan_and_skipped():
    scores = np.zeros((2, 4))
    out = rank_chunk(scores, (np.array([], int), np.array([], int)), (np.array([1]), np.array([0])), ks=(2,))
    assert np.isnan(out["ndcg@2"][0]) and not np.isnan(out["ndcg@2"][1])


def test_chunking_does_not_change_the_means():
    rng = np.random.default_rng(0)
    scores = rng.normal(size=(37, 50))
    users = np.arange(37)
    seen = (rng.integers(0, 37, 200), rng.integers(0, 50, 200))
    pos = (rng.integers(0, 37, 60), rng.integers(0, 50, 60))
    def score(u):
        return scores[u]
    whole = full_ranking(score, users, seen, pos, ks=(5, 10), chunk=1000)
    chunked = full_ranking(score, users, seen, pos, ks=(5, 10), chunk=7)
    assert whole.keys() == chunked.keys()
    for key in whole:
        assert whole[key] == pytest.approx(chunked[key])


def test_perfect_scorer_gets_ndcg_one():
    split = split_of([(1, 10), (2, 11)], [], [(1, 12), (2, 13)])
    items = np.array([10, 11, 12, 13, 14])
    oracle = {1: 12, 2: 13}

    def score(users):
        out = np.zeros((len(users), len(items)))
        for r, u in enumerate(users):
            out[r, list(items).index(oracle[int(u)])] = 1.0
        return out

    res = evaluate_random_split(score, split, items, ks=(1, 3))
    assert res["model"]["ndcg@1"] == 1.0 and res["model"]["users"] == 2
    assert "popularity" in res


def test_popularity_counts_training_interactions():
    train = pd.DataFrame({"user_id": [1, 2, 3], "item_id": [7, 7, 8]})
    scores = popularity_scorer(train, np.array([8, 7, 9]))(np.array([5, 6]))
    np.testing.assert_array_equal(scores, [[1, 2, 0], [1, 2, 0]])


def test_test_phase_masks_validation_items_too():
    # User 1's validation item 11 scores highest; in the test phase it must be masked.
    split = split_of([(1, 10)], [(1, 11)], [(1, 12)])
    items = np.array([10, 11, 12])
    res = evaluate_random_split(lambda u: np.array([[3.0, 2.0, 1.0]]), split, items, ks=(1,))
    assert res["model"]["hit@1"] == 1.0


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda s, i: evaluate_random_split(lambda u: np.zeros((len(u), 3)), split_of([(1, 1)], [], []), i),
         "the target split is empty"),
        (lambda s, i: evaluate_random_split(lambda u: 0, s, i, phase="train"), "evaluation phase 'train'"),
        (lambda s, i: evaluate_leave_one_out(lambda u: np.zeros((len(u), 3)), s, i),
         "leave-one-out: user 1 has 2 test items"),
        (lambda s, i: evaluate_cold_items(lambda u: np.zeros((len(u), 3)), s, i),
         "every test item also appears in training"),
    ],
)
def test_protocol_errors(call, match):
    split = split_of([(1, 1), (1, 2)], [(1, 3)], [(1, 1), (1, 2)])
    with pytest.raises(ProtocolError, match=match):
        call(split, np.array([1, 2, 3]))


def test_cold_items_rank_only_cold_candidates():
    split = split_of([(1, 1), (2, 2)], [], [(1, 3), (2, 4)])
    items = np.array([1, 2, 3, 4])
    # warm items score highest; the cold protocol must ignore them and rank only 3 and 4.
    def score(users):
        return np.tile([9.0, 9.0, 0.0, 0.0], (len(users), 1)) + np.eye(4)[[int(u) + 1 for u in users]]
    res = evaluate_cold_items(score, split, items, ks=(1,))
    assert res["model"]["hit@1"] == 1.0


def test_click_metrics():
    y = np.array([0, 0, 1, 1])
    assert auc(y, [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert log_loss(y, [0.5] * 4) == pytest.approx(math.log(2))
    assert expected_calibration_error(y, [0.0, 0.0, 1.0, 1.0]) == 0.0
    assert expected_calibration_error(y, [0.5] * 4) == 0.0
    assert expected_calibration_error([1, 1], [0.25, 0.25]) == 0.75


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: auc([1, 1], [0.2, 0.3]), "auc: labels are all one class"),
        (lambda: auc([1, 0], [0.2]), "auc: 2 labels but 1 predictions"),
        (lambda: log_loss([2, 0], [0.2, 0.3]), r"log_loss: labels must be 0 or 1 \(clicks\); got \[0.0, 2.0\]"),
        (lambda: expected_calibration_error([1, 0], [1.5, 0.2]), "probabilities must lie in"),
        (lambda: expected_calibration_error([1, 0], [0.5, 0.2], n_bins=0), "n_bins=0 must be >= 1"),
    ],
)
def test_click_metric_errors(call, match):
    with pytest.raises(ValueError, match=match):
        call()
