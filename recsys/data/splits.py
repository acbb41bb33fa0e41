"""Train / validation / test splits of an events table, vectorized (a sort plus a group count, no per-user loop).

- ``leave_one_out``: per user in time order, the last event is test and the one before it valid
  (the protocol of SASRec, Kang & McAuley 2018, and BERT4Rec, Sun et al. 2019).
- ``random_split``: each user's events are shuffled with a seed and cut by ``ratios`` (8:1:1).
- ``cold_item_split``: a seeded fraction of the items is *cold*: all their events are test and none
  are in train or valid, so test measures recommending items nobody was trained on. The warm
  events are split leave-one-out style: each user's last warm event is valid, the rest train.

Short histories: a user with fewer than ``MIN_EVENTS`` events keeps them all in train (a held-out
event needs some history to predict it from). In ``cold_item_split`` a user needs 2 warm events
before one is held out as valid. Time ties are broken by row order: the later row is the later event.

Every part keeps the input's columns and its rows in input order, with a fresh index.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

MIN_EVENTS = 3
"""Users with fewer events than this stay in train only (``leave_one_out`` and ``random_split``)."""

TRAIN, VALID, TEST = 0, 1, 2


@dataclass(frozen=True)
class Split:
    """Train, validation and test events, each in the events schema (plus the input's extra columns)."""

    train: pd.DataFrame
    """Events to fit on."""
    valid: pd.DataFrame
    """Held-out events for early stopping and tuning."""
    test: pd.DataFrame
    """Held-out events for the final figure."""


def require_columns(events: pd.DataFrame, columns: tuple[str, ...]) -> None:
    """A KeyError naming the columns a split needs, before pandas fails somewhere less clear."""
    missing = [c for c in columns if c not in events.columns]
    if missing:
        raise KeyError(f"events: missing column(s) {missing}; splits need an events table "
                       "(recsys.data.read_table(path, 'events'))")


def rank_within_user(user: np.ndarray, key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row's 0-based rank by ``key`` among its user's rows (ties: row order), and its user's row count."""
    order = np.lexsort((key, user))  # stable: equal keys keep row order
    sorted_users = user[order]
    starts = np.flatnonzero(np.r_[True, sorted_users[1:] != sorted_users[:-1]])
    group = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(user)]))
    rank, size = np.empty(len(user), np.int64), np.empty(len(user), np.int64)
    rank[order] = np.arange(len(user)) - starts[group]
    size[order] = np.diff(np.r_[starts, len(user)])[group]
    return rank, size


def assemble(events: pd.DataFrame, part: np.ndarray) -> Split:
    """The three parts of ``events`` given each row's part (TRAIN, VALID or TEST)."""
    pick = [events[part == p].reset_index(drop=True) for p in (TRAIN, VALID, TEST)]
    return Split(*pick)


def timestamps(events: pd.DataFrame) -> np.ndarray:
    """The ``ts`` column as int64 ticks, for ordering (any datetime dtype, zoned or not)."""
    return pd.to_datetime(events["ts"], utc=True).astype(np.int64).to_numpy()


def leave_one_out(events: pd.DataFrame) -> Split:
    """Per user by time: last event -> test, second-to-last -> valid, rest -> train."""
    require_columns(events, ("user_id", "item_id", "ts"))
    rank, size = rank_within_user(events["user_id"].to_numpy(), timestamps(events))
    from_end = size - 1 - rank
    part = np.where(size < MIN_EVENTS, TRAIN, np.select([from_end == 0, from_end == 1], [TEST, VALID], TRAIN))
    return assemble(events, part)


def random_split(events: pd.DataFrame, ratios: tuple[float, float, float] = (0.8, 0.1, 0.1),
                 seed: int = 0) -> Split:
    """Per user, shuffle the events with ``seed`` and cut them train:valid:test by ``ratios``.

    The counts follow RecBole's rule (``Dataset._calcu_split_ids``), so figures compare with its
    benchmarks: a user with n events gets floor(n * test) test and floor(n * valid) valid events,
    raised to 1 where n * share is in (0, 1) while more than one event stays in train.
    """
    require_columns(events, ("user_id", "item_id"))
    if len(ratios) != 3 or min(ratios) < 0 or ratios[0] <= 0 or not np.isclose(sum(ratios), 1.0):
        raise ValueError(f"ratios={tuple(ratios)}: need three shares (train, valid, test) >= 0 that sum to 1, "
                         "with train > 0, e.g. (0.8, 0.1, 0.1)")
    key = np.random.default_rng(seed).random(len(events))
    rank, size = rank_within_user(events["user_id"].to_numpy(), key)
    n_test = np.floor(ratios[2] * size).astype(np.int64)
    n_valid = np.floor(ratios[1] * size).astype(np.int64)
    n_train = size - n_valid - n_test
    for share, count in ((ratios[2], n_test), (ratios[1], n_valid)):
        bump = (n_train > 1) & (share * size > 0) & (share * size < 1)
        count += bump
        n_train -= bump
    part = np.select([rank < n_train, rank < n_train + n_valid], [TRAIN, VALID], TEST)
    return assemble(events, np.where(size < MIN_EVENTS, TRAIN, part))


def cold_item_split(events: pd.DataFrame, frac_items: float = 0.1, seed: int = 0) -> Split:
    """A seeded ``frac_items`` of the items is cold: their events are all test, and absent from train and valid.

    The warm events split by time: each user's last warm event is valid (if the user has 2 or more).
    """
    require_columns(events, ("user_id", "item_id", "ts"))
    if not 0.0 < frac_items < 1.0:
        raise ValueError(f"frac_items={frac_items}: the share of cold items must be in (0, 1), e.g. 0.1")
    items = np.unique(events["item_id"].to_numpy())
    n_cold = max(1, round(frac_items * len(items)))
    if n_cold >= len(items):
        raise ValueError(f"frac_items={frac_items} makes all {len(items)} items cold; lower it or pass more items")
    cold = np.random.default_rng(seed).choice(items, size=n_cold, replace=False)
    is_cold = np.isin(events["item_id"].to_numpy(), cold)
    # Cold rows sort first, so a user's last row is their last warm event whenever they have one.
    ts = np.where(is_cold, np.iinfo(np.int64).min, timestamps(events))
    rank, size = rank_within_user(events["user_id"].to_numpy(), ts)
    warm_size = size - pd.Series(is_cold).groupby(events["user_id"].to_numpy()).transform("sum").to_numpy()
    last_warm = (rank == size - 1) & ~is_cold & (warm_size >= 2)
    return assemble(events, np.select([is_cold, last_warm], [TEST, VALID], TRAIN))
