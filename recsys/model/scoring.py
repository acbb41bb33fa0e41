"""Scoring users against the catalog with a trained model: user tower over the cached item vectors of
each user's history, then one matrix product with the item table. What offline evaluation calls;
serving does the same per request from the history it is sent.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from recsys.model.history import HistoryIndex, sort_for_history
from recsys.model.item_table import ItemTable
from recsys.model.two_tower import TwoTower


def history_index(events: pd.DataFrame, table: ItemTable) -> HistoryIndex:
    """Index users' events (newest first) by item-table row; events of unknown items are dropped."""
    rows, found = table.rows(events["item_id"].to_numpy(np.int64))
    kept = sort_for_history(events[found].assign(_row=rows[found]))
    return HistoryIndex.build(kept, kept["_row"].to_numpy(np.int64))


def user_vectors(model: TwoTower, table: ItemTable, index: HistoryIndex, user_ids: np.ndarray,
                 query_vecs: np.ndarray | None = None) -> torch.Tensor:
    """User vectors (B, d) from each user's most recent ``history_len`` events in ``index``."""
    rows, events, mask = index.gather(np.asarray(user_ids, np.int64), model.config.history_len)
    vectors = torch.as_tensor(table.vectors)
    query = torch.as_tensor(query_vecs) if query_vecs is not None else None
    with torch.no_grad():
        return model.encode_users(vectors[torch.as_tensor(rows)], torch.as_tensor(events), torch.as_tensor(mask), query)


def catalog_scorer(model: TwoTower, table: ItemTable, history_events: pd.DataFrame, item_ids: np.ndarray | None = None):
    """``score_users(user_ids) -> (b, n)`` over ``item_ids`` (default: the table's order), for recsys.metrics."""
    model.eval()
    index = history_index(history_events, table)
    columns = table.rows(item_ids)[0] if item_ids is not None else np.arange(len(table))
    items = torch.as_tensor(table.vectors[columns])

    def score_users(user_ids: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return model.scores(user_vectors(model, table, index, user_ids), items).numpy()

    return score_users
