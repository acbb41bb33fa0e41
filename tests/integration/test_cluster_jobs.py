"""A real Ray head (`ray start --head`, its own processes and ports) driven only through the Jobs API.

This module never joins Ray in-process, so it runs beside the session's ``ray_session`` fixture:
the head lives in its own process group with its own temp dir (``RAY_TMPDIR``, so it never becomes
the machine's "current cluster"), binds 127.0.0.1 only, and is torn down by its process group id.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from cluster.jobs import JobServer, connect, exit_code, wait_until_done
from cluster.submit import PROJECT_ROOT, SubmitConfig, runtime_env, submit, submit_when_ready

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]

VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def head_command(tmp: Path) -> list[str]:
    """`ray start --head --block` on loopback, every port free and explicit, 2 CPUs, small object store."""
    ports = {
        "--port": free_port(),
        "--dashboard-port": free_port(),
        "--ray-client-server-port": free_port(),
        "--node-manager-port": free_port(),
        "--object-manager-port": free_port(),
        "--dashboard-agent-listen-port": free_port(),
        "--dashboard-agent-grpc-port": free_port(),
        "--runtime-env-agent-port": free_port(),
        "--metrics-export-port": free_port(),
    }
    cmd = [str(VENV_BIN / "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
           "--dashboard-host=127.0.0.1", "--include-dashboard=true", "--num-cpus=2",
           f"--object-store-memory={100 * 2**20}", f"--temp-dir={tmp / 'ray'}", "--disable-usage-stats"]
    for flag, port in ports.items():
        cmd += [flag, str(port)]
    return cmd


def head_env(tmp: Path) -> dict[str, str]:
    """The head's environment: token auth off on loopback, private temp dir, the venv's python on PATH."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", RAY_TMPDIR=str(tmp), RAY_USAGE_STATS_ENABLED="0",
               PATH=f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}")
    return env


