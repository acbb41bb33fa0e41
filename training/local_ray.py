"""Start or join Ray the one way Serendip does: a local Ray always runs with Ray's token authentication.

Why a token and not loopback: in Ray 2.60 the GCS, the raylet, every core worker and the dashboard
agent's gRPC server listen on all interfaces (``::``), and the runtime-env agent on the node's address,
whatever ``ray.init(_node_ip_address="127.0.0.1")`` says (``services.resolve_ip_for_localhost`` turns a
loopback address into the node's). Nothing in Ray's API binds them to 127.0.0.1. With
``RAY_AUTH_MODE=token`` each of those servers refuses a request that lacks the cluster's token
(``ray/_private/authentication``), so a machine that can reach these ports cannot run code on them.

The token lives in ``<state_dir>/ray_auth_token`` (mode 0600, created once), and reaches Ray's own
processes through ``RAY_AUTH_TOKEN_PATH``. A token the user exported (``RAY_AUTH_TOKEN`` or
``RAY_AUTH_TOKEN_PATH``) is used instead. ``RAY_AUTH_MODE=disabled`` (the Makefile's and the tests'
setting) still applies when *joining* a cluster, never to a Ray this process starts.
"""

from __future__ import annotations

import os
import secrets
import stat
import tempfile
from pathlib import Path

import ray

DEFAULT_STATE_DIR = Path("runs")
"""Where a local Ray's token is kept unless the caller names the run's state directory."""
TOKEN_FILE = "ray_auth_token"


def token_file(state_dir: str | os.PathLike) -> Path:
    """``state_dir/ray_auth_token``, created with a random token and mode 0600 if it is not there yet."""
    path = Path(state_dir).resolve() / TOKEN_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        # Written whole to a private temp file, then linked in: a racing process sees all or nothing.
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{TOKEN_FILE}.")  # mkstemp creates it 0600
        try:
            os.write(fd, secrets.token_hex(32).encode())
            os.close(fd)
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(tmp)
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        raise PermissionError(f"{path}: Ray's auth token is readable by others (mode {mode:04o}); "
                              f"run `chmod 600 {path}` or delete it to get a new one")
    return path


def enable_token_auth(state_dir: str | os.PathLike = DEFAULT_STATE_DIR) -> None:
    """Turn Ray's token authentication on for this process and the Ray processes it starts."""
    if not os.environ.get("RAY_AUTH_TOKEN") and not os.environ.get("RAY_AUTH_TOKEN_PATH"):
        os.environ["RAY_AUTH_TOKEN_PATH"] = str(token_file(state_dir))
    os.environ["RAY_AUTH_MODE"] = "token"
    # Ray caches its config and token when first imported; reload both, as Ray's own
    # authentication_token_setup._enable_token_auth does, or this driver connects without the token.
    from ray._raylet import AuthenticationTokenLoader, Config

    Config.initialize("")
    AuthenticationTokenLoader.instance().reset_cache()


def init_ray(address: str | None = None, *, state_dir: str | os.PathLike = DEFAULT_STATE_DIR,
             log_to_driver: bool = True, **local_options) -> None:
    """Join the cluster at ``address`` (or ``RAY_ADDRESS``), or start a local Ray with token auth on.

    A no-op when Ray is already up. ``local_options`` (``num_cpus``, ``resources``, ...) go to
    ``ray.init`` for a local start only. The dashboard stays on and on 127.0.0.1: without it Train
    cannot free a finished run's placement group (measured with Ray 2.60: the next Train-in-Tune trial then hangs).
    """
    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, log_to_driver=log_to_driver)
        return
    enable_token_auth(state_dir)
    ray.init(**{"include_dashboard": True, "dashboard_host": "127.0.0.1", "log_to_driver": log_to_driver,
                **local_options})
