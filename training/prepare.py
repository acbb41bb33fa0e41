"""Turn a shop folder into the prepared inputs of a training run, on the driver, before any worker.

Reads and validates ``items`` and ``events`` (and ``impressions`` when present), splits the events
by the run's protocol, and writes to ``<storage>/<run>/prepared/``:

- ``items.parquet``: the catalog; a row's position is its catalog row everywhere in training;
- ``history.parquet``: training positives in history order (user, newest first);
- ``examples.parquet``: what Ray Data shards across workers: ``user_id, item_id, pos, label``;
  ``pos`` is the example's position in history.parquet (-1 for non-clicks), ``label`` 1 for a
  positive and 0 for an impression negative (a view or a logged impression without a click);
- ``valid.parquet`` / ``test.parquet``: held-out positives; ``prepared.json``: fingerprint and counts.

Every problem is raised here, with the file and the fix, so no worker ever starts on bad input.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from recsys.data import EVENT_TYPES, cold_item_split, leave_one_out, random_split, read_table
from recsys.model.history import sort_for_history
from recsys.model.manifest import fingerprint_files
from training.config import TrainConfig

EVENT_COLUMNS = ["user_id", "item_id", "ts", "event"]


class DataDirError(ValueError):
    """The data folder lacks a table, or its tables cannot train a model; the message says what to do."""


@dataclass(frozen=True)
class Prepared:
    """Where a run's prepared inputs are, and what they hold."""

    uri: str
    """Folder (local path or URI) with the prepared Parquet files."""
    fingerprint: str
    """SHA-256 of the input files (recorded in serendip.json)."""
    counts: dict
    """Rows per part: train, valid, test, negatives, items."""

    def path(self, name: str) -> str:
        """Location of one prepared file."""
        return f"{self.uri.rstrip('/')}/{name}"


def find_table(data: Path, table: str, required: bool = True) -> Path | None:
    """``data/<table>.parquet`` or ``.csv``; a DataDirError when a required one is missing."""
    for suffix in (".parquet", ".csv"):
        if (data / f"{table}{suffix}").is_file():
            return data / f"{table}{suffix}"
    if required:
        hint = "run `serendip simulate --out DIR` for a demo shop, or write it with recsys.data.write_table"
        raise DataDirError(f"data dir {data}: no {table}.parquet or {table}.csv; {hint}")
    return None


def load_shop(data: Path) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame | None, str]:
    """Validated items, events, optional impressions, and the fingerprint of their files."""
    if not Path(data).is_dir():
        raise DataDirError(f"data dir {data}: not a folder; pass --data DIR with items and events tables")
    paths = [find_table(data, "items"), find_table(data, "events")]
    impressions_path = find_table(data, "impressions", required=False)
    items, events = read_table(paths[0], "items"), read_table(paths[1], "events")
    impressions = read_table(impressions_path, "impressions") if impressions_path else None
    if impressions_path:
        paths.append(impressions_path)
    if items.empty or events.empty:
        empty = paths[0] if items.empty else paths[1]
        raise DataDirError(f"{empty}: the table has no rows; a model needs items and events")
    unknown = ~events["item_id"].isin(items["item_id"])
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise DataDirError(
            f"{paths[1]}: column 'item_id' row {row}: item {int(events['item_id'].iloc[row])} is not in "
            f"{paths[0].name}; add the item to the catalog or drop its events"
        )
    return items, events, impressions, fingerprint_files(paths)


def positive_interactions(events: pd.DataFrame, positive_events: tuple[str, ...]) -> pd.DataFrame:
    """One row per (user, item) with a positive event: its first time and its strongest event
    (EVENT_TYPES order), so a click, cart and purchase of one product are one interaction."""
    positives = events.loc[events["event"].isin(positive_events), EVENT_COLUMNS]
    strength = pd.Categorical(positives["event"], categories=list(EVENT_TYPES), ordered=True)
    grouped = positives.assign(event=strength).groupby(["user_id", "item_id"], sort=False, observed=True)
    merged = grouped.agg(ts=("ts", "min"), event=("event", "max")).reset_index()
    return merged.assign(event=merged["event"].astype(str)).sort_values("ts", kind="stable").reset_index(drop=True)


