"""The versioned catalog of products added while serving, kept durable by the bandit (its only writer).

The model directory's item table is version 0. Each ``PUT /items`` batch becomes version v: a
file ``catalog/v<v>.safetensors`` (tensors ``item_ids`` and ``vectors``, the items' rows as JSON
metadata ``items`` and the embedding model's version as ``model``) written atomically. Scorer
replicas hold the matrix in memory and pull the versions they miss (``since``) when a request
carries a newer catalog version than theirs, so every replica learns of a new product on its next
request, on any node, without a shared disk.

Vectors belong to the model that embedded them: ``since(v, model)`` hands a replica only its own
model's vectors, and the rows of the products whose newest entry another model embedded (or a file
written before entries named their model) as ``to_embed``. The replica of the bandit's current
model re-embeds those and stores them under its model, so a model change re-embeds every added
product once and no replica ever mixes two embedding spaces.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from serving.wal import fsync_dir


class CatalogFull(RuntimeError):
    """``PUT /items`` would hold more products than ``max_catalog_items``: HTTP 429."""


@dataclass(frozen=True)
class CatalogDelta:
    """Items added or re-embedded after some version, newest vector last."""

    version: int
    """The newest version this delta includes."""
    item_ids: np.ndarray
    """int64 (m,)."""
    vectors: np.ndarray
    """float32 (m, d)."""
    to_embed: list[dict] = field(default_factory=list)
    """Rows of products whose newest entry another model embedded: the asker's model should re-embed them."""


@dataclass(frozen=True)
class EmbeddedItems:
    """The scorer's answer to ``PUT /items``: vectors, how many ids it knew, and which model embedded them."""

    vectors: np.ndarray
    """float32 (n, d), row-aligned with the request's items."""
    known: int
    """How many of the ids the replica's catalog already had (updates, not additions)."""
    model_version: str
    """The embedding model: the catalog files the vectors under it."""


@dataclass(frozen=True)
class _Entry:
    version: int
    model: str
    """"" for files written before entries named their model: foreign to every model."""
    item_ids: np.ndarray
    vectors: np.ndarray
    rows: list[dict]


class CatalogStore:
    """Durable, versioned additions to the model's item table."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._entries: list[_Entry] = []
        for path in sorted(self.directory.glob("v*.safetensors")):
            with safe_open(str(path), framework="numpy") as f:
                meta = f.metadata() or {}
                self._entries.append(_Entry(int(path.stem[1:]), meta.get("model", ""), f.get_tensor("item_ids"),
                                            f.get_tensor("vectors"), json.loads(meta.get("items", "[]"))))

    @property
    def version(self) -> int:
        """The newest catalog version (0 = only the model's own item table)."""
        return self._entries[-1].version if self._entries else 0

    def item_ids(self) -> np.ndarray:
        """Every product id the catalog holds, under any model."""
        if not self._entries:
            return np.zeros(0, np.int64)
        return np.unique(np.concatenate([e.item_ids for e in self._entries]))

    def check_room(self, item_ids: np.ndarray, max_items: int) -> None:
        """Raise ``CatalogFull`` unless the products of ``item_ids`` fit under ``max_items`` distinct ids
        (every scorer replica and the bandit hold each one's vector in memory)."""
        held = self.item_ids()
        new = np.setdiff1d(np.asarray(item_ids, dtype=np.int64), held)
        if len(held) + len(new) > max_items:
            raise CatalogFull(f"the catalog holds {len(held)} added products; {len(new)} more would pass "
                              f"max_catalog_items={max_items} (raise it, or retrain so the model's table has them)")

    def add(self, item_ids: np.ndarray, vectors: np.ndarray, rows: list[dict], model: str = "") -> int:
        """Persist one batch of items embedded by ``model`` as the next version and return that version."""
        version = self.version + 1
        ids = np.ascontiguousarray(item_ids, dtype=np.int64)
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or len(vecs) != len(ids) or len(rows) != len(ids):
            raise ValueError(f"catalog: {len(ids)} item ids, {len(rows)} rows and vectors of shape {vecs.shape}")
        final = self.directory / f"v{version:08d}.safetensors"
        tmp = self.directory / f".{final.name}"
        save_file({"item_ids": ids, "vectors": vecs}, str(tmp), metadata={"items": json.dumps(rows), "model": model})
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        fsync_dir(self.directory)
        self._entries.append(_Entry(version, model, ids, vecs, list(rows)))
        return version

    def since(self, version: int, model: str | None = None) -> CatalogDelta:
        """Every item added after ``version``, its newest entry winning.

        With ``model``, an item whose newest entry that model did not embed comes back as a row in
        ``to_embed`` instead of a vector; without it every newest vector comes back (one model only).
        """
        newer = [e for e in self._entries if e.version > version]
        if not newer:
            return CatalogDelta(self.version, np.zeros(0, np.int64), np.zeros((0, 0), np.float32))
        ids = np.concatenate([e.item_ids for e in newer])
        entry = np.concatenate([np.full(len(e.item_ids), i) for i, e in enumerate(newer)])
        row = np.concatenate([np.arange(len(e.item_ids)) for e in newer])
        # The last entry of an id wins: reverse, keep first occurrences, restore the order.
        _, first = np.unique(ids[::-1], return_index=True)
        keep = np.sort(len(ids) - 1 - first)
        mine = np.array([model is None or (bool(model) and newer[entry[k]].model == model) for k in keep], bool)
        own, foreign = keep[mine], keep[~mine]
        vectors = (np.stack([newer[entry[k]].vectors[row[k]] for k in own]) if len(own)
                   else np.zeros((0, 0), np.float32))
        return CatalogDelta(self.version, ids[own], vectors, [newer[entry[k]].rows[row[k]] for k in foreign])
