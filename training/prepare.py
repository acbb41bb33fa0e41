"""Turn a shop folder into the prepared inputs of a training run, on the driver, before any worker.

Reads and validates ``items`` and ``events`` (and ``impressions`` when present), adds what serving
logged (``--impressions``: the served log, ``--catalog``: products added through PUT /items; see
:mod:`training.served`), splits the events by the run's protocol, and writes to
``<storage>/<run>/prepared/``:

- ``items.parquet``: the catalog; a row's position is its catalog row everywhere in training;
- ``history.parquet``: training positives in history order (user, newest first);
- ``examples.parquet``: what Ray Data shards across workers: ``user_id, item_id, pos, label, weight``;
  ``pos`` is the example's position in history.parquet (-1 for non-clicks), ``label`` 1 for a
  positive and 0 for an impression negative (a view or a logged impression without a click),
  ``weight`` the example's BCE weight (inverse propensity for logged non-clicks, else 1);
- ``valid.parquet`` / ``test.parquet``: held-out positives; ``prepared.json``: fingerprint, counts
  and lineage (parent model, impression log, added products) for serendip.json;
- with a search log (``queries`` table), ``queries.parquet``: the query texts, which the examples'
  ``query_row`` column names (see :mod:`training.queries`).

A run is its name plus its inputs: a rerun with the same inputs resumes, and a run that already
trained on other inputs (data fingerprint, parent model, split settings) is refused
(:class:`RunReusedError`) instead of resuming its finished checkpoint and exporting the old model.
Every problem is raised here, with the file and the fix, so no worker ever starts on bad input.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq

from recsys.data import EVENT_TYPES, cold_item_split, leave_one_out, random_split, read_table
from recsys.data.served_log import read_served_log
from recsys.model.history import sort_for_history
from recsys.model.manifest import fingerprint_files, read_manifest
from training.config import TrainConfig
from training.queries import NO_QUERY, QUERIES_FILE, query_examples, read_searches
from training.served import (
    catalog_files,
    logged_negatives,
    read_added_items,
    served_positives,
    with_added_items,
)

EVENT_COLUMNS = ["user_id", "item_id", "ts", "event"]


class DataDirError(ValueError):
    """The data folder lacks a table, or its tables cannot train a model; the message says what to do."""


class RunReusedError(ValueError):
    """A run of this name already trained on other inputs; the message names the fix."""


@dataclass(frozen=True)
class Prepared:
    """Where a run's prepared inputs are, and what they hold."""

    uri: str
    """Folder (local path or URI) with the prepared Parquet files."""
    fingerprint: str
    """SHA-256 of the input files (recorded in serendip.json)."""
    counts: dict
    """Rows per part: train, valid, test, negatives, items."""
    lineage: dict = field(default_factory=dict)
    """Where the run's inputs came from beyond the shop (parent model, impression log, added items)."""

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


@dataclass(frozen=True)
class Inputs:
    """A run's validated tables, with what serving logged folded in, and where they came from."""

    items: pd.DataFrame
    """The shop's catalog plus the products added through PUT /items."""
    events: pd.DataFrame
    """The shop's events plus the rewarded log rows as positive events."""
    impressions: pd.DataFrame | None
    """Every logged impression (the shop's impressions table and the served log), or None."""
    fingerprint: str
    """SHA-256 over the shop's, the log's and the catalog's files."""
    lineage: dict
    """Parent model, impression log and added items, for serendip.json (empty for a plain run)."""
    searches: pd.DataFrame | None = None
    """The shop's search log (queries table: a row per click after a search), or None."""


def _digest(*parts: str) -> str:
    return "sha256:" + hashlib.sha256("|".join(parts).encode()).hexdigest()


def parent_lineage(init_from: str) -> dict:
    """What the new model's serendip.json records of the model it starts from."""
    manifest = read_manifest(init_from)  # a ManifestError names the folder when it is not a model
    return {"model": str(Path(init_from).resolve()),
            "fingerprint": fingerprint_files([Path(init_from) / "serendip.json", Path(init_from) / "towers.safetensors"]),
            "data_fingerprint": manifest.get("data_fingerprint", ""), "created": manifest.get("created", ""),
            "run_name": manifest.get("run_name", "")}


