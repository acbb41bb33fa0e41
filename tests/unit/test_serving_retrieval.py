"""The scorer's retrieval without Ray: top-N by score, never an excluded or purchased item,
BERT only for queries, new catalog versions recommendable at once, int8 queries close to fp32,
new products embedded off the event loop."""

import asyncio
import copy
import time

import numpy as np
import pandas as pd
import pytest
import torch

from serving.catalog import CatalogStore
from serving.messages import ScoreRequest
from serving.quantization import agreement, quantized_copy
from serving.retrieval import ItemEmbedder, PurchaseIndex, Retriever

TITLES = ["waterproof trail shoe", "red wool scarf", "steel water bottle", "leather wallet", "running socks",
          "rain jacket", "yoga mat", "canvas tote", "ceramic mug", "desk lamp", "hiking pole", "sun hat"]


def items(ids):
    return pd.DataFrame({"item_id": ids, "title": [TITLES[i % len(TITLES)] + f" {i}" for i in ids]})


@pytest.fixture()
def retriever(model):
    table = model.item_table(items(list(range(12))))
    return Retriever(model, table, retrieve_n=5, history_len=8, purchases=PurchaseIndex(np.array([7]), np.array([3])))


def test_candidates_are_the_top_n_by_score_without_banned_items(retriever):
    req = ScoreRequest(7, history=[1, 2, 999], history_events=["purchase", "click", "view"], exclude=[4])
    (cands,) = retriever.candidates([req])
    ctx = cands.context
    assert len(ctx.item_ids) == 5 and not set(ctx.item_ids) & {1, 3, 4}  # history purchase, shop purchase, exclude
    users = retriever.user_vectors([req])
    scores = (users @ torch.from_numpy(retriever.table.vectors).T / retriever.model.temperature).numpy()[0]
    allowed = [i for i in np.argsort(-scores) if i not in (1, 3, 4)][:5]
    assert ctx.item_ids.tolist() == allowed
    assert np.allclose(ctx.scores, scores[allowed], atol=1e-5)
    # [1, prior, u*v]: an uncalibrated model gives no prior, so that column is zeros
    assert ctx.features.shape == (5, 18) and ctx.prior is None and not ctx.features[:, 1].any()
    assert np.allclose(ctx.features[:, 0], 1.0)


def test_candidate_lists_and_queries(retriever):
    plain, queried, limited, empty = retriever.candidates([
        ScoreRequest(1, history=[0]),
        ScoreRequest(1, history=[0], query="warm scarf"),
        ScoreRequest(1, candidates=[5, 6, 6, 12345], exclude=[6]),
        ScoreRequest(1, candidates=[12345]),
    ])
    assert not np.allclose(plain.context.scores, queried.context.scores)
    assert limited.context.item_ids.tolist() == [5]
    assert empty.context is None
    (bare,) = retriever.candidates([ScoreRequest(1, history=[0], with_features=False)])
    assert bare.context.features is None and np.allclose(bare.context.scores, plain.context.scores)


def test_a_new_catalog_version_is_recommendable_at_once(tmp_path, model, retriever):
    store = CatalogStore(tmp_path)
    new = items([50])
    version = store.add(np.array([50]), model.embed_items(new), new.to_dict("records"))
    retriever.apply(store.since(retriever.catalog_version))
    assert retriever.catalog_version == version == 1
    (cands,) = retriever.candidates([ScoreRequest(1, candidates=[50, 0])])
    assert 50 in cands.context.item_ids
    assert CatalogStore(tmp_path).since(0).item_ids.tolist() == [50]  # durable
    store.add(np.array([51, 50]), np.ones((2, 16), np.float32) * [[1], [2]], [{}, {}])  # 50 re-embedded
    delta = CatalogStore(tmp_path).since(0)
    assert delta.item_ids.tolist() == [51, 50] and (delta.vectors[1] == 2).all()  # the newest vector wins


def test_int8_queries_agree_with_fp32(model, retriever):
    report = agreement(model, quantized_copy(model), ["trail shoe", "wool scarf", "lamp for a desk"],
                       retriever.table.vectors, k=5, repeats=1)
    assert report["quant_cosine"] > 0.9
    assert report["quant_speedup"] > 0


def test_new_items_embed_off_the_event_loop(model):
    """The replica's loop keeps ticking while PUT /items runs the item tower (same vectors)."""
    embedder, many = ItemEmbedder(model), items(list(range(6000)))

    async def embed_and_tick():
        ticks, task = [time.perf_counter()], asyncio.create_task(embedder.embed(many))
        while not task.done():
            await asyncio.sleep(0.002)
            ticks.append(time.perf_counter())
        return await task, np.diff(ticks), ticks[-1] - ticks[0]

    vectors, gaps, took = asyncio.run(embed_and_tick())
    assert took > 0.1, f"embedding took {took:.3f}s: too short for the check to mean anything"
    assert gaps.max() < took / 4, f"the loop stalled {gaps.max():.3f}s of {took:.3f}s"
    assert np.allclose(vectors, model.embed_items(many), atol=1e-5)


def test_queries_are_answered_while_items_embed(model, retriever):
    """Free-text queries (BERT and its tokenizer on the loop's thread) meanwhile give the same result."""
    embedder, many = ItemEmbedder(model), items(list(range(6000)))
    req = [ScoreRequest(1, history=[0], query="warm scarf")]
    expected = retriever.candidates(req)[0].context.scores

    async def query_while_embedding():
        answered, task = 0, asyncio.create_task(embedder.embed(many))
        while not task.done():
            (cands,) = retriever.candidates(req)
            assert np.allclose(cands.context.scores, expected, atol=1e-5)
            answered += 1
            await asyncio.sleep(0)
        await task
        return answered

    assert asyncio.run(query_while_embedding()) > 5


def test_serving_and_the_replay_build_the_same_bandit_input(model):
    """One builder: the scorer's context and the sweep's replay observer agree number for number."""
    from recsys.data import EVENT_TYPES
    from recsys.model import fit_calibration
    from recsys.model_observer import model_observer
    from recsys.simulator import World, WorldConfig

    world = World.create(WorldConfig(users=20, items=30, seed=1))
    world.generate_events()
    calibrated = copy.copy(model)  # the same weights, with a prior so that column is not all zeros
    calibrated.calibrator = fit_calibration(np.linspace(-2, 2, 40), np.arange(40) % 3 == 0)
    table = calibrated.item_table(world.items)
    retriever = Retriever(calibrated, table, retrieve_n=30, history_len=8)
    users, cands = np.array([3, 11]), np.array([[0, 5, 9, 17, 22], [1, 2, 28, 13, 4]])
    obs = model_observer(calibrated, table.vectors)(world, users, cands)
    hist, events, mask = world.histories(users, 8)
    for b, user in enumerate(users):
        req = ScoreRequest(int(user), history=world.item_ids[hist[b][mask[b]]].tolist(),
                           history_events=[EVENT_TYPES[e] for e in events[b][mask[b]]],
                           candidates=world.item_ids[cands[b]].tolist())
        ctx = retriever.candidates([req])[0].context
        order = [world.item_ids[cands[b]].tolist().index(item) for item in ctx.item_ids]
        np.testing.assert_allclose(ctx.scores, obs.scores[b][order], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(ctx.prior, obs.prior[b][order], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(ctx.features, obs.features[b][order], rtol=1e-5, atol=1e-5)
