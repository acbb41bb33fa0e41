"""`serendip demo --quick --keep-serving` end to end, as a newcomer runs it: the whole loop run twice
(serve, evaluate off-policy, retrain, redeploy live, serve again), its report, and the server it leaves
up until Ctrl-C."""

from __future__ import annotations

import json
import math
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from serendip.demo import QUICK

pytestmark = [pytest.mark.slow]

SECTIONS = ["## 1. Fine-tuning (Ray Train)", "## 2. Exploration sweep (Ray Tune)",
            "## 3. A/B test in the shop (static, greedy control, the pick)", "## 4. Regret over time",
            "## 5. New products (cold start)", "## 6. Serving latency", "## 7. Try the API",
            "## 8. The loop, twice: off-policy check, retraining, live redeploy"]
PHASES = ["simulate", "ray start", "train", "sweep", "serve deploy", "traffic 0", "log drain", "off-policy", "retrain",
          "redeploy", "traffic 1", "offline ndcg"]
ARMS = ["greedy", "static", "picked"]
NOT_OURS = ["(pid=", "(raylet)", "(RayTrainWorker", "(TrainController", "(ServeController", "(ServeReplica",
            "(exploration_trial", "(SplitCoordinator", "Loading weights", "LOAD REPORT", "[transformers]",
            "Running Dataset", "streaming_executor", "Trial status", "Started a local Ray instance", "Warning"]
"""Pieces of the lines Ray, Ray Data, Tune and transformers print, none of which the demo's terminal may show."""
MAX_LINES = 50
"""The quick demo's terminal at most (its own lines, a line per phase's bar, the phase times; 43 when measured)."""


def run_demo_until_serving(tmp_path: Path) -> tuple[subprocess.Popen, list[str], str]:
    """Start the quick demo with --keep-serving; return it, its output so far and the server's URL."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    serendip = Path(sys.executable).with_name("serendip")
    demo = subprocess.Popen([str(serendip), "demo", "--quick", "--keep-serving", "--out", str(tmp_path)], env=env,
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    for line in demo.stdout:  # ends when the demo exits; the test's timeout bounds a hang
        lines.append(line)
        serving = re.search(r"serving on (http://127\.0\.0\.1:\d+) .*Ctrl-C stops it", line)
        if serving:
            return demo, lines, serving.group(1)
    demo.wait()
    pytest.fail(f"the demo exited ({demo.returncode}) without serving:\n{''.join(lines)[-6000:]}")


@pytest.mark.timeout(1200)
def test_demo_quick_runs_the_loop_and_writes_the_report(tmp_path: Path):
    demo, lines, url = run_demo_until_serving(tmp_path)
    try:
        # --keep-serving: the report is written and the API still answers.
        assert httpx.get(f"{url}/healthz", timeout=30).status_code == 200
        demo.send_signal(signal.SIGINT)  # what Ctrl-C does
        rest, _ = demo.communicate(timeout=300)
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.communicate()
    output = "".join(lines) + rest
    assert demo.returncode == 0, output[-6000:]
    with pytest.raises(httpx.TransportError):  # Ctrl-C took the server down with it
        httpx.get(f"{url}/healthz", timeout=5)
    progress = "\n".join(line for line in output.splitlines() if line.startswith("[demo"))
    assert [f"step {n}/10" in progress for n in range(1, 11)] == [True] * 10
    assert [re.search(rf"\] {phase}: [\d.]+ s wall, [\d.]+ s CPU$", progress, re.M) is not None
            for phase in PHASES] == [True] * len(PHASES)  # no negative time
    assert_a_clean_terminal(output, tmp_path)

    (run,) = tmp_path.glob("demo-*")
    report = (run / "report.md").read_text()
    assert [s in report for s in SECTIONS] == [True] * len(SECTIONS)
    assert "**Verdict**: learning: greedy" in report and "exploration: the picked policy" in report
    assert "95% bootstrap CI" in report
    for png in ["plots/training.png", "plots/regret.png", "sweep/plots/reward_vs_rate.png"]:
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"]({png})" in report
    summary = json.loads((run / "summary.json").read_text())
    assert summary["failures"] == 0 and summary["visits"] == 2 * QUICK.rounds * QUICK.visits_per_round
    assert list(summary["phases"]) == PHASES and "**Time per phase**" in report
    assert list(summary["arms"]) == ["greedy", "static", "picked"]  # every arm got visits
    assert summary["arms"]["picked"]["policy"] == summary["picked"] and not summary["picked"].startswith(("greedy", "static"))
    for lift in ("lift_learning", "lift_exploration"):
        assert summary[lift]["low"] <= summary[lift]["lift"] <= summary[lift]["high"], lift
    for lift in ("lift_learning_new_products", "lift_exploration_new_products"):  # null: its control clicked none
        row = summary[lift]
        assert row["lift"] is None or None in (row["low"], row["high"]) or row["low"] <= row["lift"] <= row["high"], lift
    swept = (run / "sweep" / "trials.csv").read_text()
    assert all(policy in swept for policy in QUICK.policies)  # linucb and lints included, each baseline once
    assert "curl -s http://127.0.0.1:" in report and "/recommend -d" in report
    # The models the demo served are normal model directories: serendip serve accepts them.
    for model in ("model", "model-1"):
        assert (run / model / "config.json").exists() and (run / model / "serendip.json").exists()
    assert_the_second_generation(summary, run)
    assert_the_served_log_commands(summary, run, tmp_path)


def assert_a_clean_terminal(output: str, tmp_path: Path) -> None:
    """Only the demo's own lines, each once, within a bound; a bar's line per phase; Ray's and the libraries'
    output in the run's output.log instead."""
    lines = output.splitlines()
    assert [piece for piece in NOT_OURS if piece in output] == [], output[-6000:]
    assert [line for line in lines if not line.startswith("[demo")] == [], output[-6000:]
    repeated = {line: n for line in lines if (n := lines.count(line)) > 1}
    assert repeated == {}, repeated
    assert len(lines) <= MAX_LINES, output
    for bar in (r"train: \d+/\d+ steps, loss [\d.]+, \d+ samples/s, val NDCG@10 [\d.]+",
                rf"sweep: {QUICK.trials}/{QUICK.trials} trials, regret [\d.]+ to [\d.]+",
                rf"generation 0: {QUICK.rounds}/{QUICK.rounds} rounds, clicks/visit greedy [\d.]+, static [\d.]+, "
                r"picked [\d.]+", r"retrain: \d+/\d+ steps", rf"generation 1: {QUICK.rounds}/{QUICK.rounds} rounds"):
        assert re.search(bar, output), bar
    (run,) = tmp_path.glob("demo-*")
    log = (run / "output.log").read_text()
    assert f"output: {run / 'output.log'}" in output and "(RayTrainWorker pid=" in log and "Trial status" in log


