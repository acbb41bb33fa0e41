"""Custom Prometheus metrics through Ray's metrics API (exported with Serve's own at the metrics port).

Create one ``ServingMetrics`` inside each replica (Ray metrics belong to the process that made
them). Names are prefixed ``serendip_``; Serve's built-ins are ``ray_serve_...``.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from ray.util.metrics import Counter, Gauge, Histogram

LATENCY_BOUNDARIES_MS = [0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000]


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

    @contextmanager
    def timed(self, stage: str):
        """Observe the wall time of the ``with`` block as ``stage`` latency."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.latency.observe((time.perf_counter() - start) * 1000, tags={"stage": stage})

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
