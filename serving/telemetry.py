"""Custom Prometheus metrics through Ray's metrics API (exported with Serve's own at the metrics port).

Create one ``ServingMetrics`` inside each replica (Ray metrics belong to the process that made
them). Names are prefixed ``serendip_``; Serve's built-ins are ``ray_serve_...``.

Stages (``serendip_stage_latency_ms{stage=...}``, and per replica in ``GET /stats`` as
``stages_ms``): ``user_tower`` and ``retrieval`` (the scorer's batch, in its worker thread),
``scorer_batch`` (the whole batch), ``bandit_select`` (the policy's draws, in a worker thread),
``wal_append`` (logging a slate or a feedback event), ``wal_commit`` (waiting for the group
commit's fsync), ``log_flush`` and ``snapshot`` (the bandit's periodic writes, on its event loop),
``recommend`` and ``feedback`` (the ingress, end to end), ``embed_items``, ``model_load``.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from contextlib import contextmanager

import numpy as np
from ray.util.metrics import Counter, Gauge, Histogram

LATENCY_BOUNDARIES_MS = [0.1, 0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000]
RECENT = 2048
"""Observations per stage kept for the percentiles of ``stage_summary``."""


class StageTimes:
    """Per-stage count, total and the recent observations, in this process (thread-safe: stages run in
    worker threads too)."""

    def __init__(self, recent: int = RECENT) -> None:
        self._lock = threading.Lock()
        self._recent = recent
        self._stages: dict[str, tuple[list[float], deque]] = {}

    def add(self, stage: str, ms: float) -> None:
        """Record one observation of ``stage``."""
        with self._lock:
            totals, recent = self._stages.setdefault(stage, ([0, 0.0], deque(maxlen=self._recent)))
            totals[0] += 1
            totals[1] += ms
            recent.append(ms)

    def summary(self) -> dict[str, dict[str, float]]:
        """``{stage: {count, mean_ms, p50_ms, p99_ms}}`` (percentiles over the recent observations)."""
        with self._lock:
            copies = {name: (tuple(totals), np.asarray(recent)) for name, (totals, recent) in self._stages.items()}
        return {name: {"count": int(count), "mean_ms": round(total / count, 4),
                       "p50_ms": round(float(np.percentile(recent, 50)), 4),
                       "p99_ms": round(float(np.percentile(recent, 99)), 4)}
                for name, ((count, total), recent) in sorted(copies.items())}


class ServingMetrics:
    """Impressions, feedback, exploration share, CTR per arm and per-stage latency."""

    def __init__(self) -> None:
        self.impressions = Counter("serendip_impressions", "Slates served.", tag_keys=("arm",))
        self.items_shown = Counter("serendip_items_shown", "Items shown in slates.", tag_keys=("arm",))
        self.items_explored = Counter("serendip_items_explored", "Shown items placed by exploration.", tag_keys=("arm",))
        self.feedback = Counter("serendip_feedback", "Feedback requests by outcome.", tag_keys=("arm", "status"))
        self.share_explored = Gauge("serendip_share_explored", "Share of shown items placed by exploration.",
                                    tag_keys=("arm",))
        self.ctr = Gauge("serendip_ctr", "Clicked impressions over impressions.", tag_keys=("arm",))
        self.latency = Histogram("serendip_stage_latency_ms", "Latency of each serving stage (ms).",
                                 boundaries=LATENCY_BOUNDARIES_MS, tag_keys=("stage",))
        self.stages = StageTimes()

    @contextmanager
    def timed(self, stage: str):
        """Observe the wall time of the ``with`` block as ``stage`` latency."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.observe(stage, (time.perf_counter() - start) * 1000)

    def observe(self, stage: str, ms: float) -> None:
        """One ``stage`` latency in milliseconds (the histogram and ``stage_summary``)."""
        self.latency.observe(ms, tags={"stage": stage})
        self.stages.add(stage, ms)

    def stage_summary(self) -> dict[str, dict[str, float]]:
        """This replica's time in each stage (``StageTimes.summary``)."""
        return self.stages.summary()

    def served(self, arm: str, shown: int, explored: int) -> None:
        """Count one served slate."""
        tags = {"arm": arm}
        self.impressions.inc(1, tags=tags)
        if shown:
            self.items_shown.inc(shown, tags=tags)
        if explored:
            self.items_explored.inc(explored, tags=tags)

    def arms(self, rows: list[dict]) -> None:
        """Set the per-arm gauges from ``/experiments`` rows."""
        for row in rows:
            tags = {"arm": row["arm"]}
            self.ctr.set(row["ctr"], tags=tags)
            self.share_explored.set(row["share_explored"], tags=tags)
