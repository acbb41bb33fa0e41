"""The served-impression log: one row per shown item (the ``impressions`` schema) and one decision
context per slate (``decisions``), written to a Parquet dataset directory in parts.

A row is final when its impression leaves the delayed-reward window: its reward is what the
feedback said, or 0 if none came. Rows wait in memory and go out every ``batch_rows`` rows or
``interval_s`` seconds as ``date=<day>/part-<seq>.parquet`` (layout: ``recsys.data.served_log``).
Part numbers count flushes, and the bandit replays its WAL into the same sequence, so a part
rewritten after a crash has the same name and contents (idempotent).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from recsys.data.served_log import read_served_log, write_log_part
from serving.pending import DecisionContext

COLUMNS = ("impression_id", "ts", "user_id", "policy", "item_id", "position", "propensity", "score", "reward")
DECISION_COLUMNS = ("impression_id", "ts", "user_id", "policy", "model_version", "candidate_ids",
                    "candidate_scores", "candidate_prior", "user_vector")


def _empty(columns: tuple[str, ...]) -> dict[str, list]:
    return {c: [] for c in columns}


class ImpressionLog:
    """Buffers final impression rows and decision contexts and writes them as numbered Parquet parts."""

    def __init__(self, directory: Path, batch_rows: int = 5000, interval_s: float = 30.0) -> None:
        self.directory = Path(directory)
        self.batch_rows = batch_rows
        self.interval_s = interval_s
        self.next_part = 0
        self._rows = _empty(COLUMNS)
        self._decisions = _empty(DECISION_COLUMNS)
        self._last_flush = time.monotonic()

    @property
    def waiting(self) -> int:
        """Rows not yet written."""
        return len(self._rows["impression_id"])

    def add(self, impression_id: str, issued_ms: int, user_id: int, policy: str, item_ids: np.ndarray,
            propensities: np.ndarray, scores: np.ndarray, rewards: np.ndarray,
            context: DecisionContext | None = None) -> None:
        """Queue the k rows of one final impression (positions 0..k-1) and its decision context."""
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
        if context is not None:
            as_list = lambda a: None if a is None else [float(x) for x in a]  # noqa: E731
            for column, value in zip(DECISION_COLUMNS, (
                    impression_id, issued_ms, int(user_id), policy, context.model_version,
                    [int(i) for i in context.candidate_ids], as_list(context.scores), as_list(context.prior),
                    as_list(context.user_vector)), strict=True):
                self._decisions[column].append(value)

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

    def decision_frame(self) -> pd.DataFrame:
        """The waiting decision contexts, one row per slate."""
        df = pd.DataFrame(self._decisions, columns=list(DECISION_COLUMNS))
        df["ts"] = pd.to_datetime(np.asarray(self._decisions["ts"], dtype="int64"), unit="ms", utc=True)
        return df

    def flush(self) -> list[Path]:
        """Write the waiting rows as the next part (atomically, per day) and clear them."""
        self._last_flush = time.monotonic()
        if not self.waiting:
            return []
        written = write_log_part(self.directory, self.next_part, self.frame(), self.decision_frame())
        self.next_part += 1
        self._rows, self._decisions = _empty(COLUMNS), _empty(DECISION_COLUMNS)
        return written

    def discard(self) -> None:
        """Drop the waiting rows (the caller has set them aside) and skip their part number."""
        self._rows, self._decisions = _empty(COLUMNS), _empty(DECISION_COLUMNS)
        self.next_part += 1

    def state(self) -> dict[str, list]:
        """The waiting rows and the part counter, for a snapshot (plain lists, JSON-safe)."""
        return {"next_part": self.next_part, "rows": {c: list(v) for c, v in self._rows.items()},
                "decisions": {c: list(v) for c, v in self._decisions.items()}}

    def restore(self, state: dict) -> None:
        """Undo ``state``: the rows waiting when the snapshot was taken."""
        self.next_part = int(state["next_part"])
        self._rows = {c: list(state["rows"][c]) for c in COLUMNS}
        decisions = state.get("decisions") or {}
        self._decisions = {c: list(decisions.get(c, [])) for c in DECISION_COLUMNS}


def read_impression_log(directory: Path) -> pd.DataFrame:
    """All written parts of a served log as one validated impressions table (what OPE and retraining read)."""
    return read_served_log(directory)[0]
