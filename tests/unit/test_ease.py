"""The in-process EASE reference: Steck's closed form, the co-occurrence it recovers, seen items left
to the protocol's mask, λ picked on validation, and the inputs it refuses."""

import numpy as np
import pandas as pd
import pytest

from recsys.data.splits import Split, random_split
from recsys.metrics import ProtocolError, evaluate_random_split
from recsys.metrics.ease import RECBOLE_LAMBDA, EASEConfig, ease_weights, interaction_matrix, train_ease


def frame(pairs) -> pd.DataFrame:
    users, items = zip(*pairs, strict=True)
    return pd.DataFrame({"user_id": users, "item_id": items}).assign(ts=0, event="click")


def test_weights_match_a_direct_solve_of_the_constrained_least_squares():
    rng = np.random.default_rng(0)
    x = (rng.random((40, 7)) < 0.3).astype(np.float64)
    lam = 3.0
    weights = ease_weights(x.T @ x, lam)
    # Column j alone: min ||x_j - X_{-j} b||² + λ||b||² over the other items (diag(B) = 0).
    for j in range(7):
        others = [k for k in range(7) if k != j]
        a = x[:, others]
        direct = np.linalg.solve(a.T @ a + lam * np.eye(6), a.T @ x[:, j])
        np.testing.assert_allclose(weights[others, j], direct, rtol=1e-9, atol=1e-12)
    assert np.all(np.diag(weights) == 0.0)


def test_it_recovers_an_obvious_co_occurrence():
    # Items 1 and 2 always come together, item 3 goes with 4; user 9 has only item 1.
    pairs = [(u, i) for u in range(20) for i in ((1, 2) if u % 2 else (3, 4))] + [(9_000, 1)]
    item_ids = np.array([1, 2, 3, 4])
    split = Split(frame(pairs), frame(pairs).iloc[:0], frame(pairs).iloc[:0])
    users, matrix = interaction_matrix(split.train, item_ids)
    scores = (matrix[users.get_indexer([9_000])] @ ease_weights((matrix.T @ matrix).toarray(), 1.0))[0]
    assert scores.argmax() == 1 and scores[1] > 0.5 and abs(scores[2]) < 1e-12 and abs(scores[3]) < 1e-12


def test_seen_items_never_reach_the_top_k():
    # The user's own items score highest on their co-occurrence with each other; the protocol masks them.
    pairs = [(u, i) for u in range(30) for i in (1, 2, 3)] + [(u, 4) for u in range(10)]
    train = frame(pairs + [(99, 1), (99, 2)])
    split = Split(train, frame([(99, 3)]), frame([(99, 4)]))
    result = train_ease(split, np.array([1, 2, 3, 4, 5]), EASEConfig(lambdas=(1.0,)))
    raw = result.scorer(np.array([99]))[0]
    assert raw[0] > raw[3] and raw[1] > raw[3]  # unmasked, the seen items 1 and 2 outrank item 4
    report = evaluate_random_split(result.scorer, split, np.array([1, 2, 3, 4, 5]), ks=(1,))
    assert report["model"]["hit@1"] == 1.0  # masked (train and valid), item 4 is first


def test_it_learns_what_popularity_cannot_and_picks_lambda_on_validation():
    rng = np.random.default_rng(0)
    pairs = []
    for u in range(200):
        half = np.arange(30) + (u % 2) * 30
        pairs += [(u, int(i) + 1) for i in rng.choice(half, 12, replace=False)]
    split, item_ids = random_split(frame(pairs), seed=0), np.arange(1, 61)
    result = train_ease(split, item_ids, EASEConfig(lambdas=(1.0, RECBOLE_LAMBDA, 1e6)))
    report = evaluate_random_split(result.scorer, split, item_ids, ks=(10,))
    assert report["model"]["ndcg@10"] > 2 * report["popularity"]["ndcg@10"]
    assert set(result.valid_ndcg10) == {1.0, RECBOLE_LAMBDA, 1e6}
    assert result.valid_ndcg10[result.lam] == max(result.valid_ndcg10.values())
    assert not result.scorer(np.array([10_000])).any()  # an unknown user scores zero everywhere


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: ease_weights(np.eye(3), 0.0), "λ=0.0 must be > 0"),
        (lambda: EASEConfig(lambdas=()), "give at least one λ"),
        (lambda: EASEConfig(lambdas=(250.0, -1.0)), "each > 0"),
        (lambda: interaction_matrix(frame([(1, 7)]), np.array([1, 2])), "names items outside item_ids"),
        (lambda: interaction_matrix(frame([(1, 7)]).iloc[:0], np.array([7])), "train split is empty"),
    ],
)
def test_refusals_name_the_fix(make, match):
    with pytest.raises(ProtocolError, match=match):
        make()
