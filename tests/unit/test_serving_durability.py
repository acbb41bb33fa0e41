"""Nothing lost, without Ray: a failed WAL reports unhealthy and answers 503, a poison record
is quarantined instead of bricking replay, every feedback event counts once with the strongest reward
winning, impressions are fsynced before the slate is answered, and pending impressions are bounded."""

import asyncio
import json
from types import SimpleNamespace

import numpy as np
import pytest
from clock import Clock

from recsys.policies import Arm, Context
from serving.bandit import Bandit
from serving.bandit_state import BanditState, Overloaded
from serving.config import ServeConfig
from serving.ingress import http_error
from serving.wal import WalFailed


def context(rng, n=20, d=4):
    return Context(np.arange(100, 100 + n), rng.normal(size=n), rng.normal(size=(n, d)), rng.uniform(0.01, 0.3, n))


def open_state(tmp_path, arms, clock=None, **kw):
    settings = ServeConfig(model="m", state_dir=tmp_path, reward_window_s=60, snapshot_every=1000, log_batch_rows=10, **kw)
    return BanditState(settings, arms, clock=clock or Clock())


def crash(state):
    state.lock.release()


def run(coro):
    return asyncio.run(coro)


def learned(policy):
    return {k: np.round(v, 12).tolist() for k, v in policy.state_dict()[0].items()} | {"n": policy.n_updates}


# -- 1. a failed WAL: 503 with Retry-After, and the replica reports unhealthy -------------------------------


def test_a_failed_fsync_stops_feedback_and_makes_the_bandit_unhealthy(tmp_path, monkeypatch):
    state = open_state(tmp_path, [Arm("thompson", name="ts")])
    body = state.select(1, context(np.random.default_rng(0)), 3)
    shell = SimpleNamespace(state=state, _ensure_ticker=lambda: None)
    run(Bandit.func_or_class.check_health(shell))  # healthy

    def broken_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr("serving.wal.os.fsync", broken_fsync)
    with pytest.raises(WalFailed, match="stopped after"):
        run(state.feedback(body["impression_id"], body["items"][0]["item_id"], event="click"))
    with pytest.raises(RuntimeError, match="WAL stopped"):
        run(Bandit.func_or_class.check_health(shell))


@pytest.mark.parametrize(("err", "status", "says"), [
    (WalFailed("disk gone"), 503, "write-ahead log failed"),
    (SimpleNamespace(cause=WalFailed("disk gone")), 503, "write-ahead log failed"),  # as a replica's error arrives
    (Overloaded("full"), 429, "full"),
    (RuntimeError("replica died"), 503, "RuntimeError"),
])
def test_downstream_errors_answer_with_retry_after_never_500(err, status, says):
    if isinstance(err, SimpleNamespace):
        import ray.exceptions

        err = ray.exceptions.RayTaskError("feedback", "trace", err.cause).as_instanceof_cause()
    answer = http_error("feedback", err)
    assert answer.status_code == status and says in answer.detail
    assert answer.headers["Retry-After"].isdigit()


# -- 2. poison records: validated before the append, quarantined on replay ---------------------------------------


def test_a_record_that_cannot_apply_is_never_appended(tmp_path):
    state = open_state(tmp_path, [Arm("thompson", name="ts")])
    body = state.select(1, context(np.random.default_rng(1)), 3)
    before = state.wal.appended_lsn
    with pytest.raises(ValueError, match="not in \\[0, 1\\]"):
        run(state.feedback(body["impression_id"], body["items"][0]["item_id"], reward=1.5))
    assert state.wal.appended_lsn == before
    assert run(state.feedback(body["impression_id"], body["items"][0]["item_id"], reward=1.0)) == "accepted"


