"""``serendip summarize --data DIR``: a short human summary of a shop folder (items + events tables)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.io import SUFFIXES, read_table
from recsys.data.schemas import EVENT_TYPES

TOP_CATEGORIES = 5


@dataclass
class SummarizeConfig:
    """Summarize a shop folder."""

    data: Path
    """Folder holding items.parquet (or .csv) and events.parquet (or .csv), e.g. from `serendip simulate`."""

    def __post_init__(self):
        self.data = Path(self.data)
        if not self.data.is_dir():
            raise ValueError(f"--data {self.data}: not a folder; pass a shop folder such as one written by "
                             "`serendip simulate --out DIR`")


def table_file(folder: Path, table: str) -> Path:
    """``folder/<table>.parquet``, else ``.csv``, else a FileNotFoundError naming both."""
    for suffix in SUFFIXES:
        if (folder / f"{table}{suffix}").exists():
            return folder / f"{table}{suffix}"
    raise FileNotFoundError(f"{folder}: no {table}.parquet or {table}.csv; a shop folder needs both "
                            "items and events (write one with `serendip simulate --out DIR`)")


def shop_summary(items: pd.DataFrame, events: pd.DataFrame) -> str:
    """The summary text of an items and an events table (validated frames)."""
    n_users, n_items = events["user_id"].nunique(), len(items)
    counts = events["event"].value_counts()
    by_type = ", ".join(f"{name} {counts.get(name, 0):,}" for name in EVENT_TYPES)
    pairs = len(events[["user_id", "item_id"]].drop_duplicates())
    sparsity = 1.0 - pairs / max(n_users * n_items, 1)
    per_user = events.groupby("user_id").size()
    category = events["item_id"].map(items.set_index("item_id")["category"]).fillna("(none)")
    top = category.value_counts(normalize=True).head(TOP_CATEGORIES)
    unknown = int((~events["item_id"].isin(items["item_id"])).sum())
    never = int((~items["item_id"].isin(events["item_id"])).sum())
    first, last = events["ts"].min(), events["ts"].max()
    lines = [
        f"items:    {n_items:,} in {items['category'].nunique():,} categories; {never:,} never in an event",
        f"users:    {n_users:,}; events per user median {np.median(per_user) if len(per_user) else 0:.0f}, "
        f"max {per_user.max() if len(per_user) else 0:,}",
        f"events:   {len(events):,} ({by_type})",
        f"dates:    {first:%Y-%m-%d %H:%M} .. {last:%Y-%m-%d %H:%M} UTC" if len(events) else "dates:    (no events)",
        f"top categories by events: {', '.join(f'{name} {share:.1%}' for name, share in top.items())}",
        f"sparsity: {sparsity:.4%} of user-item pairs have no event",
    ]
    if unknown:
        lines.append(f"warning:  {unknown:,} events name an item_id missing from the items table")
    return "\n".join(lines)


def summarize(cfg: SummarizeConfig) -> int:
    """Read and validate the shop folder's tables and print their summary; returns the exit code 0."""
    items_path, events_path = table_file(cfg.data, "items"), table_file(cfg.data, "events")
    items, events = read_table(items_path, "items"), read_table(events_path, "events")
    print(f"shop {cfg.data} ({items_path.name}, {events_path.name})")
    print(shop_summary(items, events))
    return 0
