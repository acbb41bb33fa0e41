"""CPU seconds a piece of work cost: this process and the processes it started (Ray's GCS, raylet and workers).

Take a :func:`cpu_snapshot` before and after the work and subtract with :func:`cpu_used`. The
figure counts user plus system time of this process and of every live descendant at either
snapshot, or of the processes named. It is a lower bound and never negative:

- a process that starts and exits between the two snapshots counts only if a process of the tree
  reaped it (its time then shows in that parent's children's time; Ray's raylet reaps its workers);
- one reparented outside the tree before it exits (a Ray worker whose parent exited first) is missed.

Other users of the machine are never counted. Ray ships ``psutil`` (on ``sys.path`` once ``ray`` is
imported); without it only this process and the children it reaped count (``resource.getrusage``).
"""

from __future__ import annotations

import os
import resource

Snapshot = dict[tuple[int, float], tuple[float, float]]
"""(pid, start time) -> (own CPU seconds, own plus reaped children's CPU seconds)."""


def cpu_snapshot(pids: list[int] | None = None) -> Snapshot:
    """The CPU times of this process and its live descendants, or of ``pids`` alone when given."""
    try:
        import psutil
    except ImportError:
        me, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
        own = me.ru_utime + me.ru_stime
        return {(os.getpid(), 0.0): (own, own + children.ru_utime + children.ru_stime)}
    if pids is None:
        me = psutil.Process()
        processes = [me, *me.children(recursive=True)]
    else:
        processes = []
        for pid in pids:
            try:
                processes.append(psutil.Process(pid))
            except psutil.Error:  # gone already
                pass
    found: Snapshot = {}
    for process in processes:
        try:
            with process.oneshot():
                times = process.cpu_times()
                found[(process.pid, process.create_time())] = (times.user + times.system, sum(times[:4]))
        except psutil.Error:  # exited while we looked
            pass
    return found


def cpu_used(before: Snapshot, after: Snapshot) -> float:
    """CPU seconds between two snapshots of the same processes: a lower bound, never negative.

    Two lower bounds, the larger wins. (a) The growth of each live process's own time (a new one
    from 0): it misses what processes that exited in between used. (b) The growth of the total
    counting reaped children: exact when every exited process was reaped inside the tree, short,
    even below 0, when one was reaped outside it.
    """
    own = sum(max(0.0, now[0] - before.get(key, (0.0, 0.0))[0]) for key, now in after.items())
    total = sum(now[1] for now in after.values()) - sum(then[1] for then in before.values())
    return max(own, total)
