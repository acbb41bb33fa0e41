"""A live model update without Ray: linear posteriors belong to one model version, per-item evidence
survives, feedback on a slate the old model scored never teaches the new posterior, a crash replays
to the same state, and the catalog hands each model only its own vectors."""

import asyncio

import numpy as np
import pytest
from clock import Clock

from recsys.policies import Arm, Context
from serving.bandit_state import BanditState
from serving.catalog import CatalogStore
from serving.config import ServeConfig

ARMS = [Arm("thompson", name="items"), Arm("linucb", name="lin")]


def context(rng, d, n=20):
    return Context(np.arange(100, 100 + n), rng.normal(size=n), rng.normal(size=(n, d)), rng.uniform(0.01, 0.3, n))


def open_state(tmp_path, clock, arms=ARMS, snapshot_every=1000):
    settings = ServeConfig(model="m", state_dir=tmp_path, reward_window_s=60, snapshot_every=snapshot_every, log_batch_rows=10)
    return BanditState(settings, arms, clock=clock)


def crash(state):
    state.lock.release()


def user_of(state, arm):
    return next(u for u in range(1000) if state.arm_for(u).name == arm)


def click_all(state, body):
    async def run():
        return [await state.feedback(body["impression_id"], i["item_id"], reward=1.0) for i in body["items"]]

    return asyncio.run(run())


def learned(state):
    return {key: {k: v.tolist() for k, v in p.state_dict()[0].items()} | {"n": p.n_updates}
            for key, p in state.policies.items()}


def test_a_new_model_resets_linear_posteriors_and_keeps_item_evidence(tmp_path):
    clock, rng = Clock(), np.random.default_rng(0)
    state = open_state(tmp_path, clock)
    for arm in ("items", "lin"):
        click_all(state, state.select(user_of(state, arm), context(rng, 4), 3, model_version="A"))
    evidence = learned(state)[("items", "thompson")]
    assert state.model_version == "A" and state.policies[("lin", "linucb")].n_updates == 3
    assert asyncio.run(state.use_model("B")) is True
    assert asyncio.run(state.use_model("B")) is False  # the same model again changes nothing
    lin = state.policies[("lin", "linucb")]
    assert state.model_version == "B" and lin.n_updates == 0 and lin.posterior.dim == 0
    assert lin.alpha == 1.0 and learned(state)[("items", "thompson")] == evidence
    assert state.stats()["model_version"] == "B"


def test_feedback_on_a_slate_the_old_model_scored_skips_the_linear_posterior(tmp_path):
    """Served under A, answered under B (200, not 404): the per-item arm learns it, the linear one does not."""
    clock, rng = Clock(), np.random.default_rng(1)
    state = open_state(tmp_path, clock)
    old = {arm: state.select(user_of(state, arm), context(rng, 4), 3, model_version="A") for arm in ("items", "lin")}
    asyncio.run(state.use_model("B"))
    # a scorer replica still on A during the rollout: its 4-wide features never meet B's 6-wide posterior
    lagging = state.select(user_of(state, "lin"), context(rng, 4), 3, model_version="A")
    fresh = state.select(user_of(state, "lin"), context(rng, 6), 3, model_version="B")
    for body in (old["items"], old["lin"], lagging, fresh):
        assert click_all(state, body) == ["accepted"] * 3
    lin, items = state.policies[("lin", "linucb")], state.policies[("items", "thompson")]
    assert lin.n_updates == 3 and lin.posterior.dim == 6  # only the slate B scored
    assert items.n_updates == 3  # the per-item arm learns from the old slate
    counts = {a["arm"]: a["counts"]["feedback"] for a in state.stats()["arms"]}
    assert counts == {"items": 3, "lin": 9}  # every answer still counts for the A/B report
    clock.now += 61  # the window closes on every slate: the default zeros follow the same rule
    state.select(user_of(state, "lin"), context(rng, 6), 2, model_version="B")
    state.tick()
    assert lin.n_updates == 3


def test_a_crash_after_a_model_change_replays_to_the_same_state(tmp_path):
    clock, rng = Clock(), np.random.default_rng(2)
    state = open_state(tmp_path, clock, snapshot_every=5)
    for version in ("A", "B"):
        asyncio.run(state.use_model(version))
        for _ in range(3):
            for arm in ("items", "lin"):
                click_all(state, state.select(user_of(state, arm), context(rng, 4), 2, model_version=version))
    old_slate = state.select(user_of(state, "lin"), context(rng, 4), 2, model_version="A")
    asyncio.run(state.use_model("C"))
    before = (learned(state), state.stats())
    crash(state)
    again = open_state(tmp_path, clock, arms=None, snapshot_every=5)
    assert again.replayed > 0 and again.snapshot_lsn > 0  # snapshot + WAL tail
    assert (learned(again), again.stats()["model_version"]) == (before[0], "C")
    assert again.stats()["wal_lsn"] == before[1]["wal_lsn"]
    assert click_all(again, old_slate) == ["accepted"] * 2 and again.policies[("lin", "linucb")].n_updates == 0


def test_the_first_model_a_state_learns_of_resets_nothing(tmp_path):
    """A state written before model versions were kept learned its posterior in the served model's space."""
    clock, rng = Clock(), np.random.default_rng(3)
    state = open_state(tmp_path, clock)
    click_all(state, state.select(user_of(state, "lin"), context(rng, 4), 3))
    asyncio.run(state.use_model("A"))
    assert state.policies[("lin", "linucb")].n_updates == 3 and state.model_version == "A"
    with pytest.raises(ValueError, match="model version '' must be a non-empty string"):
        asyncio.run(state.use_model(""))


def test_the_catalog_hands_each_model_only_its_own_vectors(tmp_path):
    store = CatalogStore(tmp_path)
    rows = [{"item_id": i, "title": f"t{i}"} for i in (50, 51, 52)]
    store.add(np.array([50]), np.ones((1, 16), np.float32), rows[:1])  # a file from before models were named
    store.add(np.array([51, 52]), np.full((2, 16), 2, np.float32), rows[1:], model="A")
    store.add(np.array([50, 51]), np.full((2, 8), 3, np.float32), rows[:2], model="B")  # B re-embedded, 8-wide
    reopened = CatalogStore(tmp_path)
    b = reopened.since(0, "B")
    assert b.item_ids.tolist() == [50, 51] and b.vectors.shape == (2, 8) and [r["item_id"] for r in b.to_embed] == [52]
    a = reopened.since(0, "A")
    assert a.item_ids.tolist() == [52] and (a.vectors == 2).all()
    assert [r["item_id"] for r in a.to_embed] == [50, 51]  # newest entries are B's (or unnamed)
    assert reopened.since(1, "A").item_ids.tolist() == [52] and reopened.since(3, "B").to_embed == []
    assert reopened.item_ids().tolist() == [50, 51, 52]