def test_a_poison_record_is_quarantined_and_the_rest_replays(tmp_path):
    clock, rng = Clock(), np.random.default_rng(2)
    state = open_state(tmp_path, [Arm("thompson", name="ts")], clock)
    body = state.select(1, context(rng), 3)
    run(state.feedback(body["impression_id"], body["items"][0]["item_id"], event="click"))
    run(state.wal.commit(state.lsn))
    good = learned(state.policies[("ts", "thompson")])
    lsn, serial = state.lsn, state.next_serial
    crash(state)
    # Crafted records: feedback for a slot the slate never had, and a slate whose propensity 0 the
    # impression log refuses when its part is written; then a good slate and its feedback.
    bad_fb = {"t": "fb", "serial": serial - 1, "slot": 99, "reward": 1.0, "event": "click", "ms": 0}
    bad_imp = {"t": "imp", "serial": serial, "ms": int(clock.now * 1000), "user": 2, "arm": "ts", "policy": "thompson",
               "items": [100], "prop": [0.0], "score": [0.5], "expl": [False], "feat": None, "prior": None, "ctx": None}
    expire = {"t": "exp", "serials": [serial]}
    flush = {"t": "flush", "part": 0}
    (segment,) = (tmp_path / "wal").glob("wal-*.jsonl")
    with segment.open("a") as f:
        for i, record in enumerate([bad_fb, bad_imp, expire, flush], start=1):
            f.write(json.dumps({"lsn": lsn + i, **record}) + "\n")
    again = open_state(tmp_path, None, clock)
    assert again.lsn == lsn + 4 and again.replayed >= 4
    after = learned(again.policies[("ts", "thompson")])  # the good click, then the bad slate's default 0
    assert after["n"] == good["n"] + 1 and after["item_ids"] == [*good["item_ids"], 100]
    assert after["clicks"] == [*good["clicks"], 0.0]
    assert sum(a["counts"]["feedback"] for a in again.stats()["arms"]) == 1
    quarantined = sorted(p.name for p in (tmp_path / "quarantine").iterdir())
    assert quarantined == [f"lsn-{lsn + 1:012d}.json", f"lsn-{lsn + 4:012d}.json"]
    poison = json.loads((tmp_path / "quarantine" / quarantined[0]).read_text())
    assert poison["record"]["slot"] == 99 and "IndexError" in poison["error"]
    assert json.loads((tmp_path / "quarantine" / quarantined[1]).read_text())["record"]["rows"]["rows"]["propensity"] == [0.0]
    # it keeps serving, and its own next flush writes (the refused rows no longer block the log)
    body = again.select(3, context(rng), 2)
    assert run(again.feedback(body["impression_id"], body["items"][0]["item_id"], event="click")) == "accepted"
    clock.now += 61
    again.log.interval_s = 0
    again.tick()
    assert again.log.waiting == 0 and again.log.next_part == 2
    crash(again)
    assert open_state(tmp_path, None, clock).lsn == again.lsn  # a second replay quarantines the same files


# -- 3. every event once; the strongest reward wins ----------------------------------------------------------------


def events(state, body, slot, names):
    iid, item = body["impression_id"], body["items"][slot]["item_id"]

    async def send():
        return [await state.feedback(iid, item, event=e) for e in names]

    return run(send())


@pytest.mark.parametrize("policy", ["thompson", "linucb"])
def test_view_then_click_learns_what_a_click_alone_teaches(tmp_path, policy):
    arms = [Arm(policy, name="a")]
    states = [open_state(tmp_path / name, arms) for name in ("upgraded", "direct")]
    bodies = [s.select(1, context(np.random.default_rng(3)), 3) for s in states]
    assert events(states[0], bodies[0], 0, ["view", "click", "click", "view"]) == [
        "accepted", "accepted", "duplicate", "duplicate"]
    assert events(states[1], bodies[1], 0, ["click"]) == ["accepted"]
    upgraded, direct = (learned(s.policies[("a", policy)]) for s in states)
    assert upgraded == direct and upgraded["n"] == 1
    counts = states[0].stats()["arms"][0]["counts"]
    assert counts["feedback"] == 2 and counts["reward_sum"] == 1.0 and counts["clicked"] == 1
    crash(states[0])
    assert learned(open_state(tmp_path / "upgraded", None).policies[("a", policy)]) == upgraded


def test_a_purchase_after_a_click_reaches_the_purchase_exclusion(tmp_path):
    state = open_state(tmp_path, [Arm("thompson", name="ts")])
    ctx = context(np.random.default_rng(4))
    body = state.select(7, ctx, 3)
    bought = body["items"][1]["item_id"]
    assert events(state, body, 1, ["click", "purchase", "purchase"]) == ["accepted", "accepted", "duplicate"]
    assert bought in state.purchases[7]
    assert bought not in [i["item_id"] for i in state.select(7, ctx, 20)["items"]]
    crash(state)
    assert bought in open_state(tmp_path, None).purchases[7]


def test_a_weaker_event_after_a_stronger_one_changes_no_reward(tmp_path):
    state = open_state(tmp_path, [Arm("thompson", name="ts")])
    body = state.select(1, context(np.random.default_rng(5)), 3)
    events(state, body, 0, ["purchase"])
    before = learned(state.policies[("ts", "thompson")])
    assert events(state, body, 0, ["view", "click"]) == ["accepted", "accepted"]
    assert learned(state.policies[("ts", "thompson")]) == before
    assert state.pending.get(1).rewards[0] == 1.0


# -- 4. a slate is answered only once its impression is durable --------------------------------------------------


def test_recommend_returns_after_the_impression_is_fsynced(tmp_path):
    state = open_state(tmp_path, [Arm("thompson", name="ts")], wal_group_wait_s=0.05)
    body = run(state.recommend(1, context(np.random.default_rng(6)), 3))
    assert body["impression_id"] and state.wal.durable_lsn == state.lsn == state.wal.appended_lsn


# -- 7. bounded memory ---------------------------------------------------------------------------------------------------


def test_pending_impressions_are_bounded_and_free_as_windows_close(tmp_path):
    clock, rng = Clock(), np.random.default_rng(7)
    state = open_state(tmp_path, [Arm("linucb", name="lin")], clock, max_pending_mb=0.01)
    served = 0
    with pytest.raises(Overloaded, match="max_pending_mb=0.01"):
        for _ in range(1000):
            state.select(1, context(rng), 5)
            served += 1
    assert 0 < served < 1000 and state.pending.nbytes >= 0.01 * 2**20
    clock.now += 61
    state.expire()
    assert state.pending.nbytes == 0
    state.select(1, context(rng), 5)
