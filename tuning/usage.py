"""How busy a sweep kept the cluster: trials run at once, and CPU use as Ray reports it.

``Concurrency`` is a Tune callback that counts running trials exactly (start/finish events).
``CpuSampler`` polls Ray's resource view (logical CPUs reserved) and the node's measured CPU use
(``psutil``, the figure Ray's dashboard shows) in a background thread while a sweep runs.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psutil
import ray
from ray import tune


class Concurrency(tune.Callback):
    """Counts running trials; ``summary()`` gives the peak and the time-averaged count."""

    def __init__(self) -> None:
        self.running = 0
        self.peak = 0
        self._area = 0.0
        self._t0: float | None = None
        self._last = 0.0

    def _change(self, delta: int) -> None:
        now = time.monotonic()
        if self._t0 is None:
            self._t0 = self._last = now
        self._area += self.running * (now - self._last)
        self._last = now
        self.running = max(0, self.running + delta)
        self.peak = max(self.peak, self.running)

    def on_trial_start(self, iteration, trials, trial, **info):
        """A trial got its resources and started."""
        self._change(+1)

    def on_trial_complete(self, iteration, trials, trial, **info):
        """A trial finished or was stopped by the scheduler."""
        self._change(-1)

    def on_trial_error(self, iteration, trials, trial, **info):
        """A trial failed."""
        self._change(-1)

    def summary(self) -> dict[str, float]:
        """``trials_peak_concurrent`` and ``trials_mean_concurrent`` (time-weighted while any ran)."""
        span = (self._last - self._t0) if self._t0 is not None else 0.0
        return {"trials_peak_concurrent": self.peak,
                "trials_mean_concurrent": round(self._area / span, 3) if span > 0 else 0.0}


@dataclass
class CpuUsage:
    """Averages of the samples taken while the sweep ran."""

    ray_cpu_reserved: float
    """Mean share of the cluster's logical CPUs that trials held (ray.available_resources)."""
    node_cpu_busy: float
    """Mean measured CPU use of the machine, 0..1 (psutil; includes any other process on it)."""
    samples: int
    """Number of samples."""


class CpuSampler:
    """Background sampler of Ray's CPU view; use as a context manager around ``tuner.fit()``."""

    def __init__(self, interval_s: float = 0.5) -> None:
        self.interval_s = interval_s
        self._reserved: list[float] = []
        self._busy: list[float] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="cpu-sampler", daemon=True)

    def _run(self) -> None:
        psutil.cpu_percent(None)
        while not self._stop.wait(self.interval_s):
            total = ray.cluster_resources().get("CPU", 0.0)
            free = ray.available_resources().get("CPU", 0.0)
            if total > 0:
                self._reserved.append((total - free) / total)
            self._busy.append(psutil.cpu_percent(None) / 100.0)

    def __enter__(self) -> CpuSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def usage(self) -> CpuUsage:
        """The averages so far."""
        mean = lambda xs: round(sum(xs) / len(xs), 3) if xs else 0.0  # noqa: E731
        return CpuUsage(mean(self._reserved), mean(self._busy), len(self._reserved))
