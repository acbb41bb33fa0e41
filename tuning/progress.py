"""One line per finished trial of a sweep, and its reader.

Tune's own status tables are for a log; this callback prints ``[tune] trial 3/8 done: <id> regret 241.8``
as each trial ends, which ``serendip``'s terminal shows as one progress bar (``read_line``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ray import tune

_TRIAL = re.compile(r"\[tune\] trial (?P<done>\d+)/(?P<total>\d+|\?) (?P<status>done|failed)"
                    r"(?:: \S+ (?P<metric>\S+) (?P<value>\S+))?")


@dataclass(frozen=True)
class SweepProgress:
    """Where a sweep is, as one of its trial lines says."""

    done: int
    """Trials ended so far, failed ones included."""
    total: int | None
    """Trials the sweep runs (None when Tune did not say, as on a resumed sweep)."""
    failed: bool
    """Whether this line's trial failed."""
    metric: str | None = None
    """The objective's name (None for a failed trial)."""
    value: float | None = None
    """The trial's last value of it."""


class TrialLines(tune.Callback):
    """Prints one line per ended trial: how many of the sweep's trials are done, and the trial's ``metric``."""

    def __init__(self, metric: str) -> None:
        self.metric, self.total, self.done = metric, None, 0

    def setup(self, stop=None, num_samples=None, total_num_samples=None, **info):
        """Tune says how many trials the sweep runs."""
        self.total = total_num_samples

    def on_trial_complete(self, iteration, trials, trial, **info):
        """A trial finished."""
        self.done += 1
        value = (trial.last_result or {}).get(self.metric)
        shown = f"{value:.5g}" if isinstance(value, int | float) else "-"
        print(f"[tune] trial {self.done}/{self.total or '?'} done: {trial.trial_id} {self.metric} {shown}", flush=True)

    def on_trial_error(self, iteration, trials, trial, **info):
        """A trial failed (the report lists its error)."""
        self.done += 1
        print(f"[tune] trial {self.done}/{self.total or '?'} failed: {trial.trial_id}", flush=True)


def read_line(text: str) -> SweepProgress | None:
    """The progress in a trial line (anywhere in ``text``), else None."""
    found = _TRIAL.search(text)
    if found is None:
        return None
    total = None if found["total"] == "?" else int(found["total"])
    try:
        value = float(found["value"]) if found["value"] else None
    except ValueError:
        value = None
    return SweepProgress(int(found["done"]), total, found["status"] == "failed", found["metric"], value)
