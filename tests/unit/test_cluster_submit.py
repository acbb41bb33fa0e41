"""`serendip submit` and `serendip jobs`: configs, entrypoints, exit codes (no cluster needed)."""

from __future__ import annotations

import re

import pytest
import tyro

from cluster.jobs import (
    EXIT_FAILED,
    EXIT_NO_SERVER,
    EXIT_STOPPED,
    JobServer,
    JobServerError,
    JobsLogsConfig,
    exit_code,
    job_table,
    reports_server_errors,
    server_error,
)
from cluster.submit import PROJECT_ROOT, SubmitConfig, entrypoint, runtime_env


def test_the_cli_splits_own_flags_from_the_commands_flags_at_the_double_dash():
    cfg = tyro.cli(SubmitConfig, args=["train", "--address", "http://10.0.0.1:8265", "--wait",
                                       "--storage", "s3://bucket/serendip", "--",
                                       "--data", "/mnt/shop dir", "--workers", "2"])
    assert (cfg.command, cfg.address, cfg.wait) == ("train", "http://10.0.0.1:8265", True)
    assert entrypoint(cfg) == ("python -m training --data '/mnt/shop dir' --workers 2 "
                               "--storage-path s3://bucket/serendip")


@pytest.mark.parametrize(
    ("command", "args", "expected"),
    [
        ("tune", ("hparams", "--trials", "4"), "python -m tuning hparams --trials 4 --address auto"),
        ("tune", ("exploration", "--address=ray://h:10001"), "python -m tuning exploration --address=ray://h:10001"),
        ("evaluate", ("--log", "/data/log.parquet"), "python -m serendip evaluate --log /data/log.parquet"),
        ("simulate", ("--out", "/mnt/shop"), "python -m serendip simulate --out /mnt/shop"),
        ("serve", (), "python -m serving"),
        ("train", ("--name", "a;rm -rf /"), "python -m training --name 'a;rm -rf /'"),
    ],
)
def test_each_command_runs_its_layer_with_the_args_quoted(command, args, expected):
    assert entrypoint(SubmitConfig(command=command, args=args)) == expected


