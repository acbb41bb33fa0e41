"""The catalog's item vectors, computed once per model and looked up on every request.

Stored next to the model as ``item_table.safetensors`` (tensors ``item_ids`` int64 (n,) and
``vectors`` float32 (n, d)): no pickle, memory-mappable, readable from any language.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

FILENAME = "item_table.safetensors"


class ItemTableError(ValueError):
    """An item table is malformed or missing; the message names the file and the fix."""


@dataclass(frozen=True)
class ItemTable:
    """Item ids and their vectors, row-aligned."""

    item_ids: np.ndarray
    """int64 (n,), unique."""
    vectors: np.ndarray
    """float32 (n, d): the item tower's output for each id."""

    def __post_init__(self) -> None:
        ids = np.ascontiguousarray(self.item_ids, dtype=np.int64)
        vecs = np.ascontiguousarray(self.vectors, dtype=np.float32)
        if ids.ndim != 1 or vecs.ndim != 2 or len(ids) != len(vecs):
            raise ItemTableError(
                f"ItemTable: item_ids {ids.shape} and vectors {vecs.shape} must be (n,) and (n, d) with the same n"
            )
        if len(np.unique(ids)) != len(ids):
            raise ItemTableError("ItemTable: item_ids contain duplicates; keep one vector per item")
        object.__setattr__(self, "item_ids", ids)
        object.__setattr__(self, "vectors", vecs)

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def dim(self) -> int:
        """Vector width."""
        return int(self.vectors.shape[1])

    def rows(self, item_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Row of each id and whether it was found (unknown ids get row 0 and found=False)."""
        order = np.argsort(self.item_ids, kind="stable")
        sorted_ids = self.item_ids[order]
        query = np.asarray(item_ids, dtype=np.int64)
        pos = np.clip(np.searchsorted(sorted_ids, query), 0, max(len(sorted_ids) - 1, 0))
        found = sorted_ids[pos] == query if len(sorted_ids) else np.zeros(query.shape, bool)
        return np.where(found, order[pos], 0), found

    def upsert(self, item_ids: np.ndarray, vectors: np.ndarray) -> ItemTable:
        """A new table with these items added or replaced (e.g. products embedded at PUT /items)."""
        ids = np.asarray(item_ids, dtype=np.int64)
        keep = ~np.isin(self.item_ids, ids)
        return ItemTable(
            np.concatenate([self.item_ids[keep], ids]),
            np.concatenate([self.vectors[keep], np.asarray(vectors, dtype=np.float32)]),
        )


def save_item_table(model_dir: str | Path, table: ItemTable) -> Path:
    """Write ``model_dir/item_table.safetensors`` and return its path."""
    path = Path(model_dir) / FILENAME
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({"item_ids": table.item_ids, "vectors": table.vectors}, str(path))
    return path


def load_item_table(model_dir: str | Path) -> ItemTable:
    """Read the item table saved with a model (see :func:`save_item_table`)."""
    path = Path(model_dir) / FILENAME
    if not path.is_file():
        raise ItemTableError(f"{path}: no item table; train or export the model with `serendip train`")
    arrays = load_file(str(path))
    missing = {"item_ids", "vectors"} - set(arrays)
    if missing:
        raise ItemTableError(f"{path}: tensors {sorted(missing)} missing; re-export the model")
    return ItemTable(arrays["item_ids"], arrays["vectors"])
