"""Splits: leave-one-out by time, seeded per-user random 8:1:1, and cold items only in test."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from recsys.data import cold_item_split, leave_one_out, random_split


def make_events(n_users: int = 40, n_items: int = 30, seed: int = 7) -> pd.DataFrame:
    """Users with 1..25 events each, shuffled rows, some equal timestamps."""
    rng = np.random.default_rng(seed)
    sizes = rng.integers(1, 26, size=n_users)
    user = np.repeat(np.arange(n_users), sizes)
    events = pd.DataFrame({
        "user_id": user + 100,
        "item_id": rng.integers(0, n_items, size=len(user)),
        "ts": pd.to_datetime(rng.integers(0, 50, size=len(user)), unit="s", utc=True),
        "event": rng.choice(["view", "click", "purchase"], size=len(user)),
        "row": np.arange(len(user)),
    })
    return events.sample(frac=1.0, random_state=seed).reset_index(drop=True)


def parts(split):
    return split.train, split.valid, split.test


def assert_partition(events, split):
    """Every input row lands in exactly one part, with its columns."""
    rows = np.concatenate([p["row"].to_numpy() for p in parts(split)])
    assert sorted(rows) == sorted(events["row"]) and all(list(p.columns) == list(events.columns) for p in parts(split))


def test_leave_one_out_holds_out_each_users_last_two_events():
    events = make_events()
    split = leave_one_out(events)
    assert_partition(events, split)
    sizes = events.groupby("user_id").size()
    eligible = set(sizes[sizes >= 3].index)
    assert set(split.test["user_id"]) == set(split.valid["user_id"]) == eligible
    assert split.test["user_id"].is_unique and split.valid["user_id"].is_unique
    for uid in eligible:
        # The held-out events are the last ones; ties broken by row order in the input.
        mine = events[events["user_id"] == uid].reset_index(drop=True).reset_index()
        latest = mine.sort_values(["ts", "index"])["row"].tolist()
        assert split.test.loc[split.test["user_id"] == uid, "row"].item() == latest[-1]
        assert split.valid.loc[split.valid["user_id"] == uid, "row"].item() == latest[-2]


def test_short_histories_stay_in_train():
    events = pd.DataFrame({"user_id": [1, 1, 2], "item_id": [5, 6, 5], "row": [0, 1, 2],
                           "ts": pd.to_datetime([1, 2, 3], unit="s", utc=True)})
    for split in (leave_one_out(events), random_split(events)):
        assert len(split.train) == 3 and split.valid.empty and split.test.empty


def test_random_split_cuts_each_user_8_1_1_and_is_seeded():
    events = make_events()
    split = random_split(events, seed=3)
    assert_partition(events, split)
    counts = pd.DataFrame({name: p.groupby("user_id").size() for name, p in zip("tvs", parts(split), strict=True)}).fillna(0)
    n = counts.sum(axis=1)
    # RecBole's counts: floor(0.1 n), and 1 where 0.1 n < 1 (users of 3 to 9 events)
    assert (counts["v"] == np.maximum(np.floor(0.1 * n), 1).where(n >= 3, 0)).all()
    assert (counts["s"] == np.maximum(np.floor(0.1 * n), 1).where(n >= 3, 0)).all()
    again, other = random_split(events, seed=3), random_split(events, seed=4)
    assert split.test["row"].tolist() == again.test["row"].tolist()
    assert split.test["row"].tolist() != other.test["row"].tolist()


def test_random_split_keeps_one_train_event_under_extreme_ratios():
    events = make_events()
    split = random_split(events, ratios=(0.02, 0.49, 0.49))
    sizes = events.groupby("user_id").size()
    assert set(split.train["user_id"]) == set(sizes.index)


def test_cold_items_appear_only_in_test():
    events = make_events()
    split = cold_item_split(events, frac_items=0.2, seed=1)
    assert_partition(events, split)
    cold = set(split.test["item_id"])
    assert len(cold) == round(0.2 * events["item_id"].nunique())
    assert not cold & (set(split.train["item_id"]) | set(split.valid["item_id"]))
    assert len(split.test) == events["item_id"].isin(cold).sum()
    # valid: each user's last warm event, for users with 2+ warm events
    warm = events[~events["item_id"].isin(cold)]
    warm_sizes = warm.groupby("user_id").size()
    assert set(split.valid["user_id"]) == set(warm_sizes[warm_sizes >= 2].index)
    last = split.valid.set_index("user_id")["ts"]
    assert (warm.groupby("user_id")["ts"].max()[last.index] == last).all()
    assert cold == set(cold_item_split(events, frac_items=0.2, seed=1).test["item_id"])
    assert cold != set(cold_item_split(events, frac_items=0.2, seed=2).test["item_id"])


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda e: random_split(e, ratios=(0.8, 0.1, 0.2)), ValueError,
     "ratios=(0.8, 0.1, 0.2): need three shares (train, valid, test) >= 0 that sum to 1, with train > 0, "
     "e.g. (0.8, 0.1, 0.1)"),
    (lambda e: random_split(e, ratios=(0.0, 0.5, 0.5)), ValueError, "ratios=(0.0, 0.5, 0.5): need three shares"),
    (lambda e: cold_item_split(e, frac_items=1.0), ValueError,
     "frac_items=1.0: the share of cold items must be in (0, 1), e.g. 0.1"),
    (lambda e: cold_item_split(e.head(2).assign(item_id=[1, 2]), frac_items=0.9), ValueError,
     "frac_items=0.9 makes all 2 items cold; lower it or pass more items"),
    (lambda e: leave_one_out(e.drop(columns="ts")), KeyError, "events: missing column(s) ['ts']"),
])
def test_bad_split_arguments_name_the_fix(call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call(make_events())
