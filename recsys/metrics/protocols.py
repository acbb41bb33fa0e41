"""Offline evaluation protocols. One function owns each protocol, and each reports popularity beside
the model, because a recommender that does not beat "most popular" has learned nothing personal.

A scorer is any ``score_users(user_ids (b,)) -> (b, n)`` array over the catalog ``item_ids``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pandas as pd

from recsys.metrics.ranking import full_ranking

Scorer = Callable[[np.ndarray], np.ndarray]


class ProtocolError(ValueError):
    """The split does not fit the protocol (e.g. an empty test set); the message says how."""


def popularity_scorer(train: pd.DataFrame, item_ids: np.ndarray) -> Scorer:
    """Scores every item by its number of training interactions, the same for every user."""
    counts = train["item_id"].value_counts()
    pop = counts.reindex(np.asarray(item_ids), fill_value=0).to_numpy(np.float32)
    return lambda users: np.broadcast_to(pop, (len(users), len(pop)))


def _pairs(df: pd.DataFrame, user_ids: np.ndarray, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(user position, item column) for each row whose user and item are both known."""
    u = pd.Index(user_ids).get_indexer(df["user_id"].to_numpy())
    c = pd.Index(item_ids).get_indexer(df["item_id"].to_numpy())
    keep = (u >= 0) & (c >= 0)
    return u[keep], c[keep]


def _report(
    score_users: Scorer,
    seen: pd.DataFrame,
    target: pd.DataFrame,
    train: pd.DataFrame,
    item_ids: np.ndarray,
    ks: tuple[int, ...],
    chunk: int,
) -> dict[str, dict[str, float]]:
    if target.empty:
        raise ProtocolError("evaluation: the target split is empty; check the split ratios and the data size")
    item_ids = np.asarray(item_ids, dtype=np.int64)
    user_ids = np.unique(target["user_id"].to_numpy(np.int64))
    seen_pairs, target_pairs = _pairs(seen, user_ids, item_ids), _pairs(target, user_ids, item_ids)
    result = {}
    for name, scorer in (("model", score_users), ("popularity", popularity_scorer(train, item_ids))):
        result[name] = full_ranking(scorer, user_ids, seen_pairs, target_pairs, ks, chunk)
    return result


def _phase_frames(split, phase: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    if phase == "valid":
        return split.train, split.valid
    if phase == "test":
        return pd.concat([split.train, split.valid], ignore_index=True), split.test
    raise ProtocolError(f"evaluation phase {phase!r}: use 'valid' or 'test'")


def evaluate_random_split(
    score_users: Scorer, split, item_ids: np.ndarray, ks=(10, 20), phase: str = "test", chunk: int = 1024
) -> dict[str, dict[str, float]]:
    """Random 8:1:1 per user, full ranking (RecBole's "RO" split, as in its ml-100k benchmark).

    Positives are all of the user's held-out items of ``phase``. Seen items are masked: training
    items for "valid", training and validation items for "test" (as RecBole does).
    Returns {"model": {"ndcg@10": ..., ...}, "popularity": {...}}.
    """
    seen, target = _phase_frames(split, phase)
    return _report(score_users, seen, target, split.train, item_ids, tuple(ks), chunk)


def evaluate_leave_one_out(
    score_users: Scorer, split, item_ids: np.ndarray, ks=(10, 20), phase: str = "test", chunk: int = 1024
) -> dict[str, dict[str, float]]:
    """Time-ordered leave-one-out: each user's last interaction is the test item (second last: valid).

    The ranking and masking are as in :func:`evaluate_random_split`; here every user must have
    exactly one target, otherwise the split is not a leave-one-out split.
    """
    seen, target = _phase_frames(split, phase)
    per_user = target.groupby("user_id").size()
    if (per_user > 1).any():
        user = int(per_user[per_user > 1].index[0])
        raise ProtocolError(
            f"leave-one-out: user {user} has {int(per_user.max())} {phase} items; build the split with leave_one_out()"
        )
    return _report(score_users, seen, target, split.train, item_ids, tuple(ks), chunk)


def evaluate_cold_items(
    score_users: Scorer, split, item_ids: np.ndarray, ks=(10, 20), chunk: int = 1024
) -> dict[str, dict[str, float]]:
    """Cold-item protocol: rank only the items never seen in training (nor validation), for the
    users who interacted with them in test. An ID-only model cannot tell these apart; popularity
    scores them all zero (ties), so it is the random baseline here.
    """
    warm = set(split.train["item_id"]) | set(split.valid["item_id"])
    cold = np.array(sorted(set(split.test["item_id"]) - warm), dtype=np.int64)
    if not len(cold):
        raise ProtocolError("cold-item evaluation: every test item also appears in training; use cold_item_split()")
    columns = pd.Index(np.asarray(item_ids)).get_indexer(cold)
    if (columns < 0).any():
        raise ProtocolError(f"cold-item evaluation: item {int(cold[columns < 0][0])} is not in the catalog item_ids")
    target = split.test[split.test["item_id"].isin(cold)]

    def cold_scores(users: np.ndarray) -> np.ndarray:
        return np.asarray(score_users(users))[:, columns]

    return _report(cold_scores, split.train.iloc[:0], target, split.train, cold, tuple(ks), chunk)