def test_the_runtime_env_carries_the_project_without_venv_data_or_outputs():
    env = runtime_env(SubmitConfig(command="train", env=("A=b=c",)))
    assert env["working_dir"] == str(PROJECT_ROOT)
    # Anchored patterns: the top-level data/ folder goes, recsys/data stays.
    assert {"/.venv", "/.git", "/data", "/runs", "/outputs", "__pycache__"} <= set(env["excludes"])
    assert "data" not in env["excludes"]
    assert env["env_vars"] == {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "A": "b=c"}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"address": "127.0.0.1:8265"},
         "--address '127.0.0.1:8265': not an http(s) URL of a Ray job server; "
         "pass the dashboard URL, e.g. --address http://127.0.0.1:8265"),
        ({"storage": "runs/ckpt"},
         "--storage 'runs/ckpt': a relative path would land in the job's temporary working_dir; pass an "
         "absolute path on storage every node shares (NFS) or a URI such as s3://bucket/serendip"),
        ({"storage": "ftp://host/x"},
         "--storage 'ftp://host/x': unsupported scheme 'ftp'; use one of s3://, gs://, gcs://, hdfs://, "
         "abfs://, abfss://, file:// or an absolute path"),
        ({"command": "evaluate", "storage": "s3://b/x"},
         "--storage: `evaluate` keeps no checkpoints; --storage applies to train only"),
        ({"command": "tune", "storage": "/mnt/shared"},
         "--storage: `tune` keeps its Tune state and trial checkpoints under its own --out; "
         "pass `-- hparams --out /shared/path ...` on storage every node mounts"),
        ({"storage": "s3://b/x", "args": ("--storage-path", "s3://b/y")},
         "--storage 's3://b/x' and --storage-path after `--` both set the storage path; keep one"),
        ({"working_dir": PROJECT_ROOT / "cluster"},
         f"--working-dir {PROJECT_ROOT / 'cluster'}: not a Serendip project (no recsys/ folder); "
         "pass the project root"),
        ({"env": ("NOEQUALS",)}, "--env 'NOEQUALS': expected KEY=VALUE"),
    ],
)
def test_bad_submit_flags_name_the_flag_and_the_fix(kwargs, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        SubmitConfig(**{"command": "train", **kwargs})


@pytest.mark.parametrize(
    ("status", "driver_code", "expected"),
    [("SUCCEEDED", 0, 0), ("SUCCEEDED", None, 0), ("FAILED", 3, 3), ("FAILED", None, EXIT_FAILED),
     ("FAILED", 0, EXIT_FAILED), ("STOPPED", None, EXIT_STOPPED), ("STOPPED", -15, EXIT_STOPPED)],
)
def test_the_exit_code_is_the_jobs(status, driver_code, expected):
    assert exit_code(status, driver_code) == expected


def test_a_running_job_has_no_exit_code_yet():
    with pytest.raises(ValueError, match="^job status 'RUNNING' is not terminal; wait until SUCCEEDED, FAILED or STOPPED$"):
        exit_code("RUNNING", None)


def test_jobs_logs_takes_the_id_as_a_positional():
    cfg = tyro.cli(JobsLogsConfig, args=["raysubmit_abc", "--follow", "--address", "https://ray.example:443"])
    assert (cfg.job_id, cfg.follow, cfg.address) == ("raysubmit_abc", True, "https://ray.example:443")
    assert JobServer().address == "http://127.0.0.1:8265"


def test_the_job_table_lists_newest_first_and_truncates_long_entrypoints():
    from ray.job_submission import JobDetails, JobStatus, JobType

    jobs = [
        JobDetails(type=JobType.SUBMISSION, submission_id="old", status=JobStatus.SUCCEEDED,
                   entrypoint="python -m training", start_time=1_700_000_000_000, end_time=1_700_000_060_000),
        JobDetails(type=JobType.SUBMISSION, submission_id="new", status=JobStatus.RUNNING,
                   entrypoint="python -m tuning " + "x" * 80, start_time=1_700_000_100_000),
    ]
    lines = job_table(jobs, width=30).splitlines()
    assert lines[0].split() == ["SUBMISSION", "ID", "STATUS", "STARTED", "(UTC)", "ENDED", "(UTC)", "ENTRYPOINT"]
    assert lines[1].split()[:2] == ["new", "RUNNING"] and lines[1].endswith("python -m tuning xxxxxxxxxx...")
    assert lines[2].split() == ["old", "SUCCEEDED", "2023-11-14", "22:13:20", "2023-11-14", "22:14:20",
                                "python", "-m", "training"]


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("command", ["submit", "jobs list", "jobs logs", "jobs stop"])
def test_an_unreachable_job_server_is_one_line_naming_the_address_and_the_fix(command, capsys):
    from serendip.cli import main

    address = f"http://127.0.0.1:{_closed_port()}"
    argv = {"submit": ["submit", "train", "--address", address, "--wait", "--", "--data", "/mnt/shop"],
            "jobs list": ["jobs", "list", "--address", address],
            "jobs logs": ["jobs", "logs", "raysubmit_abc", "--follow", "--address", address],
            "jobs stop": ["jobs", "stop", "raysubmit_abc", "--address", address]}[command]
    assert main(argv) == EXIT_NO_SERVER
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (f"error: --address {address}: no Ray job server answers (Failed to connect to Ray at address: "
                   f"{address}.). Start a head with `ray start --head --dashboard-host 127.0.0.1`, or forward the "
                   "cluster's dashboard port, e.g. `kubectl port-forward svc/serendip-head-svc 8265:8265`.\n")


def _auth_error():
    from ray.exceptions import AuthenticationError

    return AuthenticationError("Unauthenticated: token missing")


def _lost_connection():
    import requests

    return requests.exceptions.ConnectionError("Connection aborted.")


@pytest.mark.parametrize(
    ("make_error", "message"),
    [
        (lambda: RuntimeError("Request failed with status code 404: Job raysubmit_x does not exist.\n."),
         "--address http://h:8265: the job server refused the request: Request failed with status code 404: "
         "Job raysubmit_x does not exist; check the job id with `serendip jobs list --address http://h:8265`"),
        (_lost_connection,
         "--address http://h:8265: lost the job server (ConnectionError: Connection aborted); check that the head "
         "is still up (`ray status`, or the dashboard at that address) and retry"),
        (_auth_error,
         "--address http://h:8265: the job server refused our credentials (Unauthenticated: token missing); "
         "export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<the cluster's token> (or RAY_AUTH_TOKEN_PATH=<file>); "
         "see the cluster guide in README.md"),
    ],
)
def test_job_server_failures_become_one_line_naming_the_address_and_the_fix(make_error, message):
    error = server_error("http://h:8265", make_error())
    assert isinstance(error, JobServerError)
    assert re.fullmatch(re.escape(message), str(error))


def test_a_failed_call_prints_one_line_and_exits_with_no_server(capsys):
    @reports_server_errors
    def refused(cfg):
        raise RuntimeError("Request failed with status code 500: boom.")

    assert refused(JobServer(address="http://h:8265")) == EXIT_NO_SERVER
    assert capsys.readouterr().err.count("\n") == 1
