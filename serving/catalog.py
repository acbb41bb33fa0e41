"""The versioned catalog of products added while serving, kept durable by the bandit (its only writer).

The model directory's item table is version 0. Each ``PUT /items`` batch becomes version v: a
file ``catalog/v<v>.safetensors`` (tensors ``item_ids`` and ``vectors``, the items' rows as JSON
metadata) written atomically. Scorer replicas hold the matrix in memory and pull the versions
they miss (``since``) when a request carries a newer catalog version than theirs, so every
replica learns of a new product on its next request, on any node, without a shared disk.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from serving.wal import fsync_dir


@dataclass(frozen=True)
class CatalogDelta:
    """Items added or re-embedded after some version, newest vector last."""

    version: int
    """The newest version this delta includes."""
    item_ids: np.ndarray
    """int64 (m,)."""
    vectors: np.ndarray
    """float32 (m, d)."""


class CatalogStore:
    """Durable, versioned additions to the model's item table."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self._versions: list[tuple[int, np.ndarray, np.ndarray]] = []
        for path in sorted(self.directory.glob("v*.safetensors")):
            with safe_open(str(path), framework="numpy") as f:
                self._versions.append((int(path.stem[1:]), f.get_tensor("item_ids"), f.get_tensor("vectors")))

    @property
    def version(self) -> int:
        """The newest catalog version (0 = only the model's own item table)."""
        return self._versions[-1][0] if self._versions else 0

    def add(self, item_ids: np.ndarray, vectors: np.ndarray, rows: list[dict]) -> int:
        """Persist one batch of embedded items as the next version and return that version."""
        version = self.version + 1
        ids = np.ascontiguousarray(item_ids, dtype=np.int64)
        vecs = np.ascontiguousarray(vectors, dtype=np.float32)
        if vecs.ndim != 2 or len(vecs) != len(ids):
            raise ValueError(f"catalog: {len(ids)} item ids but vectors of shape {vecs.shape}")
        final = self.directory / f"v{version:08d}.safetensors"
        tmp = self.directory / f".{final.name}"
        save_file({"item_ids": ids, "vectors": vecs}, str(tmp), metadata={"items": json.dumps(rows)})
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        fsync_dir(self.directory)
        self._versions.append((version, ids, vecs))
        return version

    def since(self, version: int) -> CatalogDelta:
        """Every item added after ``version`` (later versions win for repeated ids)."""
        newer = [(ids, vecs) for v, ids, vecs in self._versions if v > version]
        if not newer:
            return CatalogDelta(self.version, np.zeros(0, np.int64), np.zeros((0, 0), np.float32))
        ids, vecs = np.concatenate([n[0] for n in newer]), np.concatenate([n[1] for n in newer])
        # The last vector of an id wins: reverse, keep first occurrences, restore the order.
        _, first = np.unique(ids[::-1], return_index=True)
        keep = np.sort(len(ids) - 1 - first)
        return CatalogDelta(self.version, ids[keep], vecs[keep])
