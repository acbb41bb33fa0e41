"""``serendip train`` and ``serendip tune exploration`` as a person runs them: the terminal shows the
command's own lines, one progress bar's line and the result; what Ray, Ray Data, Tune and transformers
print goes to the run's output.log. A tiny shop and a tiny BERT (2 layers, hidden 32)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from recsys.model import build_tiny_base

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SERENDIP = str(Path(sys.executable).with_name("serendip"))
NOT_OURS = ["(pid=", "(raylet)", "(RayTrainWorker", "(TrainController", "(SplitCoordinator", "(exploration_trial",
            "Loading weights", "LOAD REPORT", "Running Dataset", "streaming_executor", "Trial status",
            "Started a local Ray instance", "Warning"]
"""Pieces of the lines Ray, Ray Data, Tune and transformers print."""


def serendip(*args: str, cwd: Path) -> list[str]:
    """Run a serendip command as a user would (its own local Ray); its terminal's lines."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_AUTH_MODE="disabled", HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    done = subprocess.run([SERENDIP, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=800)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-6000:]
    return output.splitlines()


def assert_clean(lines: list[str], command: str, log: Path) -> None:
    """No line of Ray's or the libraries', none twice; the log named first, and holding their lines."""
    text = "\n".join(lines)
    assert [piece for piece in NOT_OURS if piece in text] == [], text
    assert len(lines) == len(set(lines)), text
    assert lines[0] == f"serendip {command}: what Ray and the libraries print goes to {log} (--verbose shows it here)"
    assert "Started a local Ray instance" in log.read_text()


@pytest.fixture(scope="module")
def shop(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli")
    serendip("simulate", "--out", str(root / "shop"), "--users", "60", "--items", "40", "--days", "10", cwd=root)
    return root / "shop"


def test_serendip_train_shows_its_config_a_bar_and_the_result(shop: Path, tmp_path: Path):
    base = build_tiny_base(tmp_path / "tiny-bert")
    lines = serendip("train", "--data", str(shop), "--out", str(tmp_path / "model"), "--base", str(base),
                     "--workers", "1", "--epochs", "1", "--max-steps", "4", "--batch-size", "16", "--log-every", "1",
                     "--storage-path", str(tmp_path / "runs"), "--name", "tiny", cwd=tmp_path)
    log = tmp_path / "runs" / "tiny" / "output.log"
    assert_clean(lines, "train", log)
    assert lines[1].startswith("[train] config: {")
    assert lines[2].startswith("train: 4/4 steps, loss ") and ", val NDCG@10 " in lines[2]
    assert json.loads(lines[3])["model_dir"] == str(tmp_path / "model") and len(lines) == 4
    assert "(RayTrainWorker pid=" in log.read_text() and "[train] epoch 0 step 4/" in log.read_text()


def test_serendip_tune_exploration_shows_a_bar_of_trials_and_the_pick(shop: Path, tmp_path: Path):
    out = tmp_path / "sweep"
    lines = serendip("tune", "exploration", "--world", str(shop), "--out", str(out), "--policies", "greedy",
                     "thompson", "--trials", "3", "--online.seeds", "1", "--online.rounds", "5", "--online.batch", "4",
                     "--online.candidates", "20", cwd=tmp_path)
    assert_clean(lines, "tune exploration", out / "output.log")
    assert lines[1].startswith("trials: 3/3 trials, regret ")
    assert lines[2] == f"[tune] report: {out / 'report.md'}" and lines[3].startswith("[tune] pick: ")
    assert json.loads(lines[4])["pick"] in ("greedy", "thompson") and len(lines) == 5
    assert "Trial status" in (out / "output.log").read_text()
