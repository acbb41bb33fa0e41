"""The cross-encoder reranker: a tiny BERT (2 layers, hidden 32) built here, saved as safetensors and
loaded without remote code; the reranking rule; the serving stage (off by default); a few training
steps in one process. The Ray Train path is in tests/integration/test_cross_encoder_training.py."""

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.data import write_table
from recsys.model import build_tiny_base
from recsys.model.cross_encoder import (
    RERANKER_FILE,
    CrossEncoder,
    CrossEncoderConfig,
    Reranker,
    RerankerError,
    behaviour_text,
    rerank_context,
)
from recsys.policies import Context
from recsys.simulator import World, WorldConfig
from serving.config import ServeConfig
from serving.messages import Candidates, ScoreRequest
from serving.scorer import load_reranker, rerank_candidates
from training.config import TrainConfigError
from training.cross_encoder import RerankerTrainConfig, ShownNotClicked, reranker_loop, step_pairs
from training.prepare import prepare
from training.run_data import RunData
from training.session import LocalSession


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("rerank-shop")
    world = World.create(WorldConfig(users=80, items=50, days=20, seed=2))
    write_table(world.items, root / "shop" / "items.parquet", "items")
    write_table(world.generate_events(), root / "shop" / "events.parquet", "events")
    write_table(world.search_log(80), root / "shop" / "queries.parquet", "queries")
    return root


@pytest.fixture(scope="module")
def encoder(shop):
    base = build_tiny_base(shop / "tiny-bert")
    torch.manual_seed(0)
    return CrossEncoder.from_base(CrossEncoderConfig(base=str(base), history_items=3, max_len=64)).eval()


@pytest.fixture(scope="module")
def items(shop):
    return pd.read_parquet(shop / "shop" / "items.parquet")


def context(n=8, prior=True):
    scores = np.linspace(3.0, -1.0, n)[np.random.default_rng(0).permutation(n)]
    return Context(item_ids=np.arange(100, 100 + n), scores=scores, features=np.eye(n),
                   prior=1 / (1 + np.exp(-scores)) if prior else None)


def test_rerank_reorders_the_top_n_by_relevance_and_keeps_the_score_and_prior_scales():
    ctx = context()
    top = np.argsort(-ctx.scores)[:4]
    relevance = {r: v for r, v in zip(top, [0.0, 3.0, 1.0, 2.0], strict=True)}  # reversed-ish preference
    out = rerank_context(ctx, lambda rows: [relevance[r] for r in rows], top_n=4)
    new_top = out.item_ids[np.argsort(-out.scores)[:4]]
    assert new_top.tolist() == ctx.item_ids[top[[1, 3, 2, 0]]].tolist()
    assert sorted(out.scores) == sorted(ctx.scores)  # the same score values, moved between items
    rest = np.setdiff1d(np.arange(ctx.n), top)
    assert np.array_equal(out.scores[rest], ctx.scores[rest]) and np.array_equal(out.prior[rest], ctx.prior[rest])
    assert np.allclose(out.prior, 1 / (1 + np.exp(-out.scores)))  # each prior follows its score
    assert np.array_equal(out.features, ctx.features) and np.array_equal(out.item_ids, ctx.item_ids)


def test_rerank_leaves_items_it_cannot_read_in_place_and_is_a_no_op_below_two():
    ctx = context(prior=False)
    top = np.argsort(-ctx.scores)[:4]
    readable = np.ones(ctx.n, bool)
    readable[top[0]] = False
    out = rerank_context(ctx, lambda rows: -ctx.scores[rows], top_n=4, rerankable=readable)
    assert out.scores[top[0]] == ctx.scores[top[0]]  # unread: still first
    assert out.item_ids[np.argsort(-out.scores)[1:4]].tolist() == ctx.item_ids[top[[3, 2, 1]]].tolist()
    assert rerank_context(ctx, lambda rows: rows, top_n=1) is ctx


