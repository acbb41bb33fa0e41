"""Session-wide test settings: loopback only, no hub. ``RAY_AUTH_MODE=disabled`` applies only to clusters the
tests start themselves (``ray start``, ``Cluster``); the session's Ray keeps token auth on (``init_ray``)."""

import os

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_metrics_report_interval_ms", "1000")  # custom metrics reach /metrics within a test
# Tiny matrices in tests: BLAS thread pools only add contention on 2 cores.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")


import pytest  # noqa: E402

# Tests that still fail now and then: the symptom is recorded here, the fix is open work. They still run
# and report XPASS/XFAIL, so a pass or a fail stays visible. Remove an entry as soon as its fix lands.
KNOWN_UNSTABLE: dict[str, str] = {}


def pytest_collection_modifyitems(config, items):
    """Mark the known-unstable tests non-strict xfail: they run, and their outcome is reported."""
    for item in items:
        for key, reason in KNOWN_UNSTABLE.items():
            if key in item.nodeid:
                item.add_marker(pytest.mark.xfail(reason=reason, strict=False))
