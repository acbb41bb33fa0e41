"""The bandit's durable state without Ray: replay equals the acknowledged state, feedback applies once,
the reward window closes with reward 0, reconfiguration keeps posteriors, the log is the impressions table."""

import asyncio
import contextlib

import numpy as np
import pandas as pd
import pytest
from clock import Clock

from recsys.data.served_log import read_served_log
from recsys.policies import Arm, Context
from serving.bandit_state import BanditState, ExpiredImpression, UnknownImpression
from serving.snapshot import read_snapshot
from serving.config import ServeConfig
from serving.messages import ArmRoute, FeaturesNeeded

ARMS = [Arm("greedy", name="control"), Arm("epsilon_greedy", {"epsilon": 0.3}, name="explore"),
        Arm("thompson", name="ts"), Arm("linucb", name="lin")]


def context(rng, n=30, d=4):
    return Context(np.arange(100, 100 + n), rng.normal(size=n), rng.normal(size=(n, d)), rng.uniform(0.01, 0.3, n))


def open_state(tmp_path, clock, arms=ARMS, **kw):
    settings = ServeConfig(model="m", state_dir=tmp_path, reward_window_s=60, snapshot_every=kw.pop("snapshot_every", 7),
                              log_batch_rows=10, **kw)
    return BanditState(settings, arms, clock=clock)


def crash(state):
    """What a SIGKILL leaves: files as they are; only the kernel's lock goes away."""
    state.lock.release()


def serve_and_feedback(state, rng, users, clicks_per_slate=2):
    acked = 0

    async def run():
        nonlocal acked
        for user in users:
            body = state.select(user, context(rng), 5)
            for item in body["items"][:clicks_per_slate]:
                assert await state.feedback(body["impression_id"], item["item_id"], reward=1.0) == "accepted"
                acked += 1

    asyncio.run(run())
    return acked


def policy_arrays(state):
    return {key: {k: v.tolist() for k, v in p.state_dict()[0].items()} for key, p in state.policies.items()}


def test_a_crashed_writer_is_replayed_to_the_acknowledged_state(tmp_path):
    clock, rng = Clock(), np.random.default_rng(0)
    state = open_state(tmp_path, clock)
    acked = serve_and_feedback(state, rng, range(40))
    before = (state.stats(), policy_arrays(state))
    crash(state)
    again = open_state(tmp_path, clock)
    after = (again.stats(), policy_arrays(again))
    assert again.replayed > 0 and again.snapshot_lsn > 0  # snapshot + WAL tail
    assert sum(a["counts"]["feedback"] for a in after[0]["arms"]) == acked
    for key in ("wal_lsn", "pending_impressions", "arms"):
        assert after[0][key] == before[0][key]
    assert after[1] == before[1]


def test_a_snapshot_written_while_the_bandit_learns_holds_the_state_it_began_with(tmp_path):
    """The deployment writes a snapshot's files in a worker thread while feedback goes on: the files hold
    the state copied when it began, the WAL keeps what came after, and a restart replays to the
    acknowledged state."""
    clock, rng = Clock(), np.random.default_rng(7)
    state = open_state(tmp_path, clock, snapshot_every=10**6)
    acked = serve_and_feedback(state, rng, range(15))
    lsn, write = state.begin_snapshot()
    began = policy_arrays(state)
    acked += serve_and_feedback(state, rng, range(15, 30))  # learning goes on; no second snapshot starts
    assert policy_arrays(state) != began and not state.snapshot_due()
    path = write()
    state.end_snapshot(lsn)
    written = read_snapshot(path)
    assert written.lsn == lsn and state.snapshot_lsn == lsn
    assert {key: {k: v.tolist() for k, v in p.state_dict()[0].items()} for key, p in written.policies.items()} == began
    before = (state.stats(), policy_arrays(state))
    crash(state)
    again = open_state(tmp_path, clock, snapshot_every=10**6)
    assert again.snapshot_lsn == lsn and again.replayed > 0
    assert sum(a["counts"]["feedback"] for a in again.stats()["arms"]) == acked
    assert policy_arrays(again) == before[1]


def test_feedback_is_applied_once_per_impression_item_and_event(tmp_path):
    clock, rng = Clock(), np.random.default_rng(1)
    state = open_state(tmp_path, clock, arms=[Arm("thompson", name="ts")])
    body = state.select(1, context(rng), 3)
    item = body["items"][0]["item_id"]
    statuses = asyncio.run(_feedback_twice(state, body["impression_id"], item))
    assert statuses == ["accepted", "duplicate", "accepted", "duplicate"]
    assert state.stats()["arms"][0]["counts"]["feedback"] == 2
    assert state.policies[("ts", "thompson")].n_updates == 1  # the slot is learned once


async def _feedback_twice(state, impression_id, item):
    return [await state.feedback(impression_id, item, event="click"), await state.feedback(impression_id, item, event="click"),
            await state.feedback(impression_id, item, reward=1.0), await state.feedback(impression_id, item, reward=0.5)]


@pytest.mark.parametrize(
    ("tamper", "error", "match"),
    [
        (lambda iid, item: (iid[:-1] + ("A" if iid[-1] != "A" else "B"), item), UnknownImpression,
         "signature does not verify"),
        (lambda iid, item: ("nonsense", item), UnknownImpression, "impression id is malformed"),
        (lambda iid, item: (iid, 99_999), UnknownImpression, "item_id 99999 was not shown in impression"),
    ],
)
def test_unknown_feedback_is_refused(tmp_path, tamper, error, match):
    clock, rng = Clock(), np.random.default_rng(2)
    state = open_state(tmp_path, clock)
    body = state.select(1, context(rng), 3)
    iid, item = tamper(body["impression_id"], body["items"][0]["item_id"])
    with pytest.raises(error, match=match):
        asyncio.run(state.feedback(iid, item, reward=1.0))