def test_saved_reranker_is_safetensors_and_scores_the_same_after_loading(tmp_path, encoder):
    out = encoder.save_pretrained(tmp_path / "reranker")
    assert (out / "model.safetensors").is_file() and (out / RERANKER_FILE).is_file()
    assert not [p for p in out.iterdir() if p.suffix in (".bin", ".pt", ".pkl", ".pickle")]
    loaded = CrossEncoder.from_pretrained(out)
    texts = ["Northpeak waterproof trail running shoe", "cast iron skillet"]
    assert np.allclose(loaded.score("search: shoe ; grey jacket", texts), encoder.score("search: shoe ; grey jacket", texts),
                       atol=1e-5)
    assert loaded.config == encoder.config and loaded.model.config.num_labels == 1


@pytest.mark.parametrize(("make", "error", "message"), [
    (lambda tmp: CrossEncoder.from_pretrained(tmp), RerankerError, "no reranker.json; pass a directory written by"),
    (lambda tmp: CrossEncoderConfig(history_items=0), RerankerError, r"CrossEncoderConfig.history_items=0: must be >= 1"),
    (lambda tmp: RerankerTrainConfig(batch_size=2, negatives=3), TrainConfigError, r"--batch-size=2: must hold one click"),
    (lambda tmp: RerankerTrainConfig(lr=0), TrainConfigError, r"--lr=0: must be > 0"),
])
def test_bad_reranker_inputs_name_the_fix(tmp_path, make, error, message):
    with pytest.raises(error, match=message):
        make(tmp_path)


def test_reranker_top_n_below_two_is_refused(encoder):
    with pytest.raises(RerankerError, match="rerank_top_n=1: must be >= 2"):
        Reranker(encoder, None, top_n=1)


def test_behaviour_text_reads_the_query_then_the_newest_items(encoder, items):
    reranker = Reranker(encoder, items, top_n=5)
    ids = items["item_id"].tolist()
    text = reranker.behaviour([ids[4], 10**9, ids[2], ids[1], ids[0]], "hiking boot")
    first = items.set_index("item_id").loc[ids[4], "title"]
    assert text.startswith("search: hiking boot ; " + first) and text.count(" ; ") == 3  # query + 3 known items
    assert behaviour_text([], None) == "a new shopper"


def test_the_stage_reorders_deterministically_and_changes_the_two_towers_order(encoder, items):
    reranker = Reranker(encoder, items, top_n=6)
    ids = items["item_id"].to_numpy()
    changed = 0
    for seed in range(5):
        rng = np.random.default_rng(seed)
        ctx = Context(item_ids=rng.choice(ids, 10, replace=False), scores=np.linspace(2, 0, 10))
        history = rng.choice(ids, 4, replace=False).tolist()
        first, again = reranker.rerank(ctx, history), reranker.rerank(ctx, history)
        assert np.array_equal(first.scores, again.scores)
        assert np.array_equal(first.scores[6:], ctx.scores[6:])
        changed += not np.array_equal(first.scores, ctx.scores)
    assert changed >= 3  # an untrained head is not the two-tower: it reorders most slates


def test_serving_has_no_reranker_unless_configured(tmp_path, shop, encoder):
    off = ServeConfig(model=tmp_path / "model", data=shop / "shop")
    assert off.rerank_model is None and off.rerank_top_n == 20
    assert load_reranker(off) is None
    found = [Candidates(context(), "m", 0), Candidates(None, "m", 0)]
    requests = [ScoreRequest(user_id=1, history=[1, 2]), ScoreRequest(user_id=2)]
    assert rerank_candidates(None, requests, found) is found


def test_the_scorers_rerank_stage_reorders_the_candidates_it_hands_the_bandit(tmp_path, shop, encoder, items):
    path = encoder.save_pretrained(tmp_path / "reranker")
    cfg = ServeConfig(model=tmp_path / "model", data=shop / "shop", rerank_model=str(path), rerank_top_n=5)
    reranker = load_reranker(cfg)
    assert reranker.top_n == 5 and len(reranker.texts) == len(items)
    ids = items["item_id"].to_numpy()
    ctx = Context(item_ids=ids[:12], scores=np.linspace(1, 0, 12), prior=np.linspace(0.5, 0.1, 12))
    requests = [ScoreRequest(user_id=7, history=ids[20:24].tolist(), query="waterproof jacket"), ScoreRequest(user_id=8)]
    found = rerank_candidates(reranker, requests, [Candidates(ctx, "m", 0), Candidates(None, "m", 0)])
    expected = reranker.rerank(ctx, ids[20:24].tolist(), "waterproof jacket")
    assert np.array_equal(found[0].context.scores, expected.scores) and found[1].context is None
    top = np.argsort(-ctx.scores)[:5]
    ce = encoder.score(reranker.behaviour(ids[20:24].tolist(), "waterproof jacket"),
                       [reranker.texts[int(i)] for i in ctx.item_ids[top]])
    assert found[0].context.item_ids[np.argsort(-found[0].context.scores)[:5]].tolist() == \
        ctx.item_ids[top[np.argsort(-ce, kind="stable")]].tolist()


