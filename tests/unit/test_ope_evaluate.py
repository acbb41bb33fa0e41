"""evaluate_log on impressions tables, the target policies, and ``serendip evaluate`` end to end."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import tyro

from recsys.data import write_table
from recsys.ope.evaluate import EvaluateConfig, evaluate
from recsys.ope.log_evaluation import evaluate_log
from recsys.ope.targets import build_target, marginal_action_dist

OBD = Path(__file__).resolve().parents[3] / "shared" / "data" / "obd"


def impressions(n_slates=300, n_items=8, k=2, uniform=True, seed=0) -> pd.DataFrame:
    """Slates of k distinct items; uniform logging gives each (item, position) 1 / n_items."""
    rng = np.random.default_rng(seed)
    ctr = np.linspace(0.05, 0.4, n_items)
    rows = []
    for s in range(n_slates):
        if uniform:
            items, props = rng.permutation(n_items)[:k], np.full(k, 1 / n_items)
        else:
            p = np.linspace(1, 3, n_items) / np.linspace(1, 3, n_items).sum()
            items = rng.choice(n_items, size=k, replace=False, p=p)
            props = p[items]  # an approximation is fine: these rows only feed the estimators
        for j, item in enumerate(items):
            rows.append(
                {
                    "impression_id": f"imp-{s}",
                    "ts": pd.Timestamp(1_700_000_000_000 + s, unit="ms", tz="UTC"),
                    "user_id": s % 17,
                    "policy": "uniform",
                    "item_id": 100 + int(item),
                    "position": j,
                    "propensity": float(props[j]),
                    "score": np.nan,
                    "reward": float(rng.random() < ctr[item] * (1 - 0.3 * j)),
                }
            )
    return pd.DataFrame(rows)


def test_the_uniform_target_on_a_uniform_log_estimates_the_logged_ctr_exactly():
    log = impressions()
    n_items = log["item_id"].nunique()
    actions = log["item_id"].to_numpy() - 100
    target = build_target(
        "uniform",
        q_hat=None,
        actions=actions,
        positions=log["position"].to_numpy(),
        propensity=log["propensity"].to_numpy(),
        n_items=n_items,
    )
    table = evaluate_log(log, target, n_boot=200)
    assert list(table["estimator"]) == ["replay", "ips", "snips"]
    np.testing.assert_allclose(table["value"], log["reward"].mean())
    assert (table["ci_low"] < table["value"]).all() and (table["value"] < table["ci_high"]).all()


def test_replay_is_left_out_on_a_non_uniform_log_and_positions_are_reported():
    log = impressions(uniform=False)
    table = evaluate_log(log, log["propensity"].to_numpy(), n_boot=0, by_position=True)
    assert "replay" not in set(table["estimator"])
    assert set(table["position"]) == {"all", "0", "1"}
    ips = table[(table["estimator"] == "ips") & (table["position"] == "all")]
    assert ips["value"].item() == pytest.approx(log["reward"].mean())


def test_the_logger_marginal_is_recovered_from_its_own_propensities():
    # A context-dependent logger over 3 items at one position: the marginal is the mean over contexts.
    rng = np.random.default_rng(1)
    per_context = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6]])
    x = rng.integers(0, 2, 20000)
    a = (per_context[x].cumsum(axis=1) > rng.random(x.size)[:, None]).argmax(axis=1)
    marginal = marginal_action_dist(a, np.zeros_like(a), per_context[x, a], 3, 1)
    np.testing.assert_allclose(marginal[:, 0], per_context.mean(axis=0), atol=0.01)


def test_a_policies_target_ranks_by_the_reward_model():
    q_hat = np.tile(np.array([0.1, 0.5, 0.3, 0.2]), (6, 1))
    actions, positions = np.array([1, 2, 0, 1, 2, 3]), np.array([0, 1, 0, 1, 0, 1])
    target = build_target(
        "greedy:floor=0",
        q_hat=q_hat,
        actions=actions,
        positions=positions,
        propensity=np.full(6, 0.25),
        n_items=4,
    )
    np.testing.assert_array_equal(target.propensity, [1, 1, 0, 0, 0, 0])
    soft = build_target(
        "softmax:temperature=0.5",
        q_hat=q_hat,
        actions=actions,
        positions=positions,
        propensity=np.full(6, 0.25),
        n_items=4,
    )
    np.testing.assert_allclose(soft.action_dist.sum(axis=1), 1.0)
    assert soft.action_dist[0].argmax() == 1


def test_serendip_evaluate_reads_an_impressions_file_and_prints_the_table(tmp_path, capsys):
    path = write_table(impressions(n_slates=200, uniform=False), tmp_path / "log.parquet", "impressions")
    cfg = tyro.cli(
        EvaluateConfig,
        args=[
            "--log",
            str(path),
            "--policy",
            "logged",
            "uniform",
            "greedy",
            "--n-boot",
            "100",
            "--folds",
            "2",
            "--out",
            str(tmp_path / "t.csv"),
        ],
    )
    table = evaluate(cfg)
    out = capsys.readouterr().out
    assert "95% CI" in out and "sndr" in out
    assert set(table["policy"]) == {"logged", "uniform", "greedy"}
    assert set(table["estimator"]) == {"ips", "snips", "dm", "dr", "sndr"}
    logged_ips = table[(table["policy"] == "logged") & (table["estimator"] == "ips")]["value"].item()
    assert logged_ips == pytest.approx(pd.read_parquet(path)["reward"].mean())
    assert len(pd.read_csv(tmp_path / "t.csv")) == len(table)


@pytest.mark.skipif(not OBD.exists(), reason="the shared OBD sample is not on this machine")
def test_serendip_evaluate_on_the_obd_random_log_returns_its_ctr_for_the_logged_policy(capsys):
    table = evaluate(
        EvaluateConfig(obd=OBD, policy=("logged",), estimators=("replay", "ips", "dr"), n_boot=50, folds=2)
    )
    np.testing.assert_allclose(table["value"], 0.0038, atol=1e-4)
    assert "10000 logged rows, 38 total reward" in capsys.readouterr().out


def test_the_cli_registry_line_dispatches_to_evaluate(tmp_path, monkeypatch, capsys):
    from serendip import cli

    monkeypatch.setitem(cli.COMMANDS, ("evaluate",), "recsys.ope.evaluate:EvaluateConfig:evaluate")
    path = write_table(impressions(n_slates=100), tmp_path / "log.csv", "impressions")
    assert cli.main(["evaluate", "--log", str(path), "--policy", "uniform", "--n-boot", "50"]) == 0
    assert "uniform    replay" in capsys.readouterr().out