def split_positives(cfg: TrainConfig, events: pd.DataFrame):
    """Split the positive interactions by the run's protocol; a DataDirError when a part is empty."""
    positives = positive_interactions(events, cfg.positive_events)
    if cfg.protocol == "random":
        split = random_split(positives, seed=cfg.seed)
    elif cfg.protocol == "loo":
        split = leave_one_out(positives)
    else:
        split = cold_item_split(positives, frac_items=cfg.cold_frac, seed=cfg.seed)
    for part in ("train", "valid"):
        if getattr(split, part).empty:
            per_user = positives.groupby("user_id").size()
            raise DataDirError(
                f"{cfg.data}: the {part} split is empty ({len(positives)} positive events "
                f"{cfg.positive_events}, {len(per_user)} users, at most {int(per_user.max()) if len(per_user) else 0} "
                "per user); a user needs at least 3 positive events to be held out: add events or "
                "widen --positive-events"
            )
    return split


def negative_examples(events: pd.DataFrame, impressions: pd.DataFrame | None, cfg: TrainConfig, train_users) -> pd.DataFrame:
    """(user, item) pairs shown without a click: views never followed by a positive, and logged
    impressions with reward 0, for users that have a training history."""
    frames = []
    views = events[~events["event"].isin(cfg.positive_events)][["user_id", "item_id"]]
    frames.append(views)
    if impressions is not None:
        frames.append(impressions.loc[impressions["reward"] <= 0, ["user_id", "item_id"]])
    shown = pd.concat(frames, ignore_index=True).drop_duplicates()
    clicked = events[events["event"].isin(cfg.positive_events)][["user_id", "item_id"]].drop_duplicates()
    shown = shown.merge(clicked, how="left", indicator=True)
    shown = shown[(shown["_merge"] == "left_only") & shown["user_id"].isin(train_users)]
    return shown[["user_id", "item_id"]].reset_index(drop=True)


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


def _write(fs: pafs.FileSystem, root: str, name: str, df: pd.DataFrame) -> None:
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), f"{root}/{name}", filesystem=fs)


def prepare(cfg: TrainConfig) -> Prepared:
    """Validate, split and write the run's inputs (skipped when the same inputs are already prepared)."""
    items, events, impressions, fingerprint = load_shop(cfg.data)
    uri = f"{cfg.storage.rstrip('/')}/{cfg.run_name}/prepared"
    fs, root = _filesystem(uri)
    settings = {"fingerprint": fingerprint, "protocol": cfg.protocol, "seed": cfg.seed, "cold_frac": cfg.cold_frac,
                "positive_events": list(cfg.positive_events)}
    marker = f"{root}/prepared.json"
    if fs.get_file_info(marker).type == pafs.FileType.File:
        with fs.open_input_stream(marker) as f:
            done = json.loads(f.read())
        if all(done.get(k) == v for k, v in settings.items()):
            return Prepared(uri, fingerprint, done["counts"])
    split = split_positives(cfg, events)
    history = sort_for_history(split.train[EVENT_COLUMNS])
    pos = history.assign(pos=np.arange(len(history), dtype=np.int64), label=np.int8(1))
    negatives = negative_examples(events, impressions, cfg, history["user_id"].unique())
    negatives = negatives.assign(pos=np.int64(-1), label=np.int8(0))
    examples = pd.concat([pos[["user_id", "item_id", "pos", "label"]], negatives], ignore_index=True)
    fs.create_dir(root, recursive=True)
    _write(fs, root, "items.parquet", items)
    _write(fs, root, "history.parquet", history)
    _write(fs, root, "examples.parquet", examples)
    _write(fs, root, "valid.parquet", split.valid[EVENT_COLUMNS])
    _write(fs, root, "test.parquet", split.test[EVENT_COLUMNS])
    counts = {"items": len(items), "train": len(history), "valid": len(split.valid), "test": len(split.test),
              "negatives": len(negatives), "users": int(history["user_id"].nunique())}
    with fs.open_output_stream(marker) as f:
        f.write(json.dumps({**settings, "counts": counts}, indent=2).encode())
    return Prepared(uri, fingerprint, counts)
