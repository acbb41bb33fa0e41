"""The terminal of a serendip command: the layers' progress lines read back, the console's routing of
what a process prints (its own lines and a bar per phase shown, everything else only logged)."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from types import SimpleNamespace

import pytest

from training.progress import epoch_line, read_line, step_line

PROJECT = Path(__file__).resolve().parents[2]


def test_a_step_line_reads_back_through_rays_worker_prefix():
    line = step_line(0, 10, 22, 10, 12, 3.754, {"softmax": 3.2118, "bce": 0.0804}, 302.5)
    assert line == ("[train] epoch 0 step 10/22 (run step 10/12) loss 3.7540 softmax 3.2118 bce 0.0804 "
                    "302.5 samples/s")
    progress = read_line(f"\x1b[36m(RayTrainWorker pid=1457)\x1b[0m {line}")
    assert (progress.epoch, progress.step, progress.total, progress.loss, progress.samples_per_s) == (
        0, 10, 12, 3.754, 302.5)
    assert progress.val_ndcg10 is None and not progress.final


@pytest.mark.parametrize(("step", "total", "stop", "final"), [
    (12, 12, "max_steps=12 reached", True),
    (10, 30, "early stop: no better val_ndcg10 for 1 epochs", True),
    (30, 30, None, True),
    (10, 30, None, False),
])
def test_an_epoch_line_says_whether_the_run_ends_with_it(step, total, stop, final):
    progress = read_line(epoch_line(1, step, total, 1.8873, 0.0525, 309.8, stop))
    assert (progress.step, progress.total, progress.val_ndcg10, progress.final) == (step, total, 0.0525, final)


@pytest.mark.parametrize("text", ["[train] config: {}", "[train] 2 worker(s) on cpu, 1 torch threads each",
                                  "Loading weights: 100%", "[tune] trial 1/8 done: a regret 3"])
def test_other_lines_are_not_training_progress(text):
    assert read_line(text) is None


def test_a_sweep_prints_one_line_per_ended_trial_that_reads_back(capsys):
    from tuning.progress import TrialLines
    from tuning.progress import read_line as read_trial

    lines = TrialLines("regret")
    lines.setup(total_num_samples=3)
    lines.on_trial_complete(0, [], SimpleNamespace(trial_id="a1", last_result={"regret": 241.75}))
    lines.on_trial_error(0, [], SimpleNamespace(trial_id="b2", last_result={}))
    lines.on_trial_complete(0, [], SimpleNamespace(trial_id="c3", last_result={}))
    printed = capsys.readouterr().out.splitlines()
    assert printed == ["[tune] trial 1/3 done: a1 regret 241.75", "[tune] trial 2/3 failed: b2",
                       "[tune] trial 3/3 done: c3 regret -"]
    read = [read_trial(line) for line in printed]
    assert [(r.done, r.total, r.failed, r.metric, r.value) for r in read] == [
        (1, 3, False, "regret", 241.75), (2, 3, True, None, None), (3, 3, False, "regret", None)]


SCRIPT = textwrap.dedent('''
    import os, subprocess, sys
    from pathlib import Path
    from serendip.console import Console, TrainingBar
    from training.progress import epoch_line, step_line

    with Console(Path(sys.argv[1]), verbose=sys.argv[2] == "verbose", passthrough=("{",)) as console:
        console.say("the command's own line")
        print("(pid=12) a Ray worker's line", flush=True)
        os.write(2, b"a C library's line\\n")
        subprocess.run(["echo", "a child process's line"], check=True)
        with console.following(TrainingBar(console, "train")):
            for step in (5, 10):
                print("(RayTrainWorker pid=7) " + step_line(0, step, 12, step, 12, 1.0, {}, 300.0), flush=True)
            print('{"model_dir": "m"}', flush=True)  # the result, before Ray streamed the worker's last line
            print("(RayTrainWorker pid=7) " + epoch_line(0, 12, 12, 0.5, 0.0625, 310.0, None), flush=True)
    print("after the console", flush=True)
''')


def run_console(tmp_path: Path, mode: str) -> tuple[list[str], str]:
    log = tmp_path / "run" / "output.log"
    done = subprocess.run([sys.executable, "-c", SCRIPT, str(log), mode], cwd=PROJECT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.splitlines(), log.read_text()


def test_the_terminal_shows_the_commands_lines_and_one_line_per_bar_and_the_log_holds_everything(tmp_path):
    """The result printed while the bar runs waits for the bar's last line."""
    shown, log = run_console(tmp_path, "quiet")
    assert shown == ["the command's own line", "train: 12/12 steps, loss 0.500, 310 samples/s, val NDCG@10 0.0625",
                     '{"model_dir": "m"}', "after the console"]
    for line in ("(pid=12) a Ray worker's line", "a C library's line", "a child process's line",
                 "(RayTrainWorker pid=7) [train] epoch 0 done (run step 12/12)", "the command's own line"):
        assert line in log


def test_verbose_shows_every_line_once(tmp_path):
    shown, _ = run_console(tmp_path, "verbose")
    assert "(pid=12) a Ray worker's line" in shown and "a C library's line" in shown
    assert len(shown) == len(set(shown)), shown


def test_each_command_logs_into_its_runs_folder():
    from serendip.cli import run_folder
    from serving.config import ServeConfig
    from training.config import TrainConfig
    from tuning.exploration import ExplorationSweepConfig

    assert run_folder(("train",), TrainConfig(storage_path="/x/runs", name="r1")) == Path("/x/runs/r1")
    assert run_folder(("train",), TrainConfig(storage_path="s3://bucket/runs", name="r1")) == Path("runs/r1")
    assert run_folder(("tune", "exploration"), ExplorationSweepConfig(out=Path("/o"), world=Path("/w"))) == Path("/o")
    assert run_folder(("serve",), ServeConfig(model="m", state_dir=Path("/s"))) == Path("/s")
