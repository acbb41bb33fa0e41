"""Where a sweep runs: an existing Ray cluster, or an embedded local one started the way tests do.

The local start declares ``TRAIN_DRIVER``, a custom resource for the Tune trial that drives a
Train run: on a 2-CPU machine a trial holding 1 CPU leaves too few for its 1-CPU Train workers,
which then wait forever for CPUs their own trial holds.
"""

from __future__ import annotations

import math

import ray

from training.local_ray import init_ray

TRAIN_DRIVER = "TRAIN_DRIVER"
"""Custom resource a Train-driving trial holds instead of a CPU."""


def connect(address: str | None = None, num_cpus: int | None = None) -> None:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), or start a local Ray with token auth and
    ``TRAIN_DRIVER`` slots; no-op when already up (``training.local_ray.init_ray``)."""
    init_ray(address, num_cpus=num_cpus, resources={TRAIN_DRIVER: 4})


def trial_driver_resources() -> dict[str, float]:
    """Resources of a trial that only drives a Train run: TRAIN_DRIVER when the cluster has it, else 1 CPU."""
    if ray.cluster_resources().get(TRAIN_DRIVER, 0) >= 1:
        return {TRAIN_DRIVER: 1}
    return {"cpu": 1}


def concurrent_slots(cpus_per_trial: float) -> int:
    """How many trials needing ``cpus_per_trial`` CPUs fit on the cluster at once (at least 1)."""
    cpus = ray.cluster_resources().get("CPU", 1.0)
    return max(1, math.floor(cpus / cpus_per_trial + 1e-9))
