"""Exploration sweeps on a real local Ray: the online objective (simulator replay), the offline one
(an impressions log), the report and its plots, resume after an interrupt, and bad input."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pandas as pd
import pytest
from ray import tune

from recsys.data import write_table
from recsys.simulator import World, WorldConfig
from tuning.exploration import ExplorationSweepConfig, run_exploration_sweep
from tuning.objective import ObjectiveInputError
from tuning.offline_objective import OfflineConfig
from tuning.online_objective import OnlineConfig
from tuning.space import ExplorationSpace, Param, SearchSpaceError
from tuning.trials import SweepInterrupted

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
QUICK = OnlineConfig(seeds=2, rounds=40, batch=10, candidates=60, inject=20)


@pytest.fixture(scope="module")
def explore_world(tmp_path_factory):
    """A shop where exploring pays: one revealed interest, two latent ones, strong satiation."""
    path = tmp_path_factory.mktemp("explore-world") / "world"
    cfg = WorldConfig(users=300, items=300, days=10, seed=0, satiation=1.0, revealed_interests=1,
                      latent_interests=2, emerging_share=1.0, interest_logit=4.0)
    world = World.create(cfg)
    world.generate_events()
    world.save(path)
    return path


def logged_impressions(n: int = 2000, n_items: int = 8, k: int = 3, seed: int = 0) -> pd.DataFrame:
    """A uniformly random logger's slates; item i's CTR rises with i, so ranking by it is best."""
    rng = np.random.default_rng(seed)
    ctr = np.linspace(0.02, 0.4, n_items)
    slates = np.argsort(rng.random((n, n_items)), axis=1)[:, :k]
    examination = 1.0 / (1.0 + np.arange(k))
    clicks = rng.random((n, k)) < ctr[slates] * examination
    return pd.DataFrame({
        "impression_id": np.repeat([f"imp{i}" for i in range(n)], k),
        "ts": pd.Timestamp("2024-01-01", tz="UTC") + pd.to_timedelta(np.repeat(np.arange(n), k), unit="s"),
        "user_id": np.repeat(rng.integers(0, 100, n), k), "policy": "uniform",
        "item_id": slates.ravel() + 1, "position": np.tile(np.arange(k), n),
        "propensity": 1.0 / n_items, "score": 0.0, "reward": clicks.ravel().astype(float),
    })


@pytest.fixture(scope="module")
def impression_log(tmp_path_factory):
    path = tmp_path_factory.mktemp("log") / "impressions.parquet"
    write_table(logged_impressions(), path, "impressions")
    return path


@pytest.mark.timeout(300)
def test_online_sweep_picks_the_least_regret_and_its_best_explorer_and_draws_its_plots(ray_session, explore_world,
                                                                                      tmp_path):
    cfg = ExplorationSweepConfig(out=tmp_path / "sweep", world=explore_world, policies=("greedy", "epsilon_greedy", "thompson"),
                                 trials=6, online=QUICK)
    outcome = run_exploration_sweep(cfg)

    table = outcome.table
    assert len(table) == 6 and (table["status"] == "ok").all()
    assert (table["policy"] == "greedy").sum() == 1  # a baseline runs once, TPE never repeats it
    # Greedy learns too, so whether exploring pays here is the policies' question (recsys tests and
    # benchmarks/quality_bandit.py); the sweep must pick the least regret and name its best explorer.
    assert outcome.pick is not None and outcome.pick_value == table["regret"].min()
    exploring = table[table["policy"] != "greedy"]
    assert outcome.explorer.policy != "greedy" and outcome.explorer_value == exploring["regret"].min()
    for name in ("reward_vs_rate.png", "regret_over_time.png"):
        data = (tmp_path / "sweep" / "plots" / name).read_bytes()
        assert data.startswith(PNG_MAGIC) and len(data) > 5000
    report = outcome.report.read_text()
    assert "## Ranked trials" in report and "![Cumulative regret" in report
    serving = (tmp_path / "sweep" / "serving.yaml").read_text()
    assert f"policy: {outcome.pick.policy}" in serving
    assert json.loads((tmp_path / "sweep" / "pick.json").read_text())["policy"] == outcome.pick.policy
    # Recorded, not asserted to be 2: trials this short may finish before a second actor is up.
    assert outcome.usage["trials_peak_concurrent"] >= 1 and 0 < outcome.usage["ray_cpu_reserved"] <= 1


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory, explore_world):
    """A tiny untrained, calibrated two-tower model of the explore world's catalog (as `serendip train` writes one)."""
    from recsys.model import Calibrator, TwoTower, TwoTowerConfig, build_tiny_base

    root = tmp_path_factory.mktemp("tiny-model")
    config = TwoTowerConfig(base=str(build_tiny_base(root / "base")), dim=16, user_heads=2, user_layers=1,
                            id_embeddings=False, history_len=8)
    model = TwoTower.from_base(config).eval()
    model.calibrator = Calibrator("platt", {"a": 0.02, "b": -2.5})
    return model.save_pretrained(root / "model", item_table=model.item_table(World.load(explore_world).items))


@pytest.mark.timeout(300)
def test_a_sweep_on_a_models_features_runs_the_baselines_once_and_the_linear_policies(ray_session, explore_world,
                                                                                      tiny_model, tmp_path):
    online = OnlineConfig(seeds=1, rounds=12, batch=6, candidates=40, inject=10)
    cfg = ExplorationSweepConfig(out=tmp_path / "sweep", world=explore_world, model=tiny_model,
                                 policies=("static", "greedy", "linucb", "lints"), trials=5, online=online)
    outcome = run_exploration_sweep(cfg)

    table = outcome.table
    assert (table["status"] == "ok").all(), table[["arm", "error"]]
    assert (table["policy"].value_counts()[["static", "greedy"]] == 1).all()  # parameter-free: run once each
    assert {"linucb", "lints"} <= set(table["policy"])
    assert outcome.explorer is not None and outcome.explorer.policy in ("linucb", "lints")
    assert f"scores from model {tiny_model}" in outcome.report.read_text()
    assert json.loads((tmp_path / "sweep" / "pick.json").read_text())["model"] == str(tiny_model)


