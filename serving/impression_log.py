"""The served-impression log: one row per shown item, in the ``impressions`` schema, written to Parquet in parts.

A row is final when its impression leaves the delayed-reward window: its reward is what the
feedback said, or 0 if none came. Rows wait in memory and go out as ``part-<seq>.parquet``
(through ``recsys.data.write_table``, which validates them) every ``batch_rows`` rows or
``interval_s`` seconds. Part names count flushes, and the bandit replays its WAL into the same
sequence, so a part rewritten after a crash has the same name and contents (idempotent).
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data import read_table, write_table

COLUMNS = ("impression_id", "ts", "user_id", "policy", "item_id", "position", "propensity", "score", "reward")


class ImpressionLog:
    """Buffers final impression rows and writes them as numbered Parquet parts."""

    def __init__(self, directory: Path, batch_rows: int = 5000, interval_s: float = 30.0) -> None:
        self.directory = Path(directory)
        self.batch_rows = batch_rows
        self.interval_s = interval_s
        self.next_part = 0
        self._rows: dict[str, list] = {c: [] for c in COLUMNS}
        self._last_flush = time.monotonic()

    @property
    def waiting(self) -> int:
        """Rows not yet written."""
        return len(self._rows["impression_id"])

    def add(self, impression_id: str, issued_ms: int, user_id: int, policy: str, item_ids: np.ndarray,
            propensities: np.ndarray, scores: np.ndarray, rewards: np.ndarray) -> None:
        """Queue the k rows of one final impression (positions 0..k-1)."""
        k = len(item_ids)
        self._rows["impression_id"] += [impression_id] * k
        self._rows["ts"] += [issued_ms] * k
        self._rows["user_id"] += [int(user_id)] * k
        self._rows["policy"] += [policy] * k
        self._rows["item_id"] += [int(i) for i in item_ids]
        self._rows["position"] += list(range(k))
        self._rows["propensity"] += [float(p) for p in propensities]
        self._rows["score"] += [float(s) for s in scores]
        self._rows["reward"] += [float(r) for r in rewards]

    def due(self) -> bool:
        """Whether a part should be written now (enough rows, or rows older than the interval)."""
        if self.waiting >= self.batch_rows:
            return True
        return self.waiting > 0 and time.monotonic() - self._last_flush >= self.interval_s

    def frame(self) -> pd.DataFrame:
        """The waiting rows as a DataFrame in the impressions schema's column order."""
        df = pd.DataFrame(self._rows, columns=list(COLUMNS))
        df["ts"] = pd.to_datetime(np.asarray(self._rows["ts"], dtype="int64"), unit="ms", utc=True)
        return df

    def flush(self) -> Path | None:
        """Write the waiting rows as the next part (atomically) and clear them; None when nothing waits."""
        self._last_flush = time.monotonic()
        if not self.waiting:
            return None
        self.directory.mkdir(parents=True, exist_ok=True)
        final = self.directory / f"part-{self.next_part:06d}.parquet"
        # A leading dot keeps the half-written file out of pyarrow's dataset discovery.
        tmp = self.directory / f".{final.name}"
        write_table(self.frame(), tmp, "impressions")
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        self.next_part += 1
        self._rows = {c: [] for c in COLUMNS}
        return final

    def mark_written(self) -> None:
        """Replay found this part already on disk: drop its rows and move to the next part number."""
        self.next_part += 1
        self._rows = {c: [] for c in COLUMNS}

    def state(self) -> dict[str, list]:
        """The waiting rows and the part counter, for a snapshot (plain lists, JSON-safe)."""
        return {"next_part": self.next_part, "rows": {c: list(v) for c, v in self._rows.items()}}

    def restore(self, state: dict) -> None:
        """Undo ``state``: the rows waiting when the snapshot was taken."""
        self.next_part = int(state["next_part"])
        self._rows = {c: list(state["rows"][c]) for c in COLUMNS}


def read_impression_log(directory: Path) -> pd.DataFrame:
    """All written parts of a served log as one validated impressions table (what OPE and retraining read)."""
    parts = sorted(Path(directory).glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(
            f"{directory}: no impression-log parts (part-*.parquet); the server writes them as impressions expire"
        )
    return pd.concat([read_table(p, "impressions") for p in parts], ignore_index=True)
