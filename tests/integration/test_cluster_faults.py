"""Fault drills on a real 2-node Ray cluster (``ray.cluster_utils.Cluster``) on this machine.

Each drill runs in its own process (this file run as a script): it starts its own head and worker
node with a private ``RAY_TMPDIR`` (so it never becomes the machine's "current cluster"), so it runs
beside the session's ``ray_session`` fixture. The drill prints one JSON line of counts last; the test
asserts on them. On a timeout the test kills the drill's process group, Ray processes included.

- train: 2 Ray Train workers, one per node; the worker node dies after the first checkpoint; a fresh
  node joins; training resumes from the checkpoint and finishes.
- serve: the Serve app with two scorer replicas, one on the worker node; that node dies while a client
  keeps calling /recommend with retries; we count the requests that failed even after retries.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from serving import ingress_mode

pytestmark = [pytest.mark.slow]

HERE = Path(__file__).resolve()
DASHBOARD = ""  # the drill cluster's dashboard URL, set by start_cluster
GRACEFUL = os.environ.get("SERENDIP_DRILL_GRACEFUL", "1") == "1"
DRILL_TIMEOUT_S = float(os.environ.get("SERENDIP_DRILL_TIMEOUT_S", 420))
"""Wall-clock limit of one drill: about 2 minutes on a quiet 2-core machine, 3 to 4 at load average 20."""
PROJECT_ROOT = HERE.parents[2]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_drill(name: str, workdir: Path, timeout_s: float) -> dict:
    """Run ``python this_file NAME WORKDIR`` in its own process group; return its last JSON line."""
    tmp = tempfile.mkdtemp(prefix="sdf", dir="/tmp")  # short: Ray's unix socket paths are capped
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_TMPDIR=tmp, RAY_AUTH_MODE="disabled", RAY_USAGE_STATS_ENABLED="0", HF_HUB_OFFLINE="1",
               PYTHONPATH=f"{PROJECT_ROOT}{os.pathsep}{env.get('PYTHONPATH', '')}")
    # Every node the drill starts runs Serve's fast ingress, as serendip serve and the RayService do.
    env.update({k: v for k, v in ingress_mode.ingress_env("fast", env).items() if v is not None})
    proc = subprocess.Popen([sys.executable, str(HERE), name, str(workdir)], env=env, cwd=PROJECT_ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"drill {name} ran past {timeout_s:.0f} s:\n{out[-12000:]}")
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # stragglers of the drill's own Ray, if any
        except ProcessLookupError:
            pass
        subprocess.run(["rm", "-rf", tmp], check=False)
    print("\n".join(line for line in out.splitlines() if line.startswith("[drill")))
    lines = [line for line in out.splitlines() if line.startswith("{")]
    assert proc.returncode == 0 and lines, f"drill {name} failed (rc {proc.returncode}):\n{out[-4000:]}"
    return json.loads(lines[-1])


@pytest.mark.timeout(DRILL_TIMEOUT_S + 60)
def test_training_resumes_from_its_checkpoint_when_a_node_dies(tmp_path):
    result = run_drill("train", tmp_path, timeout_s=DRILL_TIMEOUT_S)
    print(json.dumps(result))
    assert result["worker_nodes"] == 2  # the two workers ran on different nodes
    assert result["reported_before_kill"] >= 1 and result["restarted_on_fresh_node"]
    # Resumed, not restarted: no epoch is reported twice, and every epoch is there once.
    assert result["epochs_reported"] == list(range(result["epochs"]))
    assert result["finished_epochs"] == result["epochs"]
    assert result["model_files"] >= 3


@pytest.mark.timeout(DRILL_TIMEOUT_S + 60)
def test_serve_keeps_answering_while_a_scorer_node_dies(tmp_path):
    result = run_drill("serve", tmp_path, timeout_s=DRILL_TIMEOUT_S)
    print(json.dumps(result))
    assert result["scorer_nodes_before"] == 2
    assert not result["ingress_or_bandit_moved"]  # scaling the scorers in place restarts nothing else
    assert result["requests_after_removal"] >= 20
    assert result["failed_after_retries"] == 0, result


# ----------------------------------------------------------------------------------------- drills


def say(*parts) -> None:
    """A progress line on the drill's output (the test shows it when the drill fails)."""
    print(f"[drill {time.strftime('%H:%M:%S')}]", *parts, flush=True)


