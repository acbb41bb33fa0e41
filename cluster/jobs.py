"""Jobs on a running Ray cluster, through the Ray Jobs API: list them, follow their logs, stop them.

Every command talks HTTP to the head's job server (the dashboard port, 8265 by default) through
``ray.job_submission.JobSubmissionClient``; nothing here joins the cluster as a driver. With token
auth on (``RAY_AUTH_MODE=token``), the client sends the token from ``RAY_AUTH_TOKEN`` (or the file
named by ``RAY_AUTH_TOKEN_PATH``, or ``~/.ray/auth_token``) by itself.

The exit code of ``serendip jobs logs --follow`` and of ``serendip submit --wait`` is the job's:
0 when it SUCCEEDED, the driver's own exit code when it FAILED with one, else the codes below.
"""

from __future__ import annotations

import asyncio
import functools
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, TextIO
from urllib.parse import urlparse

import tyro

if TYPE_CHECKING:
    from ray.job_submission import JobDetails, JobSubmissionClient

DEFAULT_ADDRESS = "http://127.0.0.1:8265"

# Exit codes for end states that carry no driver exit code of their own.
EXIT_FAILED = 1
EXIT_STOPPED = 2
EXIT_DETACHED = 130
# No job ran, or its end is unknown: the job server could not be reached or refused the request
# (EX_UNAVAILABLE of sysexits.h, far from the small codes drivers usually exit with).
EXIT_NO_SERVER = 69


class JobServerError(RuntimeError):
    """The job server at --address cannot be reached or refused the request."""


@dataclass
class JobServer:
    """Where the cluster's job server listens."""

    address: str = DEFAULT_ADDRESS
    """The head's job server (dashboard) URL, e.g. http://127.0.0.1:8265 after `kubectl port-forward`."""

    def __post_init__(self) -> None:
        parsed = urlparse(self.address)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(
                f"--address {self.address!r}: not an http(s) URL of a Ray job server; "
                f"pass the dashboard URL, e.g. --address {DEFAULT_ADDRESS}"
            )


def connect(server: JobServer) -> JobSubmissionClient:
    """A Jobs API client for ``server.address``; raises JobServerError naming the fix if none answers."""
    from ray.job_submission import JobSubmissionClient

    try:
        return JobSubmissionClient(server.address)
    except ConnectionError as err:
        raise JobServerError(
            f"--address {server.address}: no Ray job server answers ({err}). Start a head with "
            "`ray start --head --dashboard-host 127.0.0.1`, or forward the cluster's dashboard port, "
            "e.g. `kubectl port-forward svc/serendip-head-svc 8265:8265`."
        ) from err


def server_error(address: str, err: Exception) -> JobServerError:
    """The one-line JobServerError for a failed call of the Jobs client: what went wrong at ``address`` and the fix."""
    from ray.exceptions import AuthenticationError

    if isinstance(err, JobServerError):
        return err
    if isinstance(err, AuthenticationError):
        return JobServerError(
            f"--address {address}: the job server refused our credentials ({_one_line(err).split('. ')[0]}); "
            "export RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=<the cluster's token> (or RAY_AUTH_TOKEN_PATH=<file>); "
            "see the cluster guide in README.md"
        )
    if isinstance(err, RuntimeError):  # the client's "Request failed with status code N: ..."
        return JobServerError(
            f"--address {address}: the job server refused the request: {_one_line(err)}; "
            f"check the job id with `serendip jobs list --address {address}`"
        )
    return JobServerError(
        f"--address {address}: lost the job server ({type(err).__name__}: {_one_line(err)}); "
        "check that the head is still up (`ray status`, or the dashboard at that address) and retry"
    )


def _one_line(err: Exception) -> str:
    """The error's message on one line, without a trailing full stop."""
    return " ".join(str(err).split()).rstrip(". ") or type(err).__name__


def reports_server_errors(command: Callable[..., int]) -> Callable[..., int]:
    """Wrap a jobs command: a job-server failure prints one line (address and fix) to stderr, no traceback,
    and the command returns EXIT_NO_SERVER."""
    @functools.wraps(command)
    def run(cfg: JobServer) -> int:
        import aiohttp
        from ray.exceptions import AuthenticationError

        try:
            return command(cfg)
        except (JobServerError, AuthenticationError, RuntimeError, OSError, aiohttp.ClientError) as err:
            print(f"error: {server_error(cfg.address, err)}", file=sys.stderr, flush=True)
            return EXIT_NO_SERVER

    return run


