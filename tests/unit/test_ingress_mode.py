"""Serve's ingress mode: what each mode puts in the environment a local Ray starts with, and where the cluster sets it."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import yaml

from serving import ingress_mode
from serving.config import ServeConfig, ServeConfigError

PROJECT = Path(__file__).resolve().parents[2]


def test_fast_sets_both_switches_and_private_haproxy_files_and_ports():
    env = ingress_mode.ingress_env("fast", environ={})
    assert {k: env[k] for k in ingress_mode.SWITCHES} == ingress_mode.SWITCHES
    files = Path(env["RAY_SERVE_HAPROXY_CONFIG_FILE_LOC"]).parent
    assert stat.S_IMODE(files.stat().st_mode) == 0o700 and files != Path("/tmp/haproxy-serve")
    # Serve puts the admin socket under a 56-character node id; HAProxy refuses a path over 97 bytes.
    socket_path = Path(env["RAY_SERVE_HAPROXY_SOCKET_PATH"])
    assert len(str(socket_path.parent / ("n" * 56) / socket_path.name)) <= 97
    ports = {int(env[ingress_mode.STATS_PORT]), int(env[ingress_mode.METRICS_PORT])}
    assert len(ports) == 2 and not ports & {8404, 9101}  # not the machine-wide defaults two Serves would share


def test_fast_keeps_what_the_user_exported_and_default_removes_the_switches():
    env = ingress_mode.ingress_env("fast", environ={ingress_mode.STATS_PORT: "18404"})
    assert ingress_mode.STATS_PORT not in env
    assert ingress_mode.ingress_env("default", environ={}) == {name: None for name in ingress_mode.SWITCHES}
    with pytest.raises(ValueError, match="fast = HAProxy"):
        ingress_mode.ingress_env("haproxy")


def test_starting_ray_sets_the_mode_only_while_ray_starts(monkeypatch):
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setenv("RAY_SERVE_THROUGHPUT_OPTIMIZED", "0")
    import ray  # importing Ray sets variables of its own

    # As in a fresh `serendip serve`: no Ray in this process yet (the suite's own Ray may be up here).
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    before = dict(os.environ)
    with ingress_mode.starting_ray("fast") as changes:
        assert ingress_mode.running_mode() == "fast" and len(changes) == 9
    assert dict(os.environ) == before  # nothing leaks into another Ray or a subprocess this process starts
    monkeypatch.setenv("RAY_ADDRESS", "ray://head:10001")
    with ingress_mode.starting_ray("fast") as changes:  # a joined cluster keeps its own mode
        assert changes == {} and ingress_mode.running_mode() == "default"
    monkeypatch.delenv("RAY_ADDRESS")
    monkeypatch.setattr(ray, "is_initialized", lambda: True)
    with ingress_mode.starting_ray("fast") as changes:  # a Ray already up keeps the mode it started with
        assert changes == {} and ingress_mode.running_mode() == "default"


def test_serve_config_takes_the_mode_and_names_the_fix():
    assert ServeConfig(model=Path("m")).ingress_mode == "fast"
    assert ServeConfig.from_args({"model": "m", "ingress_mode": "default"}).ingress_mode == "default"
    with pytest.raises(ServeConfigError, match="ingress_mode"):
        ServeConfig(model=Path("m"), ingress_mode="haproxy")


def test_the_cluster_manifests_run_the_fast_ingress_on_every_pod():
    for name in ("raycluster.yaml", "rayservice.yaml"):
        docs = [d for d in yaml.safe_load_all((PROJECT / "cluster" / "kuberay" / name).read_text()) if d]
        spec = docs[0]["spec"].get("rayClusterConfig", docs[0]["spec"])
        groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
        for group in groups:
            for container in group["template"]["spec"]["containers"]:
                env = {e["name"]: e.get("value") for e in container.get("env", [])}
                assert {k: env.get(k) for k in ingress_mode.SWITCHES} == ingress_mode.SWITCHES, (name, container["name"])
    serve_args = yaml.safe_load((PROJECT / "serving" / "config.yaml").read_text())["applications"][0]["args"]
    assert serve_args["ingress_mode"] == "fast"