def start_cluster(head_cpus: float):
    """A head with a loopback dashboard, connected as the driver; returns the Cluster.

    The nodes keep Ray's default node IP: a driver rewrites a 127.0.0.1 bootstrap address to the
    machine's IP (``resolve_ip_for_localhost``), so loopback-only GCS ports would be unreachable.
    """
    import ray
    from ray.cluster_utils import Cluster

    global DASHBOARD
    DASHBOARD = f"http://127.0.0.1:{free_port()}"
    # Serve's controller kills a proxy that is not ready after 3 checks of 5 s; at a load average
    # of 5 on 2 cores the proxy's start alone takes longer (seen twice). The nodes inherit this.
    os.environ.setdefault("RAY_SERVE_PROXY_READY_CHECK_TIMEOUT_S", "30")
    cluster = Cluster(initialize_head=True, head_node_args={
        "num_cpus": head_cpus, "include_dashboard": True, "dashboard_host": "127.0.0.1",
        "dashboard_port": int(DASHBOARD.rsplit(":", 1)[1]), "object_store_memory": 100 * 2**20})
    ray.init(address=cluster.address, log_to_driver=False)
    return cluster


def add_worker(cluster, cpus: float):
    """One more node of ``cpus`` CPUs; waits until the cluster sees it."""
    node = cluster.add_node(num_cpus=cpus, object_store_memory=100 * 2**20)
    cluster.wait_for_nodes()
    return node


def alive_actors(class_fragment: str) -> dict[str, str]:
    """Actor id -> node id of the live actors whose class name contains ``class_fragment``."""
    from ray.util.state import list_actors

    # An explicit address: other Ray instances on this machine would make auto-detection guess.
    return {a.actor_id: a.node_id for a in list_actors(address=DASHBOARD, filters=[("state", "=", "ALIVE")], limit=1000)
            if class_fragment in a.class_name}


def alive_actor_nodes(class_fragment: str) -> list[str]:
    """Node ids of the live actors whose class name contains ``class_fragment``."""
    return list(alive_actors(class_fragment).values())


def tiny_shop(root: Path) -> Path:
    """A small simulated shop (items, events, world) written under root/shop."""
    from recsys.simulator import SimulateConfig, simulate

    return simulate(SimulateConfig(out=root / "shop", users=100, items=60, days=20, seed=1, quiet=True))


def report_log(path: Path):
    """A Ray Train callback (it runs in the controller actor) appending each reported epoch to ``path``."""
    from ray.train import UserCallback

    class ReportLog(UserCallback):
        def after_report(self, run_context, metrics, checkpoint):
            with open(path, "a") as f:
                f.write(json.dumps({"epoch": metrics[0]["epoch"], "checkpoint": checkpoint is not None}) + "\n")

    return ReportLog()


def drill_train(root: Path) -> dict:
    """2 workers on 2 one-CPU nodes; kill the worker node after the first checkpoint; add a new node."""
    from recsys.model import build_tiny_base
    from training.config import TrainConfig
    from training.trainer import fit

    epochs = 6
    cfg = TrainConfig(data=tiny_shop(root), out=root / "model", workers=2, base=str(build_tiny_base(root / "base")),
                      epochs=epochs, batch_size=32, dim=16, history_len=8, max_text_len=16, user_layers=1,
                      storage_path=str(root / "storage"), name="drill", max_failures=3, timeout_s=180,
                      patience=epochs, log_every=10_000, cpus_per_worker=1.0)
    cluster = start_cluster(head_cpus=1)
    worker = add_worker(cluster, cpus=1)
    say("cluster up")
    reports = root / "reports.jsonl"
    outcome: dict = {}

    def train() -> None:
        try:
            outcome["result"] = fit(cfg, callbacks=[report_log(reports)])
        except BaseException as err:  # reported by the drill, not lost in the thread
            outcome["error"] = f"{type(err).__name__}: {err}"

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    nodes_before: set[str] = set()
    while not (reports.exists() and reports.read_text()) and thread.is_alive():
        nodes_before |= set(alive_actor_nodes("RayTrainWorker"))
        time.sleep(0.5)
    if "error" in outcome:
        raise RuntimeError(f"training failed before its first checkpoint: {outcome['error']}")
    reported_before = len(reports.read_text().splitlines()) if reports.exists() else 0
    say("first checkpoint reported; killing the worker node; workers ran on", nodes_before)
    cluster.remove_node(worker, allow_graceful=False)
    fresh = add_worker(cluster, cpus=1)
    say("fresh node joined")
    nodes_after: set[str] = set()
    while thread.is_alive():  # the test's timeout bounds the whole drill
        nodes_after |= set(alive_actor_nodes("RayTrainWorker"))
        time.sleep(0.5)
    if "result" not in outcome:
        raise RuntimeError(f"training did not finish after the node died: {outcome.get('error')}")
    result = outcome["result"]
    epochs_reported = [json.loads(line)["epoch"] for line in reports.read_text().splitlines()]
    say("reported epochs", epochs_reported)
    return {"epochs": epochs, "worker_nodes": len(nodes_before), "reported_before_kill": reported_before,
            "epochs_reported": epochs_reported, "restarted_on_fresh_node": fresh.node_id in nodes_after,
            "finished_epochs": len(result.metrics), "model_files": len(list(Path(result.model_dir).iterdir()))}


