"""Ranking and picking in an exploration sweep, from trial records (no Ray): failed trials stay
visible, and an estimate on too small an effective sample size is never picked."""

from __future__ import annotations

import json

import pytest

from recsys.policies import Arm
from tuning.exploration import ExplorationSweepConfig
from tuning.exploration_report import pick_best, trial_table, write_outputs
from tuning.offline_objective import LogObjective, OfflineConfig
from tuning.online_objective import SimulatorObjective
from tuning.space import BASELINES
from tuning.trials import TrialRecord, check_experiment_dir


def record(trial: str, policy: str, params: dict, error: str | None = None, **metrics) -> TrialRecord:
    return TrialRecord(trial, {"policy": policy, policy: params}, metrics, error, f"/runs/{trial}")


def offline_records() -> list[TrialRecord]:
    interval = {"reward_low": 0.1, "reward_high": 0.3}
    return [
        record("t0", "greedy", {}, lcb=0.20, reward=0.25, ess=40.0, **interval),
        record("t1", "epsilon_greedy", {"epsilon": 0.3}, lcb=0.15, reward=0.18, ess=900.0, **interval),
        record("t2", "softmax", {"temperature": 0.5}, lcb=0.18, reward=0.2, ess=300.0, **interval),
        record("t3", "softmax", {"temperature": 5.0}, error="ValueError: temperature=5.0 is too hot"),
    ]


def test_the_best_estimate_on_too_few_effective_samples_is_ranked_but_not_picked():
    objective = LogObjective("log.parquet", None, OfflineConfig(min_ess=100))
    table = trial_table(offline_records(), objective)
    assert list(table["trial"]) == ["t0", "t2", "t1", "t3"]  # by lower bound, the failed trial last
    assert list(table["eligible"]) == [False, True, True, False]
    assert pick_best(table) == (Arm("softmax", {"temperature": 0.5}), 0.18, "")


def test_the_best_exploring_trial_leaves_the_baselines_out():
    objective = SimulatorObjective("world", None)
    rows = [record("a", "greedy", {}, regret=200.0), record("s", "static", {}, regret=190.0),
            record("b", "thompson", {"prior_strength": 3.0}, regret=250.0),
            record("c", "lints", {"scale": 0.1}, regret=240.0)]
    table = trial_table(rows, objective)
    assert pick_best(table) == (Arm("static"), 190.0, "")
    assert pick_best(table, exclude=BASELINES) == (Arm("lints", {"scale": 0.1}), 240.0, "")
    assert pick_best(table.query("policy in @BASELINES"), exclude=BASELINES)[0] is None


def test_online_regret_ranks_lowest_first():
    objective = SimulatorObjective("world", None)
    rows = [record("a", "greedy", {}, regret=300.0), record("b", "thompson", {"prior_strength": 3.0}, regret=250.0)]
    assert list(trial_table(rows, objective)["trial"]) == ["b", "a"]


def test_no_pick_when_every_estimate_rests_on_too_few_samples(tmp_path):
    log = tmp_path / "impressions.parquet"
    cfg = ExplorationSweepConfig(out=tmp_path / "sweep", log=log, policies=("greedy", "epsilon_greedy", "softmax"),
                                 offline=OfflineConfig(min_ess=1e6))
    (tmp_path / "sweep").mkdir()
    outcome = write_outputs(cfg, cfg.objective(), offline_records(), 12.5, {"trials_peak_concurrent": 2}, [])

    assert outcome.pick is None
    assert outcome.no_pick_reason.startswith("no trial is eligible: ESS")
    report = outcome.report.read_text()
    assert "- NO PICK: no trial is eligible: ESS" in report
    assert "too few effective samples to trust" in report
    assert "## Failed trials (1)" in report and "ValueError: temperature=5.0 is too hot" in report
    assert not (tmp_path / "sweep" / "serving.yaml").exists()
    pick = json.loads((tmp_path / "sweep" / "pick.json").read_text())
    assert pick["policy"] is None and pick["no_pick_reason"] == outcome.no_pick_reason


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"n_boot": 10}, r"--offline.n-boot=10: the lower bound needs at least 50 resamples"),
        ({"min_ess": 0}, r"--offline.min-ess=0: must be > 0"),
        ({"alpha": 1.5}, r"--offline.alpha=1.5: must be in \(0, 1\)"),
    ],
)
def test_offline_settings_are_validated(kwargs, match):
    with pytest.raises(ValueError, match=match):
        OfflineConfig(**kwargs)


@pytest.mark.parametrize(
    ("exists", "resume", "error", "match"),
    [
        (True, False, FileExistsError, r"exploration already holds a sweep; pass --resume to continue it"),
        (False, True, FileNotFoundError, r"--resume: no sweep to resume in .*exploration; run once without --resume"),
        (False, False, None, None),
    ],
)
def test_the_experiment_folder_is_checked_before_anything_runs(tmp_path, exists, resume, error, match):
    folder = tmp_path / "tune" / "exploration"
    if exists:
        folder.mkdir(parents=True)
    if error is None:
        check_experiment_dir(folder, resume)
        return
    with pytest.raises(error, match=match):
        check_experiment_dir(folder, resume)
