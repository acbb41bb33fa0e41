"""The two objectives without Ray: a simulator replay over seeds, and an off-policy estimate on a log."""

from __future__ import annotations

import numpy as np
import pytest

from recsys.data import write_table
from recsys.policies import Arm
from recsys.simulator import World, WorldConfig
from tuning.objective import ObjectiveInputError, mean_interval
from tuning.offline_objective import LogObjective, OfflineConfig
from tuning.online_objective import OnlineConfig, SimulatorObjective

TINY = OnlineConfig(seeds=2, rounds=6, batch=5, candidates=20, k=5, inject=5)


@pytest.fixture(scope="module")
def world_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("world") / "shop"
    world = World.create(WorldConfig(users=60, items=80, days=3, seed=0))
    world.generate_events()
    world.save(path / "world")
    return path


def test_a_replay_score_is_reproducible_and_carries_its_curve(world_dir):
    objective = SimulatorObjective(world_dir, None, TINY)  # the shop folder: its world/ is found
    objective.check(("epsilon_greedy",))
    first = objective.evaluate(Arm("epsilon_greedy", {"epsilon": 0.2}))
    again = objective.evaluate(Arm("epsilon_greedy", {"epsilon": 0.2}))
    assert first == again  # common random numbers: same seeds, same traffic, same clicks
    assert first["regret_low"] <= first["regret"] <= first["regret_high"]
    assert first["curve_rounds"] == list(range(1, TINY.rounds + 1))
    assert np.all(np.diff(first["regret_curve"]) >= 0) and first["regret_curve"][-1] == pytest.approx(first["regret"])


@pytest.mark.parametrize(
    ("world", "cfg", "match"),
    [
        ("missing", TINY, r"--world .*missing: no such folder; write one with `serendip simulate --out DIR`"),
        ("empty", TINY, r"--world .*empty does not load as a simulated world"),
        ("ok", OnlineConfig(batch=100, candidates=50), r"--online.batch=100 exceeds the world's 60 users"),
        ("ok", OnlineConfig(candidates=500, k=10), r"--online.candidates=500 exceeds the world's 80 items"),
    ],
)
def test_a_bad_world_is_refused_with_its_message(world_dir, tmp_path, world, cfg, match):
    (tmp_path / "empty").mkdir()
    path = {"missing": tmp_path / "missing", "empty": tmp_path / "empty", "ok": world_dir}[world]
    with pytest.raises(ObjectiveInputError, match=match):
        SimulatorObjective(path, None, cfg).check(())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"seeds": 0}, r"--online.seeds=0: must be >= 1"), ({"k": 30, "candidates": 20}, r"--online.k=30 exceeds"),
     ({"inject": -1}, r"--online.inject=-1: must be >= 0")],
)
def test_online_settings_are_validated(kwargs, match):
    with pytest.raises(ObjectiveInputError, match=match):
        OnlineConfig(**kwargs)


def test_a_log_without_propensities_is_refused_naming_the_column(tmp_path):
    import pandas as pd

    rows = pd.DataFrame({"impression_id": ["a", "a"], "ts": pd.Timestamp("2024-01-01", tz="UTC"), "user_id": [1, 1],
                         "policy": "p", "item_id": [1, 2], "position": [0, 1], "score": 0.0, "reward": [1.0, 0.0]})
    rows.to_csv(tmp_path / "log.csv", index=False)
    with pytest.raises(ObjectiveInputError, match=r"--log .*log.csv cannot be used: .*'propensity'"):
        LogObjective(tmp_path / "log.csv", None, OfflineConfig()).check(("greedy",))
    rows.assign(propensity=0.0).pipe(lambda df: df.to_csv(tmp_path / "zero.csv", index=False))
    with pytest.raises(ObjectiveInputError, match=r"zero.csv cannot be used: .*propensity"):
        LogObjective(tmp_path / "zero.csv", None, OfflineConfig()).check(("greedy",))


def test_the_mean_interval_is_a_t_interval():
    mean, low, high = mean_interval(np.array([1.0, 2.0, 3.0]))
    assert mean == 2.0 and low == pytest.approx(2.0 - 2.4842, abs=1e-3) and high == pytest.approx(2.0 + 2.4842, abs=1e-3)
    assert mean_interval(np.array([5.0])) == (5.0, 5.0, 5.0)


def test_an_offline_estimate_reports_its_lower_bound_and_ess(tmp_path):
    rng = np.random.default_rng(0)
    n, k = 400, 2
    items = np.argsort(rng.random((n, 4)), axis=1)[:, :k] + 1
    import pandas as pd

    log = pd.DataFrame({"impression_id": np.repeat([f"i{j}" for j in range(n)], k),
                        "ts": pd.Timestamp("2024-01-01", tz="UTC"), "user_id": np.repeat(np.arange(n), k),
                        "policy": "uniform", "item_id": items.ravel(), "position": np.tile(np.arange(k), n),
                        "propensity": 0.25, "score": 0.0, "reward": (rng.random(n * k) < items.ravel() / 8).astype(float)})
    write_table(log, tmp_path / "log.parquet", "impressions")
    objective = LogObjective(tmp_path / "log.parquet", None, OfflineConfig(n_boot=60, min_ess=10))
    objective.check(("greedy",))
    metrics = objective.evaluate(Arm("greedy"))
    assert metrics["lcb"] == metrics["reward_low"] <= metrics["reward"] <= metrics["reward_high"]
    assert metrics["n"] == n * k and 0 < metrics["ess"] <= n * k
    assert objective.eligible(metrics) == (True, "")