@pytest.mark.timeout(300)
def test_offline_objective_ranks_the_known_best_policy_first(ray_session, impression_log, tmp_path):
    space = ExplorationSpace(epsilon=Param(0.3, 0.9, log=True), temperature=Param(1.0, 5.0, log=True))
    cfg = ExplorationSweepConfig(out=tmp_path / "sweep", log=impression_log, policies=("greedy", "epsilon_greedy", "softmax"),
                                 trials=5, search="random", space=space, offline=OfflineConfig(n_boot=100))
    outcome = run_exploration_sweep(cfg)

    assert outcome.table.iloc[0]["policy"] == "greedy"
    assert outcome.pick.policy == "greedy"
    assert (outcome.table["ess"] >= 100).all()
    assert (tmp_path / "sweep" / "plots" / "reward_vs_rate.png").read_bytes().startswith(PNG_MAGIC)


class CtrlC(tune.Callback):
    """Presses Ctrl-C (SIGINT to this process) once ``after`` trials have finished.

    Tune saves callbacks with the experiment, so the restored run gets this one back: the marker
    file makes it fire only once.
    """

    def __init__(self, after: int, marker) -> None:
        self.after, self.marker, self.finished, self.at = after, marker, [], 0.0

    def on_trial_complete(self, iteration, trials, trial, **info):
        finished = [t.trial_id for t in trials if t.status == "TERMINATED"] + [trial.trial_id]
        if len(set(finished)) >= self.after and not self.marker.exists():
            self.marker.write_text("interrupted")
            self.finished, self.at = sorted(set(finished)), time.time()
            os.kill(os.getpid(), signal.SIGINT)


@pytest.mark.timeout(300)
def test_an_interrupted_sweep_resumes_where_it_stopped(ray_session, explore_world, tmp_path):
    args = {"out": tmp_path / "sweep", "world": explore_world, "policies": ("greedy", "epsilon_greedy", "softmax"),
            "trials": 6, "online": OnlineConfig(seeds=1, rounds=10, batch=5, candidates=30, inject=0)}
    ctrl_c = CtrlC(after=2, marker=tmp_path / "interrupted")
    with pytest.raises(SweepInterrupted, match=r"sweep interrupted: \d of 6 trials finished; .* run the same command with --resume"):
        run_exploration_sweep(ExplorationSweepConfig(**args), callbacks=[ctrl_c])
    assert len(ctrl_c.finished) >= 2 and not (tmp_path / "sweep" / "report.md").exists()

    outcome = run_exploration_sweep(ExplorationSweepConfig(**args, resume=True))
    assert len(outcome.table) == 6 and (outcome.table["status"] == "ok").all()
    assert set(ctrl_c.finished) <= set(outcome.table["trial"])
    for trial_dir in (tmp_path / "sweep" / "tune" / "exploration").glob("exploration_trial_*"):
        if any(trial_id in trial_dir.name for trial_id in ctrl_c.finished):  # finished trials are not re-run
            results = [json.loads(line) for line in (trial_dir / "result.json").read_text().splitlines()]
            assert len(results) == 1 and results[0]["timestamp"] <= ctrl_c.at
    assert "resumed with Tuner.restore" in outcome.report.read_text()


@pytest.mark.parametrize(
    ("make", "error", "match"),
    [
        (lambda p, log: ExplorationSweepConfig(out=p, world=p / "nowhere"), ObjectiveInputError,
         r"--world .*nowhere: no such folder; write one with `serendip simulate --out DIR`"),
        (lambda p, log: ExplorationSweepConfig(out=p, log=log, model=p), ObjectiveInputError,
         r"--model .* does not load as a Serendip model"),
        (lambda p, log: ExplorationSweepConfig(out=p, log=log, policies=("greedy", "linucb")), ObjectiveInputError,
         r"offline objective: \['linucb'\] rank by per-item features"),
        (lambda p, log: ExplorationSweepConfig(out=p, log=log.with_name("no_propensity.csv")), ObjectiveInputError,
         r"no_propensity.csv cannot be used: .*propensity"),
        (lambda p, log: ExplorationSweepConfig(out=p, log=log, policies=("greedy",)), SearchSpaceError,
         r"exploration space is empty: policies \['greedy'\] have no searched parameter"),
        (lambda p, log: ExplorationSweepConfig(out=p), ObjectiveInputError,
         r"pass exactly one of --world DIR \(online objective\) or --log FILE \(offline objective\)"),
        (lambda p, log: ExplorationSweepConfig(out=p, log=log, trials=2), SearchSpaceError,
         r"seed trials \(baselines and policy defaults\) use up all --trials 2"),
    ],
)
def test_bad_input_is_refused_before_any_trial(ray_session, impression_log, tmp_path, make, error, match):
    no_propensity = logged_impressions(n=20).drop(columns="propensity")
    no_propensity.to_csv(impression_log.with_name("no_propensity.csv"), index=False)
    with pytest.raises(error, match=match):
        run_exploration_sweep(make(tmp_path / "sweep", impression_log))
    assert not (tmp_path / "sweep" / "tune").exists()