def start_head(tmp: Path, log) -> tuple[subprocess.Popen, str]:
    """`ray start --head` in its own process group; its job server address once a job runs there.

    Ready means a no-op job SUCCEEDED: the dashboard answering is not enough, since the job agent
    starts later ("No available agent to submit job"). Raises RuntimeError when the head exits or
    is not ready within 240 s.
    """
    cmd = head_command(tmp)
    address = f"http://127.0.0.1:{cmd[cmd.index('--dashboard-port') + 1]}"
    head = subprocess.Popen(cmd, env=head_env(tmp), stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 240  # a loaded 2-core machine can take minutes
    while True:
        try:
            client = connect(JobServer(address))
            job = submit_when_ready(client, wait_s=max(1.0, deadline - time.monotonic()), entrypoint="python -c pass")
            info = wait_until_done(client, job, timeout_s=max(1.0, deadline - time.monotonic()))
            if info.status.value != "SUCCEEDED":
                raise RuntimeError(f"the no-op readiness job ended {info.status.value}: {info.message}")
            return head, address
        except Exception as err:
            if head.poll() is not None or time.monotonic() > deadline:
                stop_process_group(head)
                raise RuntimeError(f"ray head did not come up: {err}") from err
            time.sleep(1)


@pytest.fixture(scope="module")
def ray_head():
    """Start a real head; yield its job server address; always stop it by its process group.

    Up to 3 starts, each on fresh ports: a port picked free can be taken by another Ray on the
    machine before `ray start` binds it, and the head then exits.
    """
    tmp = Path(tempfile.mkdtemp(prefix="sdh", dir="/tmp"))  # short: Ray's unix socket paths are capped
    log = open(tmp / "head.log", "w")
    head, errors = None, []
    try:
        for _ in range(3):
            try:
                head, address = start_head(tmp, log)
                break
            except RuntimeError as err:
                errors.append(str(err))
        else:
            log.flush()
            raise RuntimeError(f"ray head did not come up in 3 starts: {errors}\n{(tmp / 'head.log').read_text()[-3000:]}")
        yield address
    finally:
        if head is not None:
            stop_process_group(head)
        log.close()
        shutil.rmtree(tmp, ignore_errors=True)


def stop_process_group(proc: subprocess.Popen, grace_s: float = 10) -> None:
    """SIGTERM the process group we started (ray start shuts its children down), then SIGKILL it."""
    pgid = proc.pid  # start_new_session: the head leads its own group, which outlives it if it died
    try:
        os.killpg(pgid, signal.SIGTERM)
        proc.wait(timeout=grace_s)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        pass
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        pass


FAKE_TRAINING = '''
import os, sys
from pathlib import Path
args = sys.argv[1:]
storage = Path(args[args.index("--storage-path") + 1])
seen = {p: Path(p).exists() for p in ["recsys/data/schemas.py", ".venv", ".git", "data", "runs", "__pycache__"]}
print("seen", seen, "offline", os.environ.get("HF_HUB_OFFLINE"), "greeting", os.environ.get("GREETING"))
storage.mkdir(parents=True, exist_ok=True)
(storage / "artifact.txt").write_text(" ".join(args))
sys.exit(int(args[args.index("--exit") + 1]))
'''


@pytest.fixture
def fake_project(tmp_path: Path) -> Path:
    """A project whose `python -m training` reports what reached the cluster and exits as told."""
    root = tmp_path / "project"
    for folder in ["recsys/data", "training", ".venv/bin", ".git", "data", "runs", "__pycache__"]:
        (root / folder).mkdir(parents=True)
        (root / folder / "marker.txt").write_text("x")
    (root / "recsys/data/schemas.py").write_text("ITEMS = None\n")
    (root / "training/__main__.py").write_text(FAKE_TRAINING)
    return root


def test_submit_streams_logs_and_returns_the_jobs_exit_code(ray_head, fake_project, tmp_path, capsys):
    job_exit = 3  # the real-project test below covers 0
    storage = tmp_path / "storage"
    cfg = SubmitConfig(command="train", address=ray_head, wait=True, storage=str(storage),
                       working_dir=fake_project, env=("GREETING=hello",),
                       args=("--data", "/nowhere", "--exit", str(job_exit)))
    assert submit(cfg) == job_exit
    out = capsys.readouterr().out
    # The logs streamed to our stdout show what the job saw on the cluster.
    assert ("seen {'recsys/data/schemas.py': True, '.venv': False, '.git': False, 'data': False, "
            "'runs': False, '__pycache__': False} offline 1 greeting hello") in out
    # --storage reached the training CLI as --storage-path, and the job wrote its artifact there.
    assert (storage / "artifact.txt").read_text() == f"--data /nowhere --exit {job_exit} --storage-path {storage}"


def test_the_real_project_uploads_without_venv_and_keeps_recsys_data(ray_head):
    client = connect(JobServer(ray_head))
    cfg = SubmitConfig(command="train", address=ray_head)
    probe = ("import os; from pathlib import Path; "
             "print(sorted(p for p in ['recsys/data/schemas.py', 'serendip/cli.py', '.venv', '.git', 'data', 'runs'] "
             "if Path(p).exists()))")
    job = client.submit_job(entrypoint=f"python -c \"{probe}\"", runtime_env=runtime_env(cfg))
    info = wait_until_done(client, job, timeout_s=400)
    assert exit_code(info.status.value, info.driver_exit_code) == 0, (info.message, client.get_job_logs(job))
    assert "['recsys/data/schemas.py', 'serendip/cli.py']" in client.get_job_logs(job)
    assert cfg.working_dir == PROJECT_ROOT


def test_stop_gives_a_nonzero_exit_code(ray_head, capsys):
    from cluster.jobs import JobsStopConfig, follow, stop_job

    client = connect(JobServer(ray_head))
    job = client.submit_job(entrypoint="python -c \"import time; print('started', flush=True); time.sleep(120)\"")
    deadline = time.monotonic() + 240
    while client.get_job_status(job).value == "PENDING" and time.monotonic() < deadline:
        time.sleep(0.5)
    assert stop_job(JobsStopConfig(job_id=job, address=ray_head, wait=True)) == 0
    assert follow(client, job) != 0
    assert f"{job}: STOPPED" in capsys.readouterr().out


def test_a_tiny_training_job_writes_its_model_and_checkpoints(ray_head, tmp_path):
    from recsys.model import build_tiny_base
    from recsys.simulator import SimulateConfig, simulate

    shop = simulate(SimulateConfig(out=tmp_path / "shop", users=100, items=60, days=20, seed=1, quiet=True))
    base = build_tiny_base(tmp_path / "base")
    model, storage = tmp_path / "model", tmp_path / "storage"
    cfg = SubmitConfig(command="train", address=ray_head, wait=True, storage=str(storage), args=(
        "--data", str(shop), "--out", str(model), "--base", str(base), "--workers", "1", "--epochs", "1",
        "--batch-size", "32", "--dim", "16", "--history-len", "8", "--max-text-len", "16", "--user-layers", "1",
        "--name", "job-test"))
    assert submit(cfg) == 0
    assert {"config.json", "model.safetensors", "serendip.json"} <= {p.name for p in model.iterdir()}
    assert list((storage / "job-test").glob("checkpoint_*"))
