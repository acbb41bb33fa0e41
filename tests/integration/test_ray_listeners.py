"""The session's local Ray, started the project's way (``training.local_ray.init_ray``), lets nobody in without its token.

Ray 2.60 cannot bind its own servers to loopback (see ``training/local_ray.py``), so the test lists what
every process of this Ray listens on and shows that whatever listens beyond loopback refuses a
client without the token: Ray's HTTP servers answer 401, and a driver without the token cannot join
through the GCS. Prometheus exporters (read-only metrics text) are the one kind left unguarded.
"""

from __future__ import annotations

import http.client
import ipaddress
import os
import subprocess
import sys
from pathlib import Path

LOOPBACK = {"127.0.0.1", "::1"}


def ray_listeners() -> list[tuple[str, int, str]]:
    """(ip, port, process name) of every TCP listener of this process and its descendants (Ray's own)."""
    import psutil  # Ray's vendored copy (ray/thirdparty_files, on sys.path once ray is imported)

    procs = [psutil.Process(), *psutil.Process().children(recursive=True)]
    names = {}
    for proc in procs:
        try:
            names[proc.pid] = proc.name()
        except psutil.NoSuchProcess:
            continue
    return sorted({(c.laddr.ip, c.laddr.port, names[c.pid]) for c in psutil.net_connections("tcp")
                   if c.status == psutil.CONN_LISTEN and c.pid in names})


def http_probe(ip: str, port: int, headers: dict[str, str] | None = None) -> tuple[int, str] | None:
    """(status, body head) of ``GET /api/version`` on ip:port, or None when the port does not speak HTTP/1."""
    host = "127.0.0.1" if ipaddress.ip_address(ip).is_unspecified else ip
    conn = http.client.HTTPConnection(host, port, timeout=5)
    try:
        conn.request("GET", "/api/version", headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read(200).decode("utf-8", "replace")
    except (http.client.HTTPException, ConnectionError, TimeoutError):
        return None  # gRPC (HTTP/2 only): checked through the GCS below
    finally:
        conn.close()


def test_a_local_ray_runs_with_token_auth_and_a_private_token(ray_session):
    path = Path(os.environ["RAY_AUTH_TOKEN_PATH"])
    assert os.environ["RAY_AUTH_MODE"] == "token"
    assert path.name == "ray_auth_token" and oct(path.stat().st_mode & 0o777) == "0o600"
    assert len(path.read_text()) == 64


def test_every_listener_beyond_loopback_refuses_a_client_without_the_token(ray_session):
    listeners = ray_listeners()
    print("\n".join(f"{ip:>15} {port:>5} {name}" for ip, port, name in listeners))
    token = Path(os.environ["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
    exposed = [(ip, port, name) for ip, port, name in listeners if ip not in LOOPBACK]
    assert exposed, "Ray 2.60 binds its gRPC servers to all interfaces; if that changed, assert loopback only"
    for ip, port, name in exposed:
        answer = http_probe(ip, port)
        if answer is None:
            continue
        status, body = answer
        if body.startswith("# HTTP 404") or body.startswith("# HELP") or "Method Not Allowed" in body:
            continue  # a Prometheus exporter: read-only metrics text
        assert status == 401, f"{name} on {ip}:{port} answered {status} without a token: {body!r}"
        assert http_probe(ip, port, {"Authorization": f"Bearer {token}"})[0] != 401, f"{name} refused the token"


def test_the_dashboard_and_job_server_listen_on_loopback_and_want_the_token(ray_session):
    import ray

    url = ray.get_runtime_context().worker.node.address_info["webui_url"]
    host, port = url.rsplit(":", 1)
    assert host == "127.0.0.1"
    assert [ip for ip, p, _ in ray_listeners() if p == int(port)] == ["127.0.0.1"]
    assert http_probe(host, int(port))[0] == 401
    token = Path(os.environ["RAY_AUTH_TOKEN_PATH"]).read_text().strip()
    assert http_probe(host, int(port), {"Authorization": f"Bearer {token}"})[0] == 200


JOIN = """
import ray
try:
    ray.init(address={address!r}, log_to_driver=False)
except Exception as err:
    print("REFUSED", type(err).__name__)
else:
    print("JOINED")
"""


def test_a_driver_without_the_token_cannot_join_through_the_gcs(ray_session):
    address = ray_session.get_runtime_context().gcs_address
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_AUTH") and k != "RAY_ADDRESS"}
    env["RAY_AUTH_MODE"] = "disabled"  # what a client without the token runs as
    done = subprocess.run([sys.executable, "-c", JOIN.format(address=address)], env=env, capture_output=True,
                          text=True, timeout=180, check=False)
    assert "REFUSED" in done.stdout, f"{done.stdout}\n{done.stderr[-2000:]}"
    assert "InvalidAuthToken" in done.stderr or "Authentication" in done.stderr
