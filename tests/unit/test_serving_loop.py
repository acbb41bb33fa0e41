"""No CPU work on a replica's event loop, one writer all the same, and typed hops.

The scorer's batch and the bandit's draws run in worker threads; the loop (requests, health checks,
queue-length probes; in Serve's throughput mode, Serve's own request handling) keeps ticking meanwhile,
and every change of the bandit's state still happens one at a time on the loop.
"""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from types import SimpleNamespace

import numpy as np
import pytest
import ray

from recsys.model import ItemTable
from recsys.policies import Arm, Context
from serving.api import RecommendRequest
from serving.bandit_state import BanditState
from serving.catalog import CatalogFull
from serving.config import ServeConfig
from serving.ingress import http_error
from serving.messages import (
    ExpiredImpression,
    FeaturesNeeded,
    Overloaded,
    ScoreRequest,
    UnknownImpression,
    unwrap,
)
from serving.retrieval import Retriever
from serving.scorer import Scorer
from serving.telemetry import StageTimes
from serving.wal import WalFailed


async def ticks_while(coro, step_s: float = 0.002):
    """Run ``coro`` as a task and tick the loop meanwhile: its result, the gaps between ticks, the time taken."""
    ticks, task = [time.perf_counter()], asyncio.ensure_future(coro)
    while not task.done():
        await asyncio.sleep(step_s)
        ticks.append(time.perf_counter())
    return await task, np.diff(ticks), ticks[-1] - ticks[0]


def big_retriever(model, n_items=200_000):
    rng = np.random.default_rng(0)
    table = ItemTable(np.arange(n_items), rng.normal(size=(n_items, 16)).astype(np.float32))
    return Retriever(model, table, retrieve_n=200, history_len=8)


class FakeMetrics:
    def __init__(self):
        self.stages = StageTimes()

    def timed(self, stage):
        from contextlib import contextmanager

        @contextmanager
        def clock():
            start = time.perf_counter()
            yield
            self.stages.add(stage, (time.perf_counter() - start) * 1000)
        return clock()


def scorer_without_ray(retriever):
    """The Scorer deployment's own class with what ``__init__`` would load, and no bandit to sync with."""
    scorer = object.__new__(Scorer.func_or_class)
    scorer.served = SimpleNamespace(retriever=retriever, synced=True)
    scorer.metrics = FakeMetrics()
    scorer.reranker = None  # ServeConfig.rerank_model off, the default
    scorer._scoring = ThreadPoolExecutor(max_workers=1)
    retriever.timed = scorer.metrics.timed
    return scorer


def test_the_loop_keeps_ticking_while_a_large_batch_is_scored(model):
    """Scorer._score_batch (the @serve.batch body) scores in its thread: the loop stalls for no more than a few ms."""
    retriever = big_retriever(model)
    scorer = scorer_without_ray(retriever)
    rng = np.random.default_rng(1)
    batch = [ScoreRequest(int(u), history=rng.integers(0, 200_000, 8).tolist()) for u in range(256)]
    expected = retriever.candidates(batch[:3])
    cands, gaps, took = asyncio.run(ticks_while(Scorer.func_or_class._score_batch.__wrapped__(scorer, batch)))
    assert took > 0.2, f"scoring took {took:.3f}s: too short for the check to mean anything"
    assert gaps.max() < took / 4, f"the loop stalled {gaps.max():.3f}s of {took:.3f}s"
    assert len(cands) == 256 and all(c.context is not None and len(c.context.item_ids) == 200 for c in cands)
    for got, want in zip(cands[:3], expected, strict=True):
        np.testing.assert_array_equal(got.context.item_ids, want.context.item_ids)
    stages = scorer.metrics.stages.summary()
    assert {"user_tower", "retrieval", "scorer_batch"} <= set(stages) and stages["retrieval"]["count"] == 2


def heavy_state(tmp_path):
    """A Thompson arm whose propensities take thousands of Monte Carlo draws over many candidates."""
    settings = ServeConfig(model="m", state_dir=tmp_path, reward_window_s=60, wal_group_wait_s=0.0)
    return BanditState(settings, [Arm("thompson", {"n_draws": 10_000}, name="ts")])


def candidates(rng, n=400):
    return Context(np.arange(1000, 1000 + n), rng.normal(size=n), None, rng.uniform(0.01, 0.3, n))


