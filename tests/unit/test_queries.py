"""Searches: the simulator's search log (queries made of products' words, clicks that match them) and
training that reads it, so the query token of /recommend is learned. Tiny BERT, one process, no Ray."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.data import SchemaError, read_table, write_table
from recsys.model import TwoTower, build_tiny_base
from recsys.simulator import SimulateConfig, World, WorldConfig, simulate
from recsys.simulator.catalog import words_of
from recsys.simulator.searches import SEARCH_RESULTS
from recsys.simulator.vocabulary import GROUPS
from training.batches import TextCache, make_batch
from training.checkpoints import load_train_state
from training.config import TrainConfig
from training.loop import train_loop
from training.prepare import DataDirError, prepare
from training.queries import QUERIES_FILE
from training.run_data import RunData
from training.session import LocalSession


@pytest.fixture(scope="module")
def world():
    world = World.create(WorldConfig(users=200, items=120, days=10, seed=3))
    world.generate_events()
    return world


def test_search_log_is_deterministic_and_every_click_matches_its_query(world, tmp_path):
    log = world.search_log(300)
    again = world.search_log(300)
    pd.testing.assert_frame_equal(log, again)
    assert not log.equals(world.search_log(300, seed=99))
    assert len(log) > 50 and log["ts"].is_monotonic_increasing
    assert log["user_id"].between(0, world.n_users - 1).all()
    items = world.item_index(log["item_id"].to_numpy())
    words = {g: words_of(world.vocab, world.products, g)[items] for g in GROUPS if g not in ("category", "price_band")}
    for row, query in enumerate(log["query"]):
        # The query is the product type plus at most one more of the clicked product's own words.
        assert query.endswith(words["type"][row]), (query, words["type"][row])
        extra = query[: -len(words["type"][row])].strip()
        assert extra in ("", *(words[g][row] for g in ("tag", "brand", "finish", "fit"))), (query, row)
    # One search lists at most a page of products, so it cannot be followed by more clicks than that.
    assert log.groupby(["user_id", "ts"]).size().max() <= SEARCH_RESULTS
    back = read_table(write_table(log, tmp_path / "queries.parquet", "queries"), "queries")
    assert list(back.columns) == ["user_id", "ts", "query", "item_id"]


def test_searches_follow_the_shoppers_tastes(world):
    log = world.search_log(400)
    users, items = log["user_id"].to_numpy(), world.item_index(log["item_id"].to_numpy())
    cats = world.item_category[items]
    likes = (world.shoppers.revealed | world.shoppers.latent)[users, cats]
    share = (world.shoppers.revealed | world.shoppers.latent).mean()
    assert likes.mean() > 2 * share  # searches land in the categories shoppers like, latent ones included
    assert world.shoppers.latent[users, cats].any()


def test_simulate_writes_a_search_log_and_can_leave_it_out(tmp_path):
    out = simulate(SimulateConfig(out=tmp_path / "shop", users=50, items=30, days=5, searches=1.0, quiet=True))
    log = read_table(out / "queries.parquet", "queries")
    assert len(log) > 0 and log["item_id"].isin(read_table(out / "items.parquet", "items")["item_id"]).all()
    none = simulate(SimulateConfig(out=tmp_path / "plain", users=50, items=30, days=5, searches=0, quiet=True))
    assert not (none / "queries.parquet").exists()


@pytest.mark.parametrize(("searches", "message"), [(-1, "must be a whole number >= 0"), (2.5, "must be a whole number")])
def test_search_log_refuses_a_bad_count(world, searches, message):
    with pytest.raises(ValueError, match=message):
        world.search_log(searches)


@pytest.fixture(scope="module")
def shop(tmp_path_factory, world):
    root = tmp_path_factory.mktemp("query-shop")
    write_table(world.items, root / "shop" / "items.parquet", "items")
    fresh = World.create(world.cfg)
    write_table(fresh.generate_events(), root / "shop" / "events.parquet", "events")
    write_table(fresh.search_log(400), root / "shop" / "queries.parquet", "queries")
    return root


def config(root, tiny, **kw):
    return TrainConfig(**{**dict(data=root / "shop", out=root / "model", base=str(tiny), storage_path=str(root / "runs"),
                                 batch_size=64, dim=16, epochs=1, max_steps=6, patience=0, log_every=100,
                                 id_embeddings=False, train_layers=1, weight_decay=0.0), **kw})


@pytest.fixture(scope="module")
def tiny(shop):
    return build_tiny_base(shop / "tiny-bert")


def test_prepare_turns_search_clicks_into_query_examples_without_held_out_pairs(shop, tiny):
    cfg = config(shop, tiny, name="prep")
    prepared = prepare(cfg)
    examples = pd.read_parquet(prepared.path("examples.parquet"))
    texts = pd.read_parquet(prepared.path(QUERIES_FILE))
    searched = examples[examples["query_row"] >= 0]
    assert prepared.counts["search_clicks"] == len(searched) > 0
    assert (searched["label"] == 1).all() and (searched["pos"] == -1).all()
    assert (examples.loc[examples["query_row"] < 0, "query_row"] == -1).all()
    held = pd.concat([pd.read_parquet(prepared.path("valid.parquet")), pd.read_parquet(prepared.path("test.parquet"))])
    leaked = searched.merge(held[["user_id", "item_id"]].drop_duplicates(), on=["user_id", "item_id"])
    assert leaked.empty
    log = read_table(shop / "shop" / "queries.parquet", "queries")
    pairs = searched.assign(query=texts["query"].to_numpy()[searched["query_row"]])[["user_id", "item_id", "query"]]
    assert len(pairs.merge(log[["user_id", "item_id", "query"]].drop_duplicates())) == len(pairs)


def test_a_search_log_with_an_unknown_item_is_refused_before_training(tmp_path, shop, tiny):
    data = tmp_path / "shop"
    for name in ("items", "events"):
        write_table(read_table(shop / "shop" / f"{name}.parquet", name), data / f"{name}.parquet", name)
    bad = read_table(shop / "shop" / "queries.parquet", "queries")
    bad.loc[3, "item_id"] = 10**9
    write_table(bad, data / "queries.parquet", "queries")
    with pytest.raises(DataDirError, match=r"queries.parquet: column 'item_id' row 3: item 1000000000 is not in"):
        prepare(config(tmp_path, tiny, data=data, name="bad"))


def test_a_queries_table_without_its_text_column_names_the_column(tmp_path):
    frame = pd.DataFrame({"user_id": [1], "ts": pd.to_datetime(["2024-01-01"], utc=True), "item_id": [2]})
    with pytest.raises(SchemaError, match="query"):
        write_table(frame, tmp_path / "queries.parquet", "queries")


def test_a_batch_carries_its_query_rows_and_the_cache_their_frozen_states(shop, tiny):
    cfg = config(shop, tiny, name="batch")
    prepared = prepare(cfg)
    data = RunData.load(prepared.uri)
    core = TwoTower.from_base(cfg.model_config())
    cache = TextCache.build(core, data)
    assert len(cache.query_states) == len(data.query_texts) > 0
    examples = pd.read_parquet(prepared.path("examples.parquet"))
    frame = pd.concat([examples[examples["query_row"] >= 0].head(5), examples[examples["query_row"] < 0].head(5)])
    batch = make_batch(frame, data, cfg, np.random.default_rng(0), "cpu")
    assert batch.query_rows.tolist() == frame["query_row"].tolist()
    plain = make_batch(examples[examples["query_row"] < 0].head(8), data, cfg, np.random.default_rng(0), "cpu")
    assert plain.query_rows is None


def test_training_on_searches_learns_the_query_token_that_serving_reads(shop, tiny):
    """The query token's type embedding moves only when the shop has a search log: the path is trained."""
    moved = {}
    for name, searches in (("with", True), ("without", False)):
        cfg = config(shop, tiny, name=f"learn-{name}")
        if not searches:
            data = shop / "plain"
            for table in ("items", "events"):
                write_table(read_table(shop / "shop" / f"{table}.parquet", table), data / f"{table}.parquet", table)
            cfg = config(shop, tiny, name=f"learn-{name}", data=data)
        session = LocalSession(shop / "runs" / cfg.run_name, prepare(cfg).path("examples.parquet"))
        train_loop(cfg.to_dict(), session)
        torch.manual_seed(cfg.seed)
        start = TwoTower.from_base(cfg.model_config()).user_tower
        trained = json.loads((session.best_checkpoint() / "metrics.json").read_text())
        assert np.isfinite(trained["loss"])
        core, _ = load_train_state(session.best_checkpoint())
        q = core.user_tower.query_type
        moved[name] = float((core.user_tower.types.weight[q] - start.types.weight[q]).abs().max().detach())
    assert moved["without"] == 0.0
    assert moved["with"] > 1e-4


def test_a_masked_query_token_is_an_absent_one_and_training_embeds_queries_as_serving_does(model):
    torch.manual_seed(1)
    hist, events = torch.randn(3, 4, 16), torch.ones(3, 4, dtype=torch.long)
    mask = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0]], dtype=torch.bool)
    texts = ["waterproof trail running shoe", "men's hiking boot", "kettle"]
    served = torch.from_numpy(model.embed_queries(texts))
    with torch.no_grad():
        states, token_mask = model.frozen_text_states(texts)
        assert torch.allclose(model.query_vectors(states, token_mask), served, atol=1e-6)
        has = torch.tensor([True, False, True])
        mixed = model.encode_users(hist, events, mask, served, has)
        plain = model.encode_users(hist, events, mask)
        searched = model.encode_users(hist, events, mask, served)
    assert torch.allclose(mixed[1], plain[1], atol=1e-5)
    assert torch.allclose(mixed[has], searched[has], atol=1e-5)
    assert not torch.allclose(mixed[0], plain[0], atol=1e-3)