def exit_code(status: str, driver_exit_code: int | None) -> int:
    """The process exit code for a job that ended in ``status`` (a terminal JobStatus value)."""
    if status == "SUCCEEDED":
        return 0
    if status == "FAILED":
        return driver_exit_code if driver_exit_code else EXIT_FAILED
    if status == "STOPPED":
        return EXIT_STOPPED
    raise ValueError(f"job status {status!r} is not terminal; wait until SUCCEEDED, FAILED or STOPPED")


def wait_until_done(
    client: JobSubmissionClient, job_id: str, *, poll_s: float = 0.5, timeout_s: float | None = None
) -> JobDetails:
    """Poll the job until it reaches a terminal status and return its details."""
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        info = client.get_job_info(job_id)
        if info.status.is_terminal():
            return info
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"job {job_id} is still {info.status} after {timeout_s:.0f} s")
        time.sleep(poll_s)


async def _stream_logs(client: JobSubmissionClient, job_id: str, out: TextIO) -> None:
    async for chunk in client.tail_job_logs(job_id):
        out.write(chunk)
        out.flush()


def follow(client: JobSubmissionClient, job_id: str, out: TextIO | None = None) -> int:
    """Stream the job's logs to ``out`` (stdout) until it ends; return the job's exit code.

    Ctrl-C detaches: the job keeps running on the cluster and the return value is 130.
    """
    out = out or sys.stdout
    try:
        asyncio.run(_stream_logs(client, job_id, out))
        info = wait_until_done(client, job_id)
    except KeyboardInterrupt:
        print(f"\ndetached from {job_id}; it keeps running. Stop it with: serendip jobs stop {job_id}")
        return EXIT_DETACHED
    code = exit_code(info.status.value, info.driver_exit_code)
    print(f"job {job_id} {info.status.value} (exit {code}): {info.message or ''}".rstrip(), file=sys.stderr)
    return code


def _when(ms: int | None) -> str:
    if not ms:
        return "-"
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def job_table(jobs: list[JobDetails], width: int = 60) -> str:
    """A plain-text table of jobs, newest first: id, status, start and end (UTC), entrypoint."""
    rows = [("SUBMISSION ID", "STATUS", "STARTED (UTC)", "ENDED (UTC)", "ENTRYPOINT")]
    for job in sorted(jobs, key=lambda j: j.start_time or 0, reverse=True):
        entry = job.entrypoint if len(job.entrypoint) <= width else job.entrypoint[: width - 3] + "..."
        rows.append(
            (job.submission_id or job.job_id or "-", job.status.value, _when(job.start_time),
             _when(job.end_time), entry)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(r[:-1], widths, strict=True)) + "  " + r[-1] for r in rows
    )


@dataclass
class JobsListConfig(JobServer):
    """`serendip jobs list`: every job the cluster knows, newest first."""


@reports_server_errors
def list_jobs(cfg: JobsListConfig) -> int:
    """Print the cluster's jobs as a table."""
    jobs = connect(cfg).list_jobs()
    print(job_table(jobs) if jobs else f"no jobs on {cfg.address}")
    return 0


@dataclass(kw_only=True)
class JobsLogsConfig(JobServer):
    """`serendip jobs logs ID`: print a job's logs, or follow them until it ends."""

    job_id: tyro.conf.Positional[str]
    """The submission id that `serendip submit` printed."""
    follow: bool = False
    """Keep streaming until the job ends, then exit with the job's exit code."""


@reports_server_errors
def job_logs(cfg: JobsLogsConfig) -> int:
    """Print (or follow) one job's logs."""
    client = connect(cfg)
    if cfg.follow:
        return follow(client, cfg.job_id)
    sys.stdout.write(client.get_job_logs(cfg.job_id))
    return 0


@dataclass(kw_only=True)
class JobsStopConfig(JobServer):
    """`serendip jobs stop ID`: ask the cluster to stop a job."""

    job_id: tyro.conf.Positional[str]
    """The submission id that `serendip submit` printed."""
    wait: bool = False
    """Wait until the job has actually stopped."""


@reports_server_errors
def stop_job(cfg: JobsStopConfig) -> int:
    """Stop a job: SIGTERM to its driver, then SIGKILL after Ray's grace period."""
    client = connect(cfg)
    was_running = client.stop_job(cfg.job_id)
    print(f"{cfg.job_id}: {'stop requested' if was_running else 'was not running'}")
    if cfg.wait:
        info = wait_until_done(client, cfg.job_id)
        print(f"{cfg.job_id}: {info.status.value}")
    return 0
