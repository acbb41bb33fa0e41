"""Searches as training examples, so the user tower learns what ``/recommend``'s ``query`` means.

A shop folder may hold a ``queries`` table (``recsys.data.schemas.QUERIES``: one row per product
clicked after a search; ``serendip simulate`` writes one). Each row becomes a positive example whose
user tower reads the user's history plus the query, as a served request with a query does: the query
text goes through the item tower's text path (``TwoTower.query_vectors``: the frozen encoder, the
fine-tuned top layers, the projection) and joins the user tower as the query token. Its catalog of
query texts is written to the prepared folder as ``queries.parquet`` (``query_row``, ``query``) and
each example names its text by ``query_row`` (-1 for the examples without a query).

A search click on a (user, item) pair that the split holds out is dropped, and so is one on an item
held out of training (the cold protocol), so no evaluated positive is trained on through a search.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data import read_table

QUERIES_FILE = "queries.parquet"
"""The prepared folder's table of query texts, by ``query_row``."""
NO_QUERY = -1
"""``query_row`` of an example without a query."""


def read_searches(path: Path | None, items: pd.DataFrame) -> pd.DataFrame | None:
    """The validated search log at ``path`` (None: no log), every clicked item in ``items``."""
    if path is None:
        return None
    searches = read_table(path, "queries")
    unknown = ~searches["item_id"].isin(items["item_id"])
    if unknown.any():
        from training.prepare import DataDirError

        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise DataDirError(
            f"{path}: column 'item_id' row {row}: item {int(searches['item_id'].iloc[row])} is not in the shop's "
            "items; add the item to the catalog or drop its search clicks"
        )
    return searches


def query_examples(searches: pd.DataFrame, held_out: pd.DataFrame, train_items: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(query texts with their ``query_row``, positive examples with a ``query_row``) of a search log.

    ``held_out`` are the split's valid and test positives (user_id, item_id); ``train_items`` the items
    with a training positive (under the cold protocol the others are held out of training entirely).
    """
    pairs = pd.MultiIndex.from_frame(held_out[["user_id", "item_id"]])
    keep = ~pd.MultiIndex.from_frame(searches[["user_id", "item_id"]]).isin(pairs)
    keep &= searches["item_id"].isin(train_items).to_numpy()
    kept = searches[keep]
    texts = pd.DataFrame({"query": np.unique(kept["query"].to_numpy(str))})
    texts.insert(0, "query_row", np.arange(len(texts), dtype=np.int64))
    rows = np.searchsorted(texts["query"].to_numpy(str), kept["query"].to_numpy(str))
    examples = pd.DataFrame({"user_id": kept["user_id"].to_numpy(np.int64), "item_id": kept["item_id"].to_numpy(np.int64),
                             "pos": np.int64(-1), "label": np.int8(1), "weight": np.float32(1.0),
                             "query_row": rows.astype(np.int64)})
    return texts, examples
