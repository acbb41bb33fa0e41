"""The served log on disk: a Parquet dataset directory that pyarrow, pandas, DuckDB or Spark read as is.

    LOG/date=2026-12-06/part-000003.parquet             impressions rows (one per shown item)
    LOG/_decisions/date=2026-12-06/part-000003.parquet  decision contexts (one per slate)

The ``date=`` folders are Hive partitions of the UTC day the slate was served, so a reader that
wants one day prunes the rest; ``pd.read_parquet(LOG)`` reads the impressions with a ``date``
column and skips ``_decisions`` (names starting with "_" or "." are not data to pyarrow). Part
numbers count the writer's flushes; a part spanning midnight is one file in each day's folder.
Older logs (``LOG/part-*.parquet``, no decisions) are read too.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from recsys.data.io import validate_frame, write_table
from recsys.data.schemas import DECISIONS

DECISIONS_DIR = "_decisions"


def _day(ts_ms: np.ndarray) -> np.ndarray:
    """UTC date strings (YYYY-MM-DD) of Unix-millisecond timestamps."""
    return np.datetime_as_string(np.asarray(ts_ms, dtype="datetime64[ms]"), unit="D")


def _replace_fsynced(write, final: Path) -> None:
    """``write(tmp)`` then fsync and atomically rename onto ``final`` (dot-named until complete)."""
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{final.name}")
    write(tmp)
    with open(tmp, "rb") as f:
        os.fsync(f.fileno())
    os.replace(tmp, final)


def write_log_part(directory: Path, part: int, rows: pd.DataFrame, decisions: pd.DataFrame | None) -> list[Path]:
    """Write one flush: impressions ``rows`` and their ``decisions``, split by UTC day; returns the files."""
    name = f"part-{part:06d}.parquet"
    written = []
    row_days = _day(rows["ts"].to_numpy("datetime64[ms]").astype("int64"))
    for day in np.unique(row_days):
        final = Path(directory) / f"date={day}" / name
        _replace_fsynced(lambda tmp, d=day: write_table(rows[row_days == d].reset_index(drop=True), tmp, "impressions"),
                         final)
        written.append(final)
    if decisions is not None and len(decisions):
        table = pa.Table.from_pandas(decisions, schema=DECISIONS, preserve_index=False)
        dec_days = _day(decisions["ts"].to_numpy("datetime64[ms]").astype("int64"))
        for day in np.unique(dec_days):
            final = Path(directory) / DECISIONS_DIR / f"date={day}" / name
            _replace_fsynced(lambda tmp, d=day: pq.write_table(table.filter(pa.array(dec_days == d)), tmp), final)
            written.append(final)
    return written


def _parts(directory: Path) -> list[Path]:
    return sorted(p for p in directory.glob("part-*.parquet")) + sorted(directory.glob("date=*/part-*.parquet"))


def read_served_log(directory: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """(impressions, decisions) of a served log directory, impressions validated, both in serving order.

    ``decisions`` is None for a log written before decision contexts were logged.
    """
    directory = Path(directory)
    if directory.is_file():
        from recsys.data.io import read_table

        return read_table(directory, "impressions"), None
    parts = _parts(directory)
    if not parts:
        raise FileNotFoundError(
            f"{directory}: no impression-log parts (part-*.parquet or date=*/part-*.parquet); "
            "the server writes them as impressions leave the reward window; pass the log directory"
        )
    frames = [pd.read_parquet(p) for p in parts]
    impressions = validate_frame(pd.concat(frames, ignore_index=True), "impressions", str(directory))
    impressions = impressions.sort_values(["ts", "impression_id", "position"], kind="stable", ignore_index=True)
    decision_parts = sorted((directory / DECISIONS_DIR).glob("date=*/part-*.parquet"))
    if not decision_parts:
        return impressions, None
    decisions = pa.concat_tables([pq.read_table(p, schema=DECISIONS) for p in decision_parts]).to_pandas()
    return impressions, decisions.sort_values(["ts", "impression_id"], kind="stable", ignore_index=True)
