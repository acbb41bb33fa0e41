"""From a request to the bandit's context: user vector, top-N candidates, features and model prior.

Ray-free; the Serve ``Scorer`` wraps it. The catalog's item vectors sit in memory; the user
vector comes from the *cached* vectors of the history through the model's user tower, and BERT
runs only for a free-text query, so a request costs no BERT pass otherwise. Candidates are the top N by
``user . item / temperature``, never an excluded item or one the user bought.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recsys.data import EVENT_TYPES, read_table
from recsys.model import ItemTable, TwoTower
from recsys.model.bandit_input import bandit_input
from recsys.policies import Context
from recsys.policies.base import top_k
from serving.catalog import CatalogDelta
from serving.messages import Candidates, ScoreRequest

EVENT_CODE = {name: code for code, name in enumerate(EVENT_TYPES)}
PURCHASE = EVENT_CODE["purchase"]


class PurchaseIndex:
    """Items each user has bought in the shop's event log (sorted runs per user)."""

    def __init__(self, user_ids: np.ndarray, item_ids: np.ndarray) -> None:
        order = np.lexsort((item_ids, user_ids))
        users, self.items = np.asarray(user_ids, np.int64)[order], np.asarray(item_ids, np.int64)[order]
        self.users, starts = np.unique(users, return_index=True)
        self.offsets = np.append(starts, len(users))

    @classmethod
    def from_shop(cls, data_dir: Path) -> PurchaseIndex:
        """Purchases in ``data_dir/events.parquet`` (an empty index when the file is absent)."""
        path = Path(data_dir) / "events.parquet"
        if not path.exists():
            return cls(np.zeros(0, np.int64), np.zeros(0, np.int64))
        events = read_table(path, "events")
        bought = events[events["event"] == "purchase"]
        return cls(bought["user_id"].to_numpy(np.int64), bought["item_id"].to_numpy(np.int64))

    def of(self, user_id: int) -> np.ndarray:
        """The items ``user_id`` bought."""
        i = np.searchsorted(self.users, user_id)
        if i >= len(self.users) or self.users[i] != user_id:
            return self.items[:0]
        return self.items[self.offsets[i] : self.offsets[i + 1]]


def model_version(model_dir: Path, model: TwoTower, table: ItemTable | None = None) -> str:
    """A short name for the served model: its directory, the fingerprint of its training data and,
    given its item table, a digest of the table's vectors (``model@1a2b3c4d#5e6f7a8b``).

    The bandit keys linear posteriors and the catalog keys added products' vectors by this name, so
    two models must not share it: two trainings in same-named directories on the same data differ
    in their item vectors.
    """
    fingerprint = str(model.manifest.get("data_fingerprint", "")).removeprefix("sha256:")[:8]
    name = f"{Path(model_dir).name}@{fingerprint}" if fingerprint else Path(model_dir).name
    if table is None:
        return name
    return f"{name}#{hashlib.sha256(np.ascontiguousarray(table.vectors).tobytes()).hexdigest()[:8]}"


@dataclass(frozen=True)
class ItemIndex:
    """One catalog version's item matrix and its id lookup, swapped as a whole (one assignment), so a
    batch scoring in a worker thread never sees the table of one version and the vectors of another."""

    table: ItemTable
    order: np.ndarray
    """Rows of ``table`` in id order."""
    sorted_ids: np.ndarray
    """``table.item_ids[order]``."""
    vectors: torch.Tensor
    """``table.vectors`` as a tensor (shared memory)."""

    @classmethod
    def of(cls, table: ItemTable) -> ItemIndex:
        """The index of ``table``."""
        order = np.argsort(table.item_ids, kind="stable")
        return cls(table, order, table.item_ids[order], torch.from_numpy(table.vectors))

    def rows(self, item_ids) -> np.ndarray:
        """Catalog rows of the known ids among ``item_ids`` (unknown ids are dropped, order kept)."""
        ids = np.asarray(item_ids, dtype=np.int64)
        if not len(ids) or not len(self.sorted_ids):
            return np.zeros(0, np.int64)
        pos = np.clip(np.searchsorted(self.sorted_ids, ids), 0, len(self.sorted_ids) - 1)
        return self.order[pos[self.sorted_ids[pos] == ids]]