def test_the_loop_keeps_ticking_while_the_bandit_draws(tmp_path):
    state = heavy_state(tmp_path)
    rng = np.random.default_rng(2)
    body, gaps, took = asyncio.run(ticks_while(state.recommend(1, candidates(rng), 10)))
    try:
        assert took > 0.1, f"the draw took {took:.3f}s: too short for the check to mean anything"
        assert gaps.max() < took / 3, f"the loop stalled {gaps.max():.3f}s of {took:.3f}s"
        assert len(body["items"]) == 10 and state.wal.durable_lsn >= state.lsn
    finally:
        state.close()


def test_changes_wait_for_a_draw_in_flight_so_the_state_keeps_one_writer(tmp_path):
    """Feedback arriving while a draw runs in its thread is applied after that slate is logged, never during."""
    state = heavy_state(tmp_path)
    rng = np.random.default_rng(3)
    first = state.select(1, candidates(rng), 5)
    order = []
    original_draw, original_log = state.draw, state.log_slate

    def draw(*args):
        order.append("draw start")
        drawn = original_draw(*args)
        order.append("draw end")
        return drawn

    def log_slate(drawn):
        order.append("slate logged")
        return original_log(drawn)

    state.draw, state.log_slate = draw, log_slate
    original_record = state.record_feedback
    state.record_feedback = lambda *a: (order.append("feedback applied"), original_record(*a))[1]

    async def both():
        slate = asyncio.ensure_future(state.recommend(2, candidates(rng), 5))
        await asyncio.sleep(0.01)  # the draw is in its thread now
        assert order == ["draw start"]
        status = await state.feedback(first["impression_id"], first["items"][0]["item_id"], event="click")
        return await slate, status

    try:
        body, status = asyncio.run(both())
        assert order == ["draw start", "draw end", "slate logged", "feedback applied"]
        assert status == "accepted" and body["impression_id"] is not None
        assert state.wal.durable_lsn == state.lsn == 4  # config, two slates, the click
    finally:
        state.close()


def test_a_linear_arm_without_features_logs_nothing(tmp_path):
    settings = ServeConfig(model="m", state_dir=tmp_path, reward_window_s=60)
    state = BanditState(settings, [Arm("linucb", name="lin")])
    try:
        before = state.lsn
        with pytest.raises(FeaturesNeeded):
            asyncio.run(state.recommend(1, candidates(np.random.default_rng(4), 20), 3))
        assert state.lsn == before and not state.writing.locked()
    finally:
        state.close()


def test_a_score_request_carries_the_validated_body():
    body = RecommendRequest(user_id=3, history=[1, 2], history_events=["view", "purchase"], query="scarf", k=4,
                            exclude=[9])
    request = ScoreRequest.of(body, catalog_version=7, with_features=False)
    assert request == ScoreRequest(3, [1, 2], ["view", "purchase"], "scarf", None, [9], 7, False)


def wrapped(err: Exception) -> Exception:
    """What a caller of a deployment handle catches: Ray's RayTaskError, an instance of the cause's class too."""
    return ray.exceptions.RayTaskError("method", "Traceback ... (Ray's text)", err).as_instanceof_cause()


@pytest.mark.parametrize(("err", "status", "detail"), [
    (UnknownImpression("impression_id 'x': no such impression was served"), 404, "no such impression was served"),
    (ExpiredImpression("impression_id 'x': the 60 s reward window has closed"), 410, "reward window has closed"),
    (Overloaded("12 pending impressions hold 9 MiB"), 429, "feedback: 12 pending impressions"),
    (CatalogFull("the catalog holds 10 items"), 429, "feedback: the catalog holds"),
    (WalFailed("disk full"), 503, "write-ahead log failed"),
    (RuntimeError("boom"), 503, "(RuntimeError)"),
])
def test_typed_errors_cross_the_handle_and_become_their_status(err, status, detail):
    for raised in (err, wrapped(err)):
        assert isinstance(unwrap(raised), type(err)) and str(unwrap(raised)) == str(err)
        answer = http_error("feedback", raised)
        assert answer.status_code == status and detail in answer.detail and "Traceback" not in answer.detail


def test_stage_times_summarise_per_stage():
    times = StageTimes(recent=4)
    for ms in (1.0, 2.0, 3.0, 4.0, 100.0):
        times.add("wal_commit", ms)
    summary = times.summary()["wal_commit"]
    assert summary["count"] == 5 and summary["mean_ms"] == 22.0 and summary["p50_ms"] == 3.5