def assert_the_served_log_commands(summary: dict, run: Path, tmp_path: Path) -> None:
    """The README's commands that read a served log work as written on the log the demo's app served."""
    serendip = str(Path(sys.executable).with_name("serendip"))
    env = {**{k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}, "HF_HUB_OFFLINE": "1"}
    log = str(run / "serve-state" / "impressions")
    arms = [f"{arm}={row['policy']}" for arm, row in summary["arms"].items()]  # the summary names each arm's spec
    evaluate = subprocess.run([serendip, "evaluate", "--log", log, "--policy", "greedy", "thompson", "--arm", *arms,
                               "--reward-window-s", "10", "--n-boot", "50"],
                              env=env, capture_output=True, text=True, timeout=600)
    assert evaluate.returncode == 0, evaluate.stdout[-3000:] + evaluate.stderr[-3000:]
    assert "self-check" in evaluate.stdout and "logging propensities: pooled over arms" in evaluate.stdout
    sweep = subprocess.run([serendip, "tune", "exploration", "--log", log, "--out", str(tmp_path / "ope-sweep"),
                            "--policies", "greedy", "ucb1", "--trials", "3", "--offline.estimator", "snips",
                            "--offline.arm", *arms, "--offline.reward-window-s", "10", "--offline.min-ess", "10"],
                           env=env, capture_output=True, text=True, timeout=600)
    assert sweep.returncode == 0, sweep.stdout[-3000:] + sweep.stderr[-3000:]
    assert (tmp_path / "ope-sweep" / "trials.csv").read_text().count("\n") >= 3


def assert_the_second_generation(summary: dict, run: Path) -> None:
    """Structure and sanity of the loop run twice; no figure that noise could move past a threshold."""
    assert summary["generations"] == 2
    for g in (0, 1):
        assert list(summary[f"gen{g}_clicks_per_visit"]) == ARMS
        for arm, value in summary[f"gen{g}_clicks_per_visit"].items():
            low, high = summary[f"gen{g}_clicks_per_visit_ci"][arm]
            assert 0 <= low <= value <= high <= 10, (g, arm)
    # generation 1 served the retrained model without restarting the bandit
    redeploy = summary["redeploy"]
    assert not redeploy["bandit_restarted"]
    assert redeploy["model_version_before"] != redeploy["model_version_after"]
    # every served arm's self-check ran with every estimator, with a finite error against its online value
    assert set(summary["ope_rel_error"]) == {"ips", "snips", "dr", "sndr"}
    for estimator, errors in summary["ope_rel_error"].items():
        assert sorted(errors) == sorted(ARMS) and all(math.isfinite(e) and e >= 0 for e in errors.values()), estimator
        assert sorted(summary["ope_covers"][estimator]) == sorted(ARMS)
    assert all(0 < v < 1 for v in summary["ope_online_per_item"].values())
    assert len(summary["ope_candidates"]) == QUICK.ope_candidates
    # both models scored on the same held-out shoppers
    for key in ("model0_ndcg10", "model1_ndcg10", "popularity_ndcg10"):
        assert 0 <= summary[key] <= 1, key
    assert summary["ndcg_users"] > 0 and summary["ndcg_positives"] >= summary["ndcg_users"]
    # the served log: both parts on disk, its size per slate
    assert summary["log_slates"] == QUICK.rounds * QUICK.visits_per_round
    assert summary["log_candidates_per_slate"] == QUICK.candidates
    assert summary["log_impression_bytes"] > 0 and summary["log_decision_bytes"] > 0
    assert summary["log_bytes_per_impression"] == pytest.approx(
        (summary["log_impression_bytes"] + summary["log_decision_bytes"]) / summary["log_slates"])
    assert (run / "serve-state" / "impressions" / "_decisions").is_dir()