class Retriever:
    """The scorer's work for a batch of requests.

    ``candidates`` may run in a worker thread while ``apply`` runs on the event loop: a batch reads
    ``self.index`` once, and ``apply`` replaces it in one assignment.
    """

    def __init__(self, model: TwoTower, table: ItemTable, *, retrieve_n: int = 200, history_len: int = 50,
                 purchases: PurchaseIndex | None = None, query_model: TwoTower | None = None,
                 version: str = "") -> None:
        self.model = model
        self.query_model = query_model or model
        self.retrieve_n = retrieve_n
        self.history_len = min(history_len, model.config.history_len)
        self.purchases = purchases
        self.version = version
        self.catalog_version = 0
        self.index = ItemIndex.of(table)
        self.timed: Callable[[str], AbstractContextManager] = nullcontext
        """``timed(stage)`` around the user tower and the retrieval (the Scorer sets ``ServingMetrics.timed``)."""

    @property
    def table(self) -> ItemTable:
        """The item table of the current catalog version."""
        return self.index.table

    def rows(self, item_ids) -> np.ndarray:
        """Catalog rows of the known ids among ``item_ids`` (unknown ids are dropped, order kept)."""
        return self.index.rows(item_ids)

    def apply(self, delta: CatalogDelta) -> None:
        """Add or re-embed the items of a newer catalog version."""
        if len(delta.item_ids):
            self.index = ItemIndex.of(self.table.upsert(delta.item_ids, delta.vectors))
        self.catalog_version = max(self.catalog_version, delta.version)

    @torch.inference_mode()
    def user_vectors(self, requests: list[ScoreRequest], index: ItemIndex | None = None) -> torch.Tensor:
        """User vectors (B, d) from cached history vectors, plus the query where one is given."""
        index = index or self.index
        histories = []
        for req in requests:
            history = np.asarray(req.history or [], np.int64)
            codes = np.asarray([EVENT_CODE[e] for e in req.history_events or ["click"] * len(history)], np.int64)
            known = np.isin(history, index.sorted_ids) if len(history) else np.zeros(0, bool)
            histories.append((index.rows(history[known])[: self.history_len], codes[known][: self.history_len]))
        # Pad to the longest history of this batch, not to history_len: the user tower's cost is O(L).
        length = max(1, max(len(rows) for rows, _ in histories))
        rows = np.zeros((len(requests), length), np.int64)
        events = np.full((len(requests), length), EVENT_CODE["click"], np.int64)
        mask = np.zeros((len(requests), length), bool)
        for b, (hist_rows, codes) in enumerate(histories):
            rows[b, : len(hist_rows)], events[b, : len(hist_rows)], mask[b, : len(hist_rows)] = hist_rows, codes, True
        vecs = index.vectors[torch.from_numpy(rows)]
        events_t, mask_t = torch.from_numpy(events), torch.from_numpy(mask)
        queries = [b for b, r in enumerate(requests) if r.query]
        if not queries:
            return self.model.encode_users(vecs, events_t, mask_t, None)
        users = torch.empty(len(requests), self.model.config.dim)
        plain = [b for b in range(len(requests)) if b not in set(queries)]
        if plain:
            users[plain] = self.model.encode_users(vecs[plain], events_t[plain], mask_t[plain], None)
        q = torch.from_numpy(self.query_model.embed_queries([requests[b].query for b in queries]))
        users[queries] = self.model.encode_users(vecs[queries], events_t[queries], mask_t[queries], q)
        return users

    def _excluded(self, req: ScoreRequest) -> np.ndarray:
        """Ids never to show this user: the exclude list, purchases in the history and in the shop log."""
        parts = [np.asarray(req.exclude or [], np.int64)]
        if req.history_events:
            history = np.asarray(req.history, np.int64)
            parts.append(history[np.asarray([EVENT_CODE[e] == PURCHASE for e in req.history_events], bool)])
        if self.purchases is not None:
            parts.append(self.purchases.of(int(req.user_id)))
        return np.concatenate(parts)

    @torch.inference_mode()
    def candidates(self, requests: list[ScoreRequest]) -> list[Candidates]:
        """The bandit context of each request (top-N by score among allowed items).

        Neural-linear features only where ``request.with_features`` (only linear policies read them;
        they are the bulk of a context, n x d floats, so the others go without). Blocking (the user
        tower and a matrix product): the Scorer runs it in a worker thread.
        """
        index = self.index  # one catalog version for the whole batch, whatever ``apply`` does meanwhile
        with self.timed("user_tower"):
            users = self.user_vectors(requests, index)
        with self.timed("retrieval"):
            full = [b for b, r in enumerate(requests) if r.candidates is None]
            all_scores = (users[full] @ index.vectors.T / self.model.temperature).numpy() if full else None
            out = []
            for b, req in enumerate(requests):
                if req.candidates is None:
                    rows, scores = None, all_scores[full.index(b)].copy()
                else:
                    rows = np.unique(index.rows(req.candidates))
                    scores = (index.vectors[torch.from_numpy(rows)] @ users[b] / self.model.temperature).numpy()
                banned = index.rows(self._excluded(req))
                if rows is None:
                    scores[banned] = -np.inf
                else:
                    scores[np.isin(rows, banned)] = -np.inf
                out.append(self._context(index, users[b], rows, scores, req.with_features))
        return out

    def _context(self, index: ItemIndex, user: torch.Tensor, rows: np.ndarray | None, scores: np.ndarray,
                 with_features: bool) -> Candidates:
        allowed = int(np.isfinite(scores).sum())
        if allowed == 0:
            return Candidates(None, self.version, self.catalog_version)
        pick = top_k(scores, min(self.retrieve_n, allowed))
        cand_rows = pick if rows is None else rows[pick]
        given = bandit_input(self.model, user.numpy(), index.table.vectors[cand_rows], scores[pick], with_features)
        ctx = Context(item_ids=index.table.item_ids[cand_rows], scores=given.scores, features=given.features,
                      prior=given.prior)
        return Candidates(ctx, self.version, self.catalog_version, user.numpy())


class ItemEmbedder:
    """The item tower for products added while serving, run off the replica's event loop.

    A PUT /items batch goes through BERT (seconds for a few hundred products with MiniLM); on the
    event loop that would stall every /recommend batch of the replica meanwhile. ``embed`` runs it
    in a worker thread instead (torch releases the GIL in its kernels), one batch at a time, with a
    tokenizer of its own: the query path keeps the model's, and a fast tokenizer shared by two
    threads fails with "Already borrowed" as soon as one call changes its padding or truncation
    settings while the other encodes (the Rust tokenizer refuses a second borrow of its mutable state).
    """

    def __init__(self, model: TwoTower) -> None:
        self.model = copy.copy(model)  # a shallow copy: the same weights, a separate tokenizer slot
        self.model.tokenizer = copy.deepcopy(model.tokenizer)
        self._one_at_a_time = asyncio.Lock()

    async def embed(self, items: pd.DataFrame) -> np.ndarray:
        """Item vectors (n, d) float32 of an items table, computed in a worker thread."""
        async with self._one_at_a_time:
            return await asyncio.to_thread(self.model.embed_items, items)
