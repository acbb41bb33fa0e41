"""recsys.cpu_time: the CPU seconds of this process and the processes it started, a lower bound never below 0."""

import subprocess
import sys
import time

import pytest

from recsys.cpu_time import cpu_snapshot, cpu_used

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {seconds}: pass\n"
"""A child that spends ``seconds`` of CPU and exits."""


@pytest.mark.parametrize(("before", "after", "used"), [
    # (own, own + reaped children) by (pid, start): a live process's growth counts, a new one's whole time
    ({(1, 0.0): (5.0, 5.0)}, {(1, 0.0): (7.0, 7.0), (2, 9.0): (1.5, 1.5)}, 3.5),
    # a worker (pid 3, 4 s so far) exits after 2 s more, reaped by its parent (pid 2): the tree's total is exact
    ({(2, 0.0): (1.0, 1.0), (3, 1.0): (4.0, 4.0)}, {(2, 0.0): (1.5, 7.5)}, 0.5 + 2.0),
    # a worker exits reaped outside the tree: the total falls (the demo once read -27 s); own growth is kept
    ({(1, 0.0): (5.0, 5.0), (3, 1.0): (30.0, 30.0)}, {(1, 0.0): (8.0, 8.0)}, 3.0),
    # a pid reused by a new process is another process
    ({(4, 0.0): (9.0, 9.0)}, {(4, 50.0): (0.5, 0.5)}, 0.5),
])
def test_the_figure_is_a_lower_bound_that_is_never_negative(before, after, used):
    assert cpu_used(before, after) == pytest.approx(used)


@pytest.mark.parametrize("with_psutil", [False, True])
def test_a_child_that_ran_and_exited_counts(with_psutil):
    if with_psutil:
        import ray  # noqa: F401  (puts Ray's psutil on sys.path, as every Ray layer has it)
    before = cpu_snapshot()
    subprocess.run([sys.executable, "-c", BURN.format(seconds=0.3)], check=True)
    assert cpu_used(before, cpu_snapshot()) >= 0.3  # reaped by this process: its time is in our children's


def test_named_processes_count_alone():
    import ray  # noqa: F401  (Ray's psutil)

    child = subprocess.Popen([sys.executable, "-c", BURN.format(seconds=0.3) + "import time; time.sleep(30)"])
    try:
        before = cpu_snapshot([child.pid])
        assert list(before) and [pid for pid, _ in before] == [child.pid]
        deadline = time.monotonic() + 30
        while cpu_used(before, cpu_snapshot([child.pid])) < 0.2 and time.monotonic() < deadline:
            time.sleep(0.05)  # the child burns its 0.3 s, then sleeps
        assert cpu_used(before, cpu_snapshot([child.pid])) >= 0.2
    finally:
        child.kill()
        child.wait()
    assert cpu_snapshot([child.pid]) == {}  # gone: nothing, and no error