def test_the_window_closes_with_reward_zero_and_late_feedback_is_refused(tmp_path):
    clock, rng = Clock(), np.random.default_rng(3)
    state = open_state(tmp_path, clock, arms=[Arm("thompson", name="ts")])
    ctx = context(rng)
    body = state.select(5, ctx, 4, model_version="m1@abc", user_vector=np.arange(3.0))
    shown = [i["item_id"] for i in body["items"]]
    asyncio.run(state.feedback(body["impression_id"], shown[1], reward=1.0))
    clock.now += 61
    with pytest.raises(ExpiredImpression, match="the 60 s reward window has closed"):
        asyncio.run(state.feedback(body["impression_id"], shown[0], reward=1.0))
    assert state.stats()["pending_impressions"] == 0
    assert state.policies[("ts", "thompson")].n_updates == 4  # 1 click + 3 default zeros
    state.log.interval_s = 0
    timed = []
    state.timed = lambda stage: timed.append(stage) or contextlib.nullcontext()
    state.tick()
    assert "log_flush" in timed  # the periodic write is a stage of its own in /stats
    log, decisions = read_served_log(tmp_path / "impressions")
    assert log["item_id"].tolist() == shown and log["position"].tolist() == [0, 1, 2, 3]
    assert log["reward"].tolist() == [0.0, 1.0, 0.0, 0.0]
    assert (log["policy"] == "ts").all() and log["propensity"].between(0, 1).all()
    # the decision context: every candidate with its score and prior, the model version and user vector
    (decision,) = decisions.itertuples()
    assert decision.impression_id == body["impression_id"] and decision.model_version == "m1@abc"
    assert decision.candidate_ids.tolist() == ctx.item_ids.tolist()
    np.testing.assert_allclose(decision.candidate_scores, ctx.scores, rtol=1e-6)
    np.testing.assert_allclose(decision.candidate_prior, ctx.prior, rtol=1e-6)
    np.testing.assert_array_equal(decision.user_vector, [0.0, 1.0, 2.0])
    day = log["ts"].iloc[0].strftime("%Y-%m-%d")
    assert (tmp_path / "impressions" / f"date={day}" / "part-000000.parquet").exists()
    assert pd.read_parquet(tmp_path / "impressions")["item_id"].tolist() == shown  # a plain dataset directory


def test_reconfigure_changes_exploration_and_keeps_the_posterior(tmp_path):
    clock, rng = Clock(), np.random.default_rng(4)
    state = open_state(tmp_path, clock, arms=[Arm("epsilon_greedy", {"epsilon": 0.0}, name="main")])
    serve_and_feedback(state, rng, range(10))
    learned = state.policies[("main", "epsilon_greedy")].n_updates
    assert all(not i["explored"] for i in state.select(1, context(rng), 5)["items"])
    state.reconfigure([Arm("epsilon_greedy", {"epsilon": 1.0}, name="main")])
    policy = state.policies[("main", "epsilon_greedy")]
    assert policy.epsilon == 1.0 and policy.n_updates == learned
    explored = [i["explored"] for _ in range(10) for i in state.select(1, context(rng), 5)["items"]]
    assert np.mean(explored) > 0.5
    crash(state)
    assert open_state(tmp_path, clock, arms=None).policies[("main", "epsilon_greedy")].epsilon == 1.0


def test_bad_reconfiguration_is_refused_before_it_is_logged(tmp_path):
    state = open_state(tmp_path, Clock())
    lsn = state.lsn
    with pytest.raises(ValueError, match="policy 'bogus' is unknown"):
        state.reconfigure([Arm("bogus", name="a")])
    with pytest.raises(ValueError, match="has no parameter 'epsilon'"):
        state.reconfigure([Arm("greedy", {"epsilon": 0.1}, name="a")])
    assert state.lsn == lsn


def test_purchased_items_are_not_recommended_again(tmp_path):
    clock, rng = Clock(), np.random.default_rng(5)
    state = open_state(tmp_path, clock, arms=[Arm("greedy", name="g")])
    ctx = context(rng, n=6)
    body = state.select(9, ctx, 3)
    bought = body["items"][0]["item_id"]
    asyncio.run(state.feedback(body["impression_id"], bought, event="purchase"))
    for _ in range(5):
        assert bought not in [i["item_id"] for i in state.select(9, ctx, 6)["items"]]
    assert bought in [i["item_id"] for i in state.select(10, ctx, 6)["items"]]


def test_a_linear_arm_asks_for_features_and_only_it_keeps_them(tmp_path):
    clock, rng = Clock(), np.random.default_rng(6)
    state = open_state(tmp_path, clock, arms=[Arm("linucb", name="lin")])
    ctx = context(rng)
    bare = Context(ctx.item_ids, ctx.scores, None, ctx.prior)
    lsn_before = state.lsn
    with pytest.raises(FeaturesNeeded, match="arm 'lin' .linucb. reads features"):
        state.select(1, bare, 3)
    assert state.arm_table() == [ArmRoute(1.0, True)] and state.lsn == lsn_before
    body = state.select(1, ctx, 3)
    assert state.pending.get(int(body["impression_id"].split(".")[0], 16)).features.shape == (3, 4)
    state.reconfigure([Arm("thompson", name="ts")])
    body = state.select(1, ctx, 3)
    assert state.arm_table() == [ArmRoute(1.0, False)]
    assert state.pending.get(int(body["impression_id"].split(".")[0], 16)).features is None
