"""`serendip submit {train,tune,evaluate,simulate,serve} --address URL [--wait] [--storage URI] -- ARGS`.

The project travels to the cluster as the job's ``working_dir`` (minus the virtualenv, data, outputs
and caches); the entrypoint is ``python -m <layer> ARGS`` run by the cluster's own Python, so the
same flags work as on a laptop. ``--storage`` (a shared path or a cloud URI) becomes the layer's
storage flag, so Train checkpoints land where every node can reach them. Tuning keeps its Tune state
and its trials' checkpoints under its own ``--out``, so a sweep names shared storage there; a sweep
job joins the cluster it runs on (``--address auto``).
"""

from __future__ import annotations

import shlex
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import urlparse

import tyro

from cluster.jobs import JobServer, connect, follow, reports_server_errors

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# command -> the module the cluster's Python runs; each is also `python -m <module>` on a laptop.
ENTRYPOINTS: dict[str, tuple[str, ...]] = {
    "train": ("-m", "training"),
    "tune": ("-m", "tuning"),
    "evaluate": ("-m", "serendip", "evaluate"),
    "simulate": ("-m", "serendip", "simulate"),
    "serve": ("-m", "serving"),
}

# command -> the flag of that layer's CLI that takes the storage path (TrainConfig.storage_path).
STORAGE_FLAGS: dict[str, str] = {"train": "--storage-path"}

# command -> flags that make the job's driver join the cluster it runs on, unless the args set them.
JOIN_CLUSTER: dict[str, tuple[str, ...]] = {"tune": ("--address", "auto")}

# Storage URI schemes that pyarrow.fs (which Train and Tune use) can write to.
STORAGE_SCHEMES = ("s3", "gs", "gcs", "hdfs", "abfs", "abfss", "file")

# Left out of the uploaded working_dir (gitignore patterns; a leading "/" anchors to the project root,
# so "/data" drops the data folder but keeps recsys/data).
WORKING_DIR_EXCLUDES: tuple[str, ...] = (
    "/.venv", "/.git", "/data", "/runs", "/outputs", "/shared",
    "__pycache__", "*.pyc", ".pytest_cache", ".ruff_cache", ".cache", "*.egg-info",
)

AGENT_WAIT_S = 60.0
"""How long a submission is retried while a freshly started head has no job agent yet (HTTP 500)."""

# Set in every job: the cluster image ships the MiniLM weights, so nothing needs the model hub.
JOB_ENV: dict[str, str] = {"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}


@dataclass(kw_only=True)
class SubmitConfig(JobServer):
    """Submit a Serendip command to a running Ray cluster as a job."""

    command: tyro.conf.Positional[Literal["train", "tune", "evaluate", "simulate", "serve"]]
    """What to run on the cluster: train (python -m training), tune, evaluate, simulate or serve."""
    args: tyro.conf.Positional[tuple[str, ...]] = ()
    """Everything after `--`: the command's own flags, exactly as on a laptop."""
    wait: bool = False
    """Stream the logs until the job ends and exit with the job's exit code."""
    storage: str | None = None
    """train only: Train's checkpoint storage, an absolute path on shared disk or a URI (s3://...)."""
    working_dir: Path = PROJECT_ROOT
    """The project folder uploaded as the job's working_dir."""
    python: str = "python"
    """The interpreter on the cluster (the image's; the job runs under the `ray start` process's PATH)."""
    env: tuple[str, ...] = ()
    """Extra KEY=VALUE environment for the job. Never secrets: those come from the cluster's Secrets."""
    submission_id: str | None = None
    """A unique id for the job (Ray makes one if unset); resubmitting an existing id is refused."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.storage is not None:
            check_storage(self.storage, self.command)
            flag = STORAGE_FLAGS[self.command]
            if any(a == flag or a.startswith(flag + "=") for a in self.args):
                raise ValueError(
                    f"--storage {self.storage!r} and {flag} after `--` both set the storage path; keep one"
                )
        if not (self.working_dir / "recsys").is_dir():
            raise ValueError(
                f"--working-dir {self.working_dir}: not a Serendip project (no recsys/ folder); "
                "pass the project root"
            )
        for pair in self.env:
            if "=" not in pair or not pair.split("=", 1)[0]:
                raise ValueError(f"--env {pair!r}: expected KEY=VALUE")


def check_storage(storage: str, command: str) -> None:
    """Raise ValueError unless ``storage`` is a URI or absolute path that ``command`` can use."""
    if command == "tune":
        raise ValueError(
            "--storage: `tune` keeps its Tune state and trial checkpoints under its own --out; "
            "pass `-- hparams --out /shared/path ...` on storage every node mounts"
        )
    if command not in STORAGE_FLAGS:
        raise ValueError(f"--storage: `{command}` keeps no checkpoints; --storage applies to train only")
    scheme = urlparse(storage).scheme
    if scheme:
        if scheme not in STORAGE_SCHEMES:
            raise ValueError(
                f"--storage {storage!r}: unsupported scheme {scheme!r}; use one of "
                f"{', '.join(s + '://' for s in STORAGE_SCHEMES)} or an absolute path"
            )
    elif not storage.startswith("/"):
        raise ValueError(
            f"--storage {storage!r}: a relative path would land in the job's temporary working_dir; "
            "pass an absolute path on storage every node shares (NFS) or a URI such as s3://bucket/serendip"
        )


def entrypoint(cfg: SubmitConfig) -> str:
    """The shell command the cluster runs for ``cfg``, quoted for the shell."""
    argv = [cfg.python, *ENTRYPOINTS[cfg.command], *cfg.args]
    if cfg.storage is not None:
        argv += [STORAGE_FLAGS[cfg.command], cfg.storage]
    join = JOIN_CLUSTER.get(cfg.command, ())
    if join and not any(a == join[0] or a.startswith(join[0] + "=") for a in cfg.args):
        argv += join
    return shlex.join(argv)


def runtime_env(cfg: SubmitConfig) -> dict:
    """The job's runtime_env: the project as working_dir with the excludes, plus the job's environment."""
    env = dict(JOB_ENV)
    env.update(pair.split("=", 1) for pair in cfg.env)
    return {
        "working_dir": str(cfg.working_dir),
        "excludes": list(WORKING_DIR_EXCLUDES),
        "env_vars": env,
    }


def submit_when_ready(client, wait_s: float = AGENT_WAIT_S, **job) -> str:
    """``client.submit_job(**job)``, retried while the head answers "No available agent to submit job"
    (its job agent is still starting, seconds after `ray start`); any other refusal is raised at once."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            return client.submit_job(**job)
        except RuntimeError as err:
            if "No available agent" not in str(err) or time.monotonic() > deadline:
                raise
            time.sleep(1.0)


@reports_server_errors
def submit(cfg: SubmitConfig) -> int:
    """Submit the job; with --wait stream its logs and return its exit code, else print its id."""
    client = connect(cfg)
    job_id = submit_when_ready(
        client,
        entrypoint=entrypoint(cfg),
        runtime_env=runtime_env(cfg),
        submission_id=cfg.submission_id,
        metadata={"serendip_command": cfg.command},
    )
    print(f"submitted {job_id} to {cfg.address}: {entrypoint(cfg)}")
    if not cfg.wait:
        print(f"follow it with: serendip jobs logs {job_id} --follow --address {cfg.address}")
        return 0
    return follow(client, job_id)

