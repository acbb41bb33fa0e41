"""`serendip demo --quick --keep-serving` end to end, as a newcomer runs it: the whole loop, its report,
and the server it leaves up until Ctrl-C."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from serendip.cli import COMMANDS
from serendip.demo import QUICK

pytestmark = [pytest.mark.slow]

SECTIONS = ["## 1. Fine-tuning (Ray Train)", "## 2. Exploration sweep (Ray Tune)",
            "## 3. A/B test in the shop (static, greedy control, the pick)", "## 4. Regret over time",
            "## 5. New products (cold start)", "## 6. Serving latency", "## 7. Try the API"]
PHASES = ["simulate", "ray start", "train", "sweep", "serve deploy", "traffic"]


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
@pytest.mark.skipif(("demo",) not in COMMANDS, reason="`serendip demo` is not in serendip/cli.py's COMMANDS yet")
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
    assert [f"step {n}/6" in progress for n in range(1, 7)] == [True] * 6
    assert [re.search(rf"\] {phase}: [\d.]+ s wall, [\d.-]+ s CPU", progress) is not None for phase in PHASES] == [True] * 6

    (run,) = tmp_path.glob("demo-*")
    report = (run / "report.md").read_text()
    assert [s in report for s in SECTIONS] == [True] * len(SECTIONS)
    assert "**Verdict**: learning: greedy" in report and "exploration: the picked policy" in report
    assert "95% bootstrap CI" in report
    for png in ["plots/training.png", "plots/regret.png", "sweep/plots/reward_vs_rate.png"]:
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"]({png})" in report
    summary = json.loads((run / "summary.json").read_text())
    assert summary["failures"] == 0 and summary["visits"] == QUICK.rounds * QUICK.visits_per_round
    assert list(summary["phases"]) == PHASES and "**Time per phase**" in report
    assert list(summary["arms"]) == ["greedy", "static", "picked"]  # every arm got visits
    assert summary["arms"]["picked"]["policy"] == summary["picked"] and not summary["picked"].startswith(("greedy", "static"))
    for lift in ("lift_learning", "lift_exploration"):
        assert summary[lift]["low"] <= summary[lift]["lift"] <= summary[lift]["high"], lift
    for lift in ("lift_learning_new_products", "lift_exploration_new_products"):  # null: its control clicked none
        row = summary[lift]
        assert row["lift"] is None or row["low"] is None or row["low"] <= row["lift"] <= row["high"], lift
    swept = (run / "sweep" / "trials.csv").read_text()
    assert all(policy in swept for policy in QUICK.policies)  # linucb and lints included, each baseline once
    assert "curl -s http://127.0.0.1:" in report and "/recommend -d" in report
    # The model the demo served is a normal model directory: serendip serve accepts it.
    assert (run / "model" / "config.json").exists() and (run / "model" / "serendip.json").exists()
