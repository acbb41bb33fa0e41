"""``python -m cluster {submit,jobs list|logs|stop,manifests} ...``: the cluster commands of ``serendip``."""

import sys

import tyro

from cluster.jobs import JobsListConfig, JobsLogsConfig, JobsStopConfig, job_logs, list_jobs, stop_job
from cluster.manifests import ManifestsConfig, manifests
from cluster.submit import SubmitConfig, submit

COMMANDS = {
    ("submit",): (SubmitConfig, submit),
    ("jobs", "list"): (JobsListConfig, list_jobs),
    ("jobs", "logs"): (JobsLogsConfig, job_logs),
    ("jobs", "stop"): (JobsStopConfig, stop_job),
    ("manifests",): (ManifestsConfig, manifests),
}

for n in (2, 1):
    words = tuple(sys.argv[1 : 1 + n])
    if words in COMMANDS:
        config_cls, run = COMMANDS[words]
        prog = "python -m cluster " + " ".join(words)
        raise SystemExit(run(tyro.cli(config_cls, args=sys.argv[1 + n :], prog=prog)))
raise SystemExit("usage: python -m cluster {submit,jobs list,jobs logs,jobs stop,manifests} [--help]")