def test_training_pairs_and_a_few_steps_in_one_process(shop):
    base = shop / "tiny-bert"
    cfg = RerankerTrainConfig(data=shop / "shop", out=shop / "reranker", base=str(base), batch_size=8, negatives=3,
                              max_steps=4, history_items=3, max_len=64, storage_path=str(shop / "runs"), lr=1e-3)
    prepared = prepare(cfg.train_config())
    data = RunData.load(prepared.uri)
    examples = pd.read_parquet(prepared.path("examples.parquet"))
    positives = examples[examples["label"] == 1].head(2)
    shown = ShownNotClicked.of(examples[examples["label"] == 0])
    pairs = step_pairs(positives, shown, data, cfg, np.random.default_rng(0))
    assert len(pairs.behaviours) == len(pairs.candidates) == 8 and pairs.labels.tolist() == [1, 1] + [0] * 6
    assert pairs.behaviours[2:5] == [pairs.behaviours[0]] * 3  # a click's negatives read its behaviour
    searched = examples[examples["query_row"] >= 0].head(1)
    with_query = step_pairs(searched, shown, data, cfg, np.random.default_rng(0))
    query = data.query_texts[int(searched["query_row"].iloc[0])]
    assert all(b.startswith("search: " + query) for b in with_query.behaviours)
    drawn = shown.draw(positives["user_id"].to_numpy(), 50, data.item_ids, np.random.default_rng(1))
    for user, items in zip(positives["user_id"], drawn, strict=True):
        own = examples[(examples["user_id"] == user) & (examples["label"] == 0)]["item_id"]
        assert set(items) <= set(own)  # the user's own non-clicks when the log has some
    session = LocalSession(shop / "runs" / "local-reranker", prepared.path("examples.parquet"))
    result = reranker_loop({**cfg.to_dict(), "prepared": prepared.uri}, session)
    assert result["history"][-1]["step"] == 4 and np.isfinite(result["history"][-1]["loss"])
    with session.latest_checkpoint() as checkpoint:
        trained = CrossEncoder.from_pretrained(checkpoint / "model")
    torch.manual_seed(cfg.seed)
    fresh = CrossEncoder.from_base(cfg.model_config())
    assert not torch.allclose(trained.model.classifier.weight, fresh.model.classifier.weight)


def test_the_scorer_deployment_reranks_after_retrieval_in_its_scoring_thread(tmp_path, model, encoder, items):
    """Scorer._candidates (what the Serve replica runs per batch): retrieval, then the rerank stage, timed."""
    from serving.retrieval import Retriever
    from serving.scorer import Scorer, ServedModel
    from serving.telemetry import ServingMetrics

    retriever = Retriever(model, model.item_table(items), retrieve_n=15, history_len=8)
    served = ServedModel(tmp_path, retriever, None, None)
    scorer = object.__new__(Scorer.func_or_class)  # the deployment's class, without a Serve replica
    scorer.metrics = ServingMetrics()
    ids = items["item_id"].tolist()
    requests = [ScoreRequest(user_id=1, history=ids[:3], query="hiking boot"), ScoreRequest(user_id=2, history=ids[5:7])]
    scorer.reranker = None
    plain = scorer._candidates(served, requests)
    scorer.reranker = Reranker(encoder, items, top_n=6)
    reranked = scorer._candidates(served, requests)
    for request, before, after in zip(requests, plain, reranked, strict=True):
        assert np.array_equal(before.context.item_ids, after.context.item_ids)
        expected = scorer.reranker.rerank(before.context, request.history, request.query)
        assert np.array_equal(after.context.scores, expected.scores)
    assert any(not np.array_equal(b.context.scores, a.context.scores) for b, a in zip(plain, reranked, strict=True))
    assert scorer.metrics.stage_summary()["rerank"]["count"] == 1