def _check_known_items(impressions: pd.DataFrame, items: pd.DataFrame, source: Path | str) -> None:
    unknown = ~impressions["item_id"].isin(items["item_id"])
    if unknown.any():
        row = int(np.flatnonzero(unknown.to_numpy())[0])
        raise DataDirError(
            f"{source}: column 'item_id' row {row}: item {int(impressions['item_id'].iloc[row])} is in neither the "
            "shop's items nor the added products; pass --catalog <state_dir>/catalog (products added through "
            "PUT /items) or add the item to the shop's items table"
        )


def load_inputs(cfg: TrainConfig) -> Inputs:
    """The shop's tables, plus the served log (--impressions) and the added products (--catalog)."""
    items, events, impressions, fingerprint = load_shop(cfg.data)
    lineage, served_files = {}, []
    if cfg.init_from:
        lineage["parent"] = parent_lineage(cfg.init_from)
    catalog = cfg.catalog_dir
    if catalog is not None:
        if not catalog.is_dir():
            raise DataDirError(f"--catalog {catalog}: not a folder; pass serving's <state_dir>/catalog")
        added = read_added_items(catalog)
        served_files += catalog_files(catalog)
        new_ids = added.loc[~added["item_id"].isin(items["item_id"]), "item_id"]
        items = with_added_items(items, added)
        lineage["added_items"] = {"catalog": str(catalog.resolve()), "versions": len(catalog_files(catalog)),
                                  "rows": len(added), "new_item_ids": [int(i) for i in new_ids]}
    if cfg.impressions is not None:
        log = read_served_log(cfg.impressions)[0]
        log_files = [cfg.impressions] if cfg.impressions.is_file() else sorted(cfg.impressions.rglob("part-*.parquet"))
        served_files += log_files
        impressions = log if impressions is None else pd.concat([impressions, log], ignore_index=True)
        lineage["impression_log"] = {"path": str(cfg.impressions.resolve()), "files": len(log_files),
                                     "fingerprint": fingerprint_files(log_files), "rows": len(log),
                                     "rewarded": int((log["reward"] > 0).sum()),
                                     "first_ts": str(log["ts"].min()), "last_ts": str(log["ts"].max())}
    if impressions is not None:
        _check_known_items(impressions, items, cfg.impressions or cfg.data)
        events = pd.concat([events, served_positives(impressions, cfg.positive_events)], ignore_index=True)
    searches_path = find_table(cfg.data, "queries", required=False)
    searches = read_searches(searches_path, items)
    if searches_path is not None:
        fingerprint = _digest(fingerprint, fingerprint_files([searches_path]))
    if served_files:
        fingerprint = _digest(fingerprint, fingerprint_files(served_files))
    return Inputs(items, events, impressions, fingerprint, lineage, searches)


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
    """(user, item, weight) pairs shown without a click: views never followed by a positive (weight 1),
    and logged impressions with reward 0 (inverse-propensity weight, see :mod:`training.served`), for
    users that have a training history. A pair shown both ways counts once, at its larger weight."""
    views = events[~events["event"].isin(cfg.positive_events)][["user_id", "item_id"]].assign(weight=1.0)
    frames = [views]
    if impressions is not None:
        frames.append(logged_negatives(impressions, cfg.ipw, cfg.ipw_clip))
    shown = pd.concat(frames, ignore_index=True).groupby(["user_id", "item_id"], sort=False, as_index=False)["weight"].max()
    clicked = events[events["event"].isin(cfg.positive_events)][["user_id", "item_id"]].drop_duplicates()
    shown = shown.merge(clicked, how="left", indicator=True)
    shown = shown[(shown["_merge"] == "left_only") & shown["user_id"].isin(train_users)]
    return shown[["user_id", "item_id", "weight"]].reset_index(drop=True)


def _filesystem(uri: str) -> tuple[pafs.FileSystem, str]:
    if "://" in uri:
        return pafs.FileSystem.from_uri(uri)
    return pafs.LocalFileSystem(), str(Path(uri).resolve())


def _write(fs: pafs.FileSystem, root: str, name: str, df: pd.DataFrame) -> None:
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), f"{root}/{name}", filesystem=fs)


def run_settings(cfg: TrainConfig, inputs: Inputs) -> dict:
    """What makes two runs of one name the same run: the inputs and the settings of their split."""
    settings = {"fingerprint": inputs.fingerprint, "protocol": cfg.protocol, "seed": cfg.seed,
                "cold_frac": cfg.cold_frac, "positive_events": list(cfg.positive_events)}
    if inputs.impressions is not None:
        settings.update(ipw=cfg.ipw, ipw_clip=cfg.ipw_clip)
    if cfg.init_from:
        settings["parent"] = inputs.lineage["parent"]["fingerprint"]
    return settings