def servable_model(root: Path) -> tuple[Path, Path]:
    """A tiny untrained two-tower model over the tiny shop's catalog (serving needs no training)."""
    from recsys.data import read_table
    from recsys.model import Calibrator, TwoTower, TwoTowerConfig, build_tiny_base

    shop = tiny_shop(root)
    config = TwoTowerConfig(base=str(build_tiny_base(root / "base")), dim=16, user_heads=2, user_layers=1,
                            id_embeddings=False, history_len=8)
    model = TwoTower.from_base(config).eval()
    model.calibrator = Calibrator("platt", {"a": 0.02, "b": -2.5})
    items = read_table(shop / "items.parquet", "items")
    model.save_pretrained(root / "model", item_table=model.item_table(items))
    return root / "model", shop


def drill_serve(root: Path) -> dict:
    """Scorer replicas on both nodes; kill the worker node under steady /recommend traffic."""
    import httpx
    from ray import serve
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    from serving.app import app_config, deploy
    from serving.config import ServeConfig

    model, shop = servable_model(root)
    say("model ready")
    cluster = start_cluster(head_cpus=1)
    say("cluster up")
    port = free_port()
    serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port})
    cfg = ServeConfig(model=model, data=shop, state_dir=root / "state", arms=("control=greedy", "explore=thompson"),
                      scorer_num_cpus=0.5, bandit_num_cpus=0.25, ingress_num_cpus=0.25, retrieve_n=30,
                      app_name="drill", scorer_replicas=1)
    # The head's one CPU holds the ingress, the bandit and one scorer; the second scorer needs the new node.
    deploy(cfg, dashboard=DASHBOARD)
    stateful = {**alive_actors("Ingress"), **alive_actors("Bandit")}
    say("app running on the head; ingress and bandit:", stateful)
    worker = add_worker(cluster, cpus=1)
    # The second scorer as Serve's in-place update (a deployment override): a changed `args` or an
    # imperative serve.run would restart the ingress and the bandit too, and they could land on the
    # node that the drill removes.
    scaled = app_config(cfg)
    scaled["deployments"].append({"name": "Scorer", "num_replicas": 2})
    ServeSubmissionClient(DASHBOARD).deploy_applications({"applications": [scaled]})
    deadline = time.monotonic() + 120
    while len(alive_actor_nodes("Scorer")) < 2 or serve.status().applications["drill"].status != "RUNNING":
        if time.monotonic() > deadline:
            raise RuntimeError(f"the second scorer did not start: {serve.status().applications['drill']}")
        time.sleep(0.5)
    scorer_nodes = alive_actor_nodes("Scorer")
    moved = {**alive_actors("Ingress"), **alive_actors("Bandit")} != stateful
    say("second scorer up; scorer nodes:", scorer_nodes, "; ingress or bandit restarted:", moved)
    counts = {"requests": 0, "first_try_failures": 0, "failed_after_retries": 0, "requests_after_removal": 0}
    errors: dict[str, int] = {}
    removed_at = None
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as client:
        def recommend(user: int) -> bool:
            for attempt in range(4):
                try:
                    status = client.post("/recommend", json={"user_id": user, "k": 5}).status_code
                except httpx.HTTPError as err:
                    status = type(err).__name__
                if status == 200:
                    return True
                key = f"{status} at +{time.monotonic() - removed_at:.0f}s" if removed_at else str(status)
                errors[key] = errors.get(key, 0) + 1
                counts["first_try_failures"] += attempt == 0
                time.sleep(0.5 * (attempt + 1))
            return False

        started = time.monotonic()
        while time.monotonic() - started < 30:
            counts["failed_after_retries"] += not recommend(counts["requests"] % 80)
            counts["requests"] += 1
            counts["requests_after_removal"] += removed_at is not None
            if removed_at is None and time.monotonic() - started > 5:
                say("removing the worker node after", counts)
                cluster.remove_node(worker, allow_graceful=GRACEFUL)
                removed_at = time.monotonic()
                say("removed")
    say("traffic done", counts, errors)
    return {"scorer_nodes_before": len(set(scorer_nodes)), "ingress_or_bandit_moved": moved, **counts, "errors": errors}


