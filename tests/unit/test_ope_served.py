"""Off-policy evaluation on a log written by the real serving state machine (no Ray): each served
arm, replayed on the logged decision contexts and learning from its own slates, recovers its own
on-policy value; errors name what is missing."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from clock import Clock
from scipy.special import logit

from recsys.data.served_log import read_served_log
from recsys.ope.served import ServedEvaluation, ServedLogError, evaluate_served, replay_target
from recsys.policies import Arm, Context, make_policy
from serving.bandit_state import BanditState
from serving.config import ServeConfig

ARMS = {"control": "static", "learner": "greedy", "ts": "thompson:n_draws=50"}


@pytest.fixture(scope="module")
def served_log(tmp_path_factory):
    """1,500 slates of 3 from 20 of 40 products, three arms split by user, clicks from a hidden truth:
    the model's prior times each product's own appeal (which only the learners can find)."""
    root = tmp_path_factory.mktemp("state")
    rng, clock = np.random.default_rng(0), Clock()
    prior = rng.uniform(0.02, 0.2, 40)
    truth = np.clip(prior * rng.lognormal(0.0, 0.7, 40), 0, 1)
    arms = [Arm(spec.partition(":")[0], {"n_draws": 50} if name == "ts" else {}, name) for name, spec in ARMS.items()]
    state = BanditState(ServeConfig(model="m", state_dir=root, reward_window_s=5, log_batch_rows=500), arms, clock=clock)

    async def serve():
        for user in range(1500):
            shown = rng.choice(40, 20, replace=False)
            ctx = Context(1000 + shown, logit(prior[shown]), None, prior[shown])
            body = state.select(user, ctx, 3, model_version="m@test", user_vector=None)
            for item in body["items"]:
                if rng.random() < truth[item["item_id"] - 1000]:
                    await state.feedback(body["impression_id"], item["item_id"], event="click")
            clock.now += 0.5
            state.tick()

    asyncio.run(serve())
    clock.now += 60
    state.log.interval_s = 0
    state.tick()
    state.close()
    return root / "impressions"


def test_each_served_arm_recovers_its_own_online_value(served_log):
    """With every arm known, the logging propensity is the arms' mixture (balanced IPS), so even plain
    IPS is tight: a near-deterministic arm's floor-only rows no longer carry weights of 1e4."""
    impressions, decisions = read_served_log(served_log)
    table = evaluate_served(impressions, decisions, ("static",), arms=ARMS, n_boot=200, window_s=5.0)
    checks = table[table["policy"].str.startswith("arm:")]
    assert set(checks["policy"]) == {f"arm:{a}" for a in ARMS} and (table["logging"] == "pooled over arms").all()
    for row in checks.itertuples():
        assert row.rel_error < 0.05, row
        assert row.covers, row


def test_without_every_arm_the_logged_propensities_are_used(served_log):
    impressions, decisions = read_served_log(served_log)
    table = evaluate_served(impressions, decisions, (), arms={"ts": ARMS["ts"]}, estimators=("snips",), n_boot=0)
    assert (table["logging"] == "logged").all()


def test_the_replay_on_servings_clock_ranks_as_the_arm_did(served_log):
    # Serving teaches a click at once and an unclicked slot only when its window (5 s) closes; a replay
    # that learns on that clock shows what the greedy arm showed, one that learns everything at once does not.
    impressions, decisions = read_served_log(served_log)
    served = ServedEvaluation.prepare(impressions, decisions, estimators=("ips",))
    imp = served.impressions
    own = imp["policy"].to_numpy() == "learner"

    def agreement(window_s: float) -> float:
        target = replay_target(make_policy("greedy"), served.slates, len(imp), imp, None, "learner", 0, window_s)
        return float(np.mean(np.isclose(target.propensity[own], imp["propensity"].to_numpy()[own])))

    assert agreement(5.0) == 1.0
    assert agreement(0.0) < 0.99


def test_a_log_without_decision_contexts_says_so(served_log):
    impressions, _ = read_served_log(served_log)
    with pytest.raises(ServedLogError, match="no decision contexts"):
        evaluate_served(impressions, None, ("greedy",))


def test_a_linear_target_without_the_model_says_what_to_pass(served_log):
    impressions, decisions = read_served_log(served_log)
    with pytest.raises(ServedLogError, match="pass --model"):
        evaluate_served(impressions, decisions, ("linucb",), estimators=("ips",), n_boot=0)


def test_the_exploration_sweeps_offline_objective_reads_a_served_log_directory(served_log):
    """`serendip tune exploration --log DIR` scores a trial on the served log's contexts."""
    from tuning.offline_objective import LogObjective, OfflineConfig

    arms = tuple(f"{name}={spec}" for name, spec in ARMS.items())
    pooled = LogObjective(served_log, None, OfflineConfig(estimator="snips", n_boot=50, arm=arms, reward_window_s=5))
    pooled.check(("greedy", "ucb1"))
    metrics = pooled.evaluate(Arm("ucb1", {"c": 0.1, "prior_strength": 10.0}))
    assert metrics["reward_low"] <= metrics["reward"] <= metrics["reward_high"] and metrics["n"] == 4500
    assert 0.2 < metrics["reward"] < 0.7
    alone = LogObjective(served_log, None, OfflineConfig(estimator="snips", n_boot=50))
    alone.check(("ucb1",))
    assert metrics["ess"] > alone.evaluate(Arm("ucb1", {"c": 0.1, "prior_strength": 10.0}))["ess"]  # pooling helps
