"""One real local Ray per test session (2 CPUs, loopback only, Serve in the fast ingress mode as
``serendip serve`` runs it), shared by every integration test.

Tests that need Ray take the ``ray_session`` fixture; tests that need Serve take ``serve_port``.
``TRAIN_DRIVER`` is a custom resource for Tune trials that drive a Train run (measured with Ray 2.60:
a 1-CPU trial plus 1-CPU workers never schedules on 2 CPUs).
"""

from __future__ import annotations

import os
import socket

import pytest

INGRESS_CHANGES: dict[str, str | None] = {}
"""What ``serving.ingress_mode.starting_ray`` set while the session's Ray started."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def metrics_port() -> int:
    """Where the session's Ray exports Prometheus metrics (Serve's and Serendip's own)."""
    return free_port()


@pytest.fixture(scope="session")
def ingress_changes(ray_session) -> dict[str, str | None]:
    """The environment Serve's ingress mode was started with (the fast mode, as ``serendip serve`` runs)."""
    return dict(INGRESS_CHANGES)


@pytest.fixture(scope="session")
def ray_session(metrics_port, tmp_path_factory):
    import ray

    from serving import ingress_mode
    from training.local_ray import init_ray

    state_dir = tmp_path_factory.mktemp("ray-state")
    # SERENDIP_TEST_INGRESS_MODE=default runs the suite under Serve's Python proxy, for comparison.
    with ingress_mode.starting_ray(os.environ.get("SERENDIP_TEST_INGRESS_MODE", "fast")) as changes:
        init_ray(
            state_dir=state_dir,
            num_cpus=2,
            resources={"TRAIN_DRIVER": 4},
            dashboard_port=free_port(),
            log_to_driver=False,
            _metrics_export_port=metrics_port,
        )
    INGRESS_CHANGES.update(changes)
    yield ray
    try:
        from ray import serve

        serve.shutdown()
    finally:
        ray.shutdown()


@pytest.fixture(scope="session")
def serve_port(ray_session) -> int:
    """Start Serve once per session on a free loopback port and return that port."""
    from ray import serve

    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    return port

