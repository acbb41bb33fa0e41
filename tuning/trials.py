"""Read a finished (or interrupted) Tune run into plain records: config, last metrics, error, history.

Every trial becomes a record, failed ones included, so that the report can list each failure with
its error instead of dropping it.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd


class ObjectiveNotReportedError(RuntimeError):
    """No trial reported the sweep's objective metric, so nothing can be picked."""


class SweepInterrupted(RuntimeError):
    """The sweep stopped (Ctrl-C, SIGUSR1) before every trial finished; its state is saved for --resume."""


def check_experiment_dir(experiment_dir: Path, resume: bool) -> None:
    """A new sweep needs a free folder; --resume needs a sweep there (checked before anything runs)."""
    from ray import tune

    if resume and not tune.Tuner.can_restore(str(experiment_dir)):
        raise FileNotFoundError(f"--resume: no sweep to resume in {experiment_dir}; run once without --resume")
    if not resume and Path(experiment_dir).exists():
        raise FileExistsError(
            f"{experiment_dir} already holds a sweep; pass --resume to continue it, or choose another --out/--name"
        )


def check_complete(results, expected: int, experiment_dir) -> None:
    """Raise SweepInterrupted when trials are unfinished or were never started (Tune returns after Ctrl-C)."""
    done = results.num_terminated + results.num_errors
    if done < len(results) or len(results) < expected:
        raise SweepInterrupted(
            f"sweep interrupted: {done} of {expected} trials finished; the state is saved in {experiment_dir}; "
            "run the same command with --resume to finish it"
        )


@dataclass
class TrialRecord:
    """One Tune trial as the report sees it."""

    trial: str
    """Tune's trial id."""
    config: dict
    """The sampled configuration."""
    metrics: dict
    """The last reported metrics ({} when the trial never reported)."""
    error: str | None
    """``ExceptionType: message`` of the trial's failure, None when it finished."""
    path: str
    """The trial's directory in the storage path."""
    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Every report of the trial (Tune's progress.csv), one row per iteration."""

    @property
    def ok(self) -> bool:
        """Whether the trial ended without an error."""
        return self.error is None


def error_text(error: BaseException | None) -> str | None:
    """The root cause of a trial's failure as one line, e.g. ``ValueError: epsilon=-1 ...``."""
    if error is None:
        return None
    cause = getattr(error, "cause", None) or error
    text = str(cause).strip().splitlines()
    last = text[-1] if text else ""
    return f"{type(cause).__name__}: {last}" if last else type(cause).__name__


def collect(results) -> list[TrialRecord]:
    """Records of every trial in a ``ray.tune.ResultGrid``, in trial-id order."""
    records = []
    for result in results:
        metrics = dict(result.metrics or {})
        trial = metrics.get("trial_id") or Path(result.path).name
        history = result.metrics_dataframe if result.metrics_dataframe is not None else pd.DataFrame()
        records.append(TrialRecord(trial, dict(result.config or {}), metrics, error_text(result.error),
                                   str(result.path), history))
    return sorted(records, key=lambda r: r.trial)


def require_objective(records: list[TrialRecord], metric: str) -> None:
    """Raise when no finished trial reported ``metric``, naming what the trials did report."""
    if any(r.ok and metric in r.metrics for r in records):
        return
    failed = [r for r in records if not r.ok]
    reported = sorted({k for r in records for k in r.metrics if not k.startswith(("time", "date", "node", "pid"))})
    hint = f"; {len(failed)} of {len(records)} trials failed, first: {failed[0].error}" if failed else ""
    raise ObjectiveNotReportedError(
        f"no trial reported the objective {metric!r} (trials reported {reported}){hint}; "
        "fix the trainable so that it reports this metric, or pick one of the reported metrics"
    )


def fit_tuner(tuner, concurrency, expected: int, experiment_dir: Path, metric: str,
              hint: str) -> tuple[list[TrialRecord], float, dict]:
    """Run ``tuner`` while sampling CPU use; check every trial ran and reported ``metric``.

    Returns the trial records, the sweep's seconds and its usage (``concurrency`` is the
    ``tuning.usage.Concurrency`` callback the tuner was built with). ``hint`` says where the
    metric should come from, for the error when a trial never reported it.
    """
    from ray.tune.error import TuneError

    from tuning.usage import CpuSampler

    started = time.perf_counter()
    with CpuSampler() as sampler:
        try:
            results = tuner.fit()
        except TuneError as err:
            if "did not include the specified metric" in str(err):
                raise ObjectiveNotReportedError(
                    f"a trial finished without reporting {metric!r}; {hint} ({err.__cause__ or err})"
                ) from err
            raise
    seconds = time.perf_counter() - started
    check_complete(results, expected, experiment_dir)
    records = collect(results)
    require_objective(records, metric)
    return records, seconds, {**concurrency.summary(), **dataclasses.asdict(sampler.usage())}