# ------------------------------------------------------------------- the bandit's node, hard-killed

REQUEST_TIMEOUT_S = 10.0
"""Serve's request_timeout_s in the bandit-node drill; the ingress's own deadline on /recommend is shorter."""


@pytest.mark.timeout(DRILL_TIMEOUT_S + 60)
def test_the_bandit_comes_back_on_the_surviving_node_when_its_node_is_hard_killed(tmp_path):
    """SIGKILL every process of the node holding the bandit replica (no graceful ``remove_node``).

    The state dir is on the disk both nodes share; the head keeps room for the bandit. Ray notices the
    dead node by its missed health checks, Serve starts the bandit on the head, and the new replica
    replays the WAL. /recommend fails meanwhile (503 from the ingress's deadline, never a hang), then
    answers again. The drill measures the outage and the latency once it is over.
    """
    result = run_drill("bandit_node", tmp_path, timeout_s=DRILL_TIMEOUT_S)
    print(json.dumps(result))
    assert result["bandit_on_killed_node"] and result["bandit_moved_to_head"], result
    assert result["replayed_on_start"] > 0, result  # the state came back from the shared disk
    assert result["hung"] == 0 and result["slowest_s"] <= REQUEST_TIMEOUT_S + 1, result  # every answer in time
    assert result["failures"] > 0 and result["outage_s"] is not None, result  # the drill did hit the outage
    assert result["after_recovery"] >= 100 and result["failures_after_recovery"] == 0, result


def node_processes(node) -> list[int]:
    """Every live process of a ``Cluster`` node: its raylet and agents and all their descendants (workers)."""
    roots = [info.process.pid for infos in node.all_processes.values() for info in infos if info.process]
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/stat") as f:
                    ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], list(roots)
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