def has_checkpoints(fs: pafs.FileSystem, run_root: str) -> bool:
    """Whether a run already reported a checkpoint (Ray Train's ``checkpoint_*``, or a LocalSession's)."""
    found = fs.get_file_info(pafs.FileSelector(run_root, allow_not_found=True))
    return any(i.base_name.startswith("checkpoint_") or i.base_name == "local_checkpoints" for i in found)


def refuse_reused_run(cfg: TrainConfig, done: dict, settings: dict) -> None:
    """Raise RunReusedError: the run ``done`` trained on other inputs, so it may not resume under them."""
    def short(value):
        return value[:19] if isinstance(value, str) and value.startswith("sha256:") else value

    changed = ", ".join(f"{k} {short(done.get(k))!r} -> {short(v)!r}" for k, v in settings.items() if done.get(k) != v)
    raise RunReusedError(
        f"run {cfg.run_name!r} in {cfg.storage} already trained on other inputs ({changed}); rerunning it would "
        f"resume that run and export its old model. Give the new run its own name (--name "
        f"{cfg.run_name}-{settings['fingerprint'][7:15]}, or a new --out) or delete {cfg.storage.rstrip('/')}/{cfg.run_name} "
        "to start it over"
    )


def prepare(cfg: TrainConfig) -> Prepared:
    """Validate, split and write the run's inputs (skipped when the same inputs are already prepared)."""
    inputs = load_inputs(cfg)
    events, fingerprint = inputs.events, inputs.fingerprint
    uri = f"{cfg.storage.rstrip('/')}/{cfg.run_name}/prepared"
    fs, root = _filesystem(uri)
    settings = run_settings(cfg, inputs)
    marker = f"{root}/prepared.json"
    if fs.get_file_info(marker).type == pafs.FileType.File:
        with fs.open_input_stream(marker) as f:
            done = json.loads(f.read())
        if all(done.get(k) == v for k, v in settings.items()):
            return Prepared(uri, fingerprint, done["counts"], done.get("lineage", {}))
        if has_checkpoints(fs, root.rsplit("/", 1)[0]):
            refuse_reused_run(cfg, done, settings)
    items = inputs.items
    split = split_positives(cfg, events)
    history = sort_for_history(split.train[EVENT_COLUMNS])
    pos = history.assign(pos=np.arange(len(history), dtype=np.int64), label=np.int8(1), weight=1.0)
    negatives = negative_examples(events, inputs.impressions, cfg, history["user_id"].unique())
    negatives = negatives.assign(pos=np.int64(-1), label=np.int8(0))
    examples = pd.concat([pos[["user_id", "item_id", "pos", "label", "weight"]],
                          negatives[["user_id", "item_id", "pos", "label", "weight"]]], ignore_index=True)
    searches = None
    if inputs.searches is not None:
        held_out = pd.concat([split.valid, split.test])[["user_id", "item_id"]]
        texts, searches = query_examples(inputs.searches, held_out, history["item_id"].unique())
        examples = pd.concat([examples.assign(query_row=np.int64(NO_QUERY)), searches], ignore_index=True)
    examples["weight"] = examples["weight"].astype(np.float32)
    fs.create_dir(root, recursive=True)
    if searches is not None:
        _write(fs, root, QUERIES_FILE, texts)
    _write(fs, root, "items.parquet", items)
    _write(fs, root, "history.parquet", history)
    _write(fs, root, "examples.parquet", examples)
    _write(fs, root, "valid.parquet", split.valid[EVENT_COLUMNS])
    _write(fs, root, "test.parquet", split.test[EVENT_COLUMNS])
    counts = {"items": len(items), "train": len(history), "valid": len(split.valid), "test": len(split.test),
              "negatives": len(negatives), "users": int(history["user_id"].nunique()),
              **({"search_clicks": len(searches), "queries": len(texts)} if searches is not None else {})}
    with fs.open_output_stream(marker) as f:
        f.write(json.dumps({**settings, "counts": counts, "lineage": inputs.lineage}, indent=2).encode())
    return Prepared(uri, fingerprint, counts, inputs.lineage)
