"""`serendip demo --quick` end to end, as a newcomer runs it: the whole loop and its report."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from serendip.cli import COMMANDS

pytestmark = [pytest.mark.slow]

SECTIONS = ["## 1. Fine-tuning (Ray Train)", "## 2. Exploration sweep (Ray Tune)",
            "## 3. A/B test in the shop (greedy control vs the pick)", "## 4. Regret over time",
            "## 5. New products (cold start)", "## 6. Serving latency", "## 7. Try the API"]


@pytest.mark.timeout(1200)
@pytest.mark.skipif(("demo",) not in COMMANDS, reason="`serendip demo` is not in serendip/cli.py's COMMANDS yet")
def test_demo_quick_runs_the_loop_and_writes_the_report(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    serendip = Path(sys.executable).with_name("serendip")
    done = subprocess.run([str(serendip), "demo", "--quick", "--out", str(tmp_path)], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=1100)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    progress = [line for line in done.stdout.splitlines() if line.startswith("[demo")]
    assert [f"step {n}/6" in "\n".join(progress) for n in range(1, 7)] == [True] * 6

    (run,) = tmp_path.glob("demo-*")
    report = (run / "report.md").read_text()
    assert [s in report for s in SECTIONS] == [True] * len(SECTIONS)
    assert "**Verdict**: the picked policy" in report and "95% bootstrap CI" in report
    for png in ["plots/training.png", "plots/regret.png", "sweep/plots/reward_vs_rate.png"]:
        assert (run / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", png
        assert f"]({png})" in report
    summary = json.loads((run / "summary.json").read_text())
    assert summary["failures"] == 0 and summary["visits"] == 800
    low, high = summary["lift_ci95"]
    assert low <= summary["lift"] <= high
    assert "curl -s http://127.0.0.1:" in report and "/recommend -d" in report
    # The model the demo served is a normal model directory: serendip serve accepts it.
    assert (run / "model" / "config.json").exists() and (run / "model" / "serendip.json").exists()