def drill_bandit_node(root: Path) -> dict:
    """Ingress and scorer on the head, the bandit alone on the worker; SIGKILL the worker's processes."""
    import httpx
    import numpy as np
    import ray
    from ray import serve
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from serving.app import app_config
    from serving.config import ServeConfig

    model, shop = servable_model(root)
    cluster = start_cluster(head_cpus=1)
    port = free_port()
    serve.start(proxy_location="HeadOnly",
                http_options={"host": "127.0.0.1", "port": port, "request_timeout_s": REQUEST_TIMEOUT_S})
    # Placement without custom resources: a placeholder holds 0.6 of the head's CPU, so the ingress and
    # the scorer (0.2 each) fit there and the bandit (0.5) only on the worker; freed before the kill, it
    # leaves the head room to take the bandit back.
    @ray.remote(num_cpus=0.6)
    class Placeholder:
        def ready(self) -> bool:
            return True

    head = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), soft=False)
    placeholder = Placeholder.options(scheduling_strategy=head).remote()
    ray.get(placeholder.ready.remote())
    cfg = ServeConfig(model=model, data=shop, state_dir=root / "state", arms=("control=greedy", "explore=thompson"),
                      scorer_num_cpus=0.2, ingress_num_cpus=0.2, bandit_num_cpus=0.5, retrieve_n=30,
                      app_name="drill", score_timeout_s=2.0, score_attempts=2, call_timeout_s=2.0)
    ServeSubmissionClient(DASHBOARD).deploy_applications({"applications": [app_config(cfg)]})
    deadline = time.monotonic() + 180
    while not (alive_actors("Ingress") and alive_actors("Scorer")):
        assert time.monotonic() < deadline, "ingress and scorer did not start on the head"
        time.sleep(0.5)
    worker = add_worker(cluster, cpus=1)
    while serve.status().applications["drill"].status != "RUNNING":
        assert time.monotonic() < deadline, f"the app did not start: {serve.status().applications['drill']}"
        time.sleep(0.5)
    on_worker = set(alive_actor_nodes("Bandit")) == {worker.node_id}
    say("app running; bandit on the worker node:", on_worker)
    ray.kill(placeholder)

    calls: list[tuple[float, float, object]] = []  # (sent, seconds, status) of each /recommend
    killed_at = killed = None
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=REQUEST_TIMEOUT_S + 20) as client:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as warm:
            for user in range(20):  # impressions and feedback in the WAL before the node dies
                slate = warm.post("/recommend", json={"user_id": user, "k": 3}).json()
                warm.post("/feedback", json={"impression_id": slate["impression_id"],
                                             "item_id": slate["items"][0]["item_id"], "reward": 1.0})
        start = time.monotonic()
        while time.monotonic() - start < 240:
            sent = time.monotonic()
            try:
                status = client.post("/recommend", json={"user_id": len(calls) % 80, "k": 5}).status_code
            except httpx.TimeoutException:
                status = "hung"
            except httpx.HTTPError as err:
                status = type(err).__name__
            calls.append((sent, time.monotonic() - sent, status))
            if killed_at is None and sent - start > 5:
                doomed = node_processes(worker)
                for pid in doomed:
                    os.kill(pid, signal.SIGKILL)
                killed_at, killed = time.monotonic(), len(doomed)
                say(f"SIGKILLed the worker node's {killed} processes")
            after = [c for c in calls if killed_at and c[0] > killed_at]
            failed = [i for i, c in enumerate(after) if c[2] != 200]
            if failed and sum(c[2] == 200 for c in after[failed[0]:]) >= 200:
                break
            time.sleep(0.02 if not failed or after[-1][2] == 200 else 0.2)
    after = [c for c in calls if c[0] > killed_at]
    first_fail = next((i for i, c in enumerate(after) if c[2] != 200), None)
    first_ok = None if first_fail is None else next((i for i in range(first_fail, len(after)) if after[i][2] == 200), None)
    recovered = [] if first_ok is None else after[first_ok:]
    seconds = np.array([c[1] for c in recovered]) if recovered else np.zeros(1)
    errors: dict[str, int] = {}
    for c in after:
        if c[2] != 200:
            errors[str(c[2])] = errors.get(str(c[2]), 0) + 1
    bandit_nodes = set(alive_actor_nodes("Bandit"))
    stats = httpx.get(f"http://127.0.0.1:{port}/stats", timeout=10).json() if recovered else {}
    report = {
        "bandit_on_killed_node": on_worker, "killed_processes": killed,
        "bandit_moved_to_head": bandit_nodes == {cluster.head_node.node_id},
        "first_failure_after_kill_s": None if first_fail is None else round(after[first_fail][0] - killed_at, 2),
        "outage_s": None if first_ok is None else round(after[first_ok][0] - after[first_fail][0], 2),
        "failures": sum(c[2] != 200 for c in after), "errors": errors,
        "hung": sum(c[2] == "hung" for c in calls), "slowest_s": round(max(c[1] for c in calls), 2),
        "after_recovery": len(recovered), "failures_after_recovery": sum(c[2] != 200 for c in recovered),
        "p50_ms_after": round(1000 * float(np.percentile(seconds, 50)), 1),
        "p99_ms_after": round(1000 * float(np.percentile(seconds, 99)), 1),
        "p99_ms_before": round(1000 * float(np.percentile([c[1] for c in calls if c[0] < killed_at], 99)), 1),
        "replayed_on_start": stats.get("replayed_on_start", 0),
    }
    say("drill done", report)
    return report


if __name__ == "__main__":
    drills = {"train": drill_train, "serve": drill_serve, "bandit_node": drill_bandit_node}
    report = drills[sys.argv[1]](Path(sys.argv[2]))
    print(json.dumps(report), flush=True)
    os._exit(0)  # skip Ray's atexit teardown of a cluster whose nodes we killed on purpose
