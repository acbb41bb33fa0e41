"""What every worker loads from the prepared folder: catalog, history index, validation positives.

All workers read the same files, so catalog rows, history positions and popularity agree across
ranks; only the training examples are sharded (by Ray Data).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import torch

from recsys.model.history import HistoryIndex
from recsys.model.losses import log_popularity
from recsys.text import render_items
from training.queries import QUERIES_FILE


@dataclass
class RunData:
    """The catalog (rows = item order in items.parquet), training histories and validation positives."""

    items: pd.DataFrame
    """The catalog table."""
    item_ids: np.ndarray
    """int64 (n,) catalog item ids by row."""
    texts: list[str]
    """Rendered item text by row (recsys.text)."""
    history: HistoryIndex
    """Training positives per user, newest first (positions match examples.pos)."""
    valid: pd.DataFrame
    """Validation positives (user_id, item_id, ...)."""
    log_q: torch.Tensor
    """(n,) log share of each item among training positives: the logQ correction."""
    query_texts: list[str] = field(default_factory=list)
    """Search query texts by ``query_row`` (empty without a search log; :mod:`training.queries`)."""

    @classmethod
    def load(cls, prepared_uri: str) -> RunData:
        """Read a prepared folder (local path or URI)."""
        root = prepared_uri.rstrip("/")
        items = pq.read_table(f"{root}/items.parquet").to_pandas()
        history = pq.read_table(f"{root}/history.parquet").to_pandas()
        valid = pq.read_table(f"{root}/valid.parquet").to_pandas()
        item_ids = items["item_id"].to_numpy(np.int64)
        rows = cls.rows_of(item_ids, history["item_id"].to_numpy(np.int64))
        counts = np.bincount(rows, minlength=len(item_ids))
        try:
            queries = pq.read_table(f"{root}/{QUERIES_FILE}").to_pandas()["query"].tolist()
        except FileNotFoundError:  # a shop without a search log
            queries = []
        return cls(items, item_ids, render_items(items), HistoryIndex.build(history, rows), valid,
                   log_popularity(torch.as_tensor(counts)), queries)

    @staticmethod
    def rows_of(item_ids: np.ndarray, query: np.ndarray) -> np.ndarray:
        """Catalog row of each queried item id (all must exist: prepare() checked)."""
        rows = pd.Index(item_ids).get_indexer(query)
        if (rows < 0).any():
            raise KeyError(f"item {int(query[rows < 0][0])} is not in the prepared catalog; re-run prepare")
        return rows.astype(np.int64)

    @property
    def train_item_ids(self) -> np.ndarray:
        """Items with at least one training positive: they get learned ID vectors."""
        return np.unique(self.item_ids[self.history.rows])
