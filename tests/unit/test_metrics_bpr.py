"""The in-process BPR reference: it learns planted taste groups that popularity cannot see, keeps
its best validation epoch, and refuses a split it cannot train on."""

import numpy as np
import pandas as pd
import pytest

from recsys.data.splits import Split, random_split
from recsys.metrics import ProtocolError, evaluate_random_split
from recsys.metrics.bpr import BPRConfig, train_bpr


def planted(users=120, items=60, per_user=12, seed=0) -> pd.DataFrame:
    """Two taste groups: even users pick from the first half of the items, odd users from the second."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(users):
        half = np.arange(items // 2) + (u % 2) * (items // 2)
        rows += [(u, int(i) + 1) for i in rng.choice(half, per_user, replace=False)]
    return pd.DataFrame(rows, columns=["user_id", "item_id"]).assign(ts=0, event="click")


def test_bpr_learns_what_popularity_cannot():
    events = planted()
    split, item_ids = random_split(events, seed=0), np.arange(1, 61)
    result = train_bpr(split, item_ids, BPRConfig(dim=8, lr=0.05, batch_size=256, epochs=60, patience=10))
    report = evaluate_random_split(result.scorer, split, item_ids, ks=(10,))
    assert report["model"]["ndcg@10"] > 2 * report["popularity"]["ndcg@10"]
    assert 1 <= result.best_epoch <= result.epochs <= 60 and 0 < result.best_valid_mrr10 <= 1
    assert result.scorer(np.array([10_000])).shape == (1, 60) and not result.scorer(np.array([10_000])).any()


def test_bpr_refuses_items_outside_the_catalog():
    split = random_split(planted(), seed=0)
    with pytest.raises(ProtocolError, match="outside item_ids"):
        train_bpr(split, np.arange(1, 30), BPRConfig(epochs=1))


def test_bpr_refuses_a_user_who_has_every_item():
    train = pd.DataFrame({"user_id": [7, 7, 7, 8], "item_id": [1, 2, 3, 1]})
    with pytest.raises(ProtocolError, match="user 7 has interacted with every item"):
        train_bpr(Split(train, train.iloc[:0], train.iloc[:0]), np.array([1, 2, 3]), BPRConfig(epochs=1))
