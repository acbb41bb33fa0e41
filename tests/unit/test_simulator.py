"""The simulated shop's promises: determinism, exact truth, satiation, latent interests, new items."""

from __future__ import annotations

import copy
import itertools
import json

import numpy as np
import pytest

from recsys.data.schemas import EVENT_TYPES
from recsys.simulator import World, WorldConfig
from recsys.simulator.behaviour import drift_step, examination
from recsys.simulator.vocabulary import GROUPS

SMALL = WorldConfig(users=200, items=300, days=10, seed=7)


@pytest.fixture(scope="module")
def logged() -> tuple[World, object]:
    """A small world and its logged events (the world is left at the end of the log)."""
    world = World.create(SMALL)
    return world, world.generate_events()


def fresh_copy(world: World) -> World:
    """An independent copy, so a test can step a world without touching the shared fixture."""
    return copy.deepcopy(world)


def test_same_seed_same_world_and_log(logged):
    world, events = logged
    twin = World.create(SMALL)
    twin_events = twin.generate_events()
    assert twin.items.equals(world.items)
    assert twin_events.equals(events)
    users, slates = np.arange(50), np.tile(np.arange(8), (50, 1))
    np.testing.assert_array_equal(twin.click_probs(users, slates), world.click_probs(users, slates))
    assert world.generate_events().equals(events), "replaying the log must be repeatable"


def test_other_seed_other_world():
    a, b = World.create(WorldConfig(users=50, items=80, seed=1)), World.create(WorldConfig(users=50, items=80, seed=2))
    assert not a.items["title"].equals(b.items["title"])


def test_titles_carry_the_words_that_tastes_weigh(logged):
    world, _ = logged
    row = world.items.iloc[0]
    attrs = json.loads(row["attributes"])
    for word in (row["brand"], attrs["type"], attrs["feature"]):
        assert word in row["title"]
    assert set(world.items["category"]) <= set(world.vocab.groups["category"])
    onehots = world.item_features()[:, :-1]
    assert onehots.shape == (world.n_items, len(world.feature_names) - 1)
    np.testing.assert_array_equal(onehots.sum(1), len(GROUPS))


def test_events_follow_the_funnel(logged):
    world, events = logged
    assert set(events["event"].astype(str)) <= set(EVENT_TYPES)
    assert events["ts"].is_monotonic_increasing
    span = events["ts"].max() - events["ts"].min()
    assert span.days < SMALL.days
    counts = events["event"].value_counts()
    assert counts["view"] > counts["click"] > counts["cart"] > counts["purchase"] > 0
    assert events["item_id"].isin(world.item_ids).all()
    assert world.state.clock == SMALL.days


def test_history_reveals_revealed_interests_and_never_latent_ones(logged):
    world, events = logged
    idx = world.item_index(events["item_id"].to_numpy())
    users, cats = events["user_id"].to_numpy(), world.item_category[idx]
    assert not world.shoppers.latent[users, cats].any(), "a latent interest appeared in the log"
    clicked = events["event"].astype(str).to_numpy() == "click"
    assert world.shoppers.revealed[users[clicked], cats[clicked]].mean() > 0.6


def test_latent_interests_exist_and_are_clickable(logged):
    world = fresh_copy(logged[0])
    users = np.arange(world.n_users)
    att = world.attraction(users)
    latent = world.shoppers.latent[:, world.item_category]
    other = ~latent & ~world.shoppers.revealed[:, world.item_category]
    assert world.shoppers.latent.sum(1).min() == SMALL.latent_interests
    assert att[latent].mean() > 0.3 > 0.1 > att[other].mean()
    prior = world.prior_probs(users)
    assert prior[latent].mean() < 0.1, "a model of the log must not see latent interests"
    best_latent = np.argsort(-np.where(latent, att, -1), axis=1)[:, :5]
    result = world.step(users, best_latent, np.random.default_rng(0))
    assert result.clicks.mean() > 0.15
    clicked = np.flatnonzero(result.clicks.any(1))
    cats = world.item_category[best_latent[clicked, np.argmax(result.clicks[clicked], axis=1)]]
    assert world.state.discovered[clicked, cats].all()
    assert world.prior_probs(clicked[:1], best_latent[clicked[0]])[0].mean() > prior[clicked[0], best_latent[clicked[0]]].mean()


def test_oracle_is_the_best_slate_by_brute_force(logged):
    world = logged[0]
    users, candidates, k = np.arange(5), np.arange(20, 27), 3
    best = world.oracle_slates(users, k, candidates)
    for u in users:
        values = [world.click_probs(np.array([u]), np.array([p])).sum() for p in itertools.permutations(candidates, k)]
        assert world.click_probs(np.array([u]), best[u: u + 1]).sum() == pytest.approx(max(values), abs=1e-12)


def test_oracle_beats_random_and_regret_is_exact(logged):
    world = logged[0]
    rng = np.random.default_rng(1)
    users, k = np.arange(world.n_users), 10
    oracle = world.oracle_slates(users, k)
    random = np.stack([rng.choice(world.n_items, k, replace=False) for _ in users])
    best, rand = world.click_probs(users, oracle).sum(1), world.click_probs(users, random).sum(1)
    assert (best >= rand - 1e-12).all() and best.mean() > 3 * rand.mean()
    np.testing.assert_allclose(world.regret(users, random), best - rand, atol=1e-12)
    np.testing.assert_allclose(world.regret(users, oracle), 0.0, atol=1e-12)
    per_user = world.oracle_slates(users, k, np.tile(np.arange(world.n_items), (len(users), 1)))
    np.testing.assert_array_equal(per_user, oracle)


def test_step_draws_clicks_from_click_probs(logged):
    world = fresh_copy(logged[0])
    users = np.repeat(np.arange(world.n_users), 25)
    slates = world.oracle_slates(users, 5)
    expected = world.click_probs(users, slates)
    result = world.step(users, slates, np.random.default_rng(3))
    np.testing.assert_array_equal(result.expected, expected)
    assert abs(result.clicks.mean() - expected.mean()) < 4 * np.sqrt(expected.mean() / expected.size)
    np.testing.assert_array_equal(result.clicks.mean(0) > result.clicks.mean(0)[-1], [True] * 4 + [False])
    assert (result.purchases <= result.carts).all() and (result.carts <= result.clicks).all()


def test_satiation_lowers_repeated_category_ctr_and_recovers(logged):
    world = fresh_copy(logged[0])
    users = np.arange(world.n_users)
    cat = world.shoppers.revealed.argmax(1)
    same = np.stack([np.flatnonzero(world.item_category == c)[:4] for c in cat])
    rng = np.random.default_rng(4)
    ctr = [world.click_probs(users, same).mean()]
    for _ in range(4):
        world.step(users, same, rng)
        ctr.append(world.click_probs(users, same).mean())
    assert ctr[-1] < 0.7 * ctr[0] and all(b < a for a, b in zip(ctr, ctr[1:], strict=False))
    elsewhere = np.stack([np.flatnonzero(world.item_category != c)[:4] for c in cat])
    for _ in range(6):
        world.step(users, elsewhere, rng)
    assert world.click_probs(users, same).mean() > ctr[-1]


def test_taste_drifts_with_time(logged):
    world = fresh_copy(logged[0])
    before = world.state.drift.copy()
    users = np.arange(world.n_users)
    rng = np.random.default_rng(5)
    for _ in range(3):
        world.step(users, np.zeros((world.n_users, 1), np.int64), rng)
    assert not np.array_equal(before, world.state.drift)
    assert world.state.clock == pytest.approx(SMALL.days + 3 / SMALL.sessions_per_day)


def test_drift_is_stationary_at_its_spread():
    rng = np.random.default_rng(6)
    x = np.zeros((20_000, 1))
    for _ in range(20):
        x = drift_step(x, np.full(20_000, 10.0), 0.5, 30.0, rng.standard_normal(x.shape))
    assert x.std() == pytest.approx(0.5, rel=0.05)


def test_examination_decreases_from_one():
    exam = examination(10, 0.7)
    assert exam[0] == 1.0 and (np.diff(exam) < 0).all()


def test_injected_items_are_new_and_some_are_hits(logged):
    world = fresh_copy(logged[0])
    before = world.n_items
    items_before = world.items
    rows = world.inject_items(40, np.random.default_rng(8))
    assert len(rows) == 40 and world.n_items == before + 40
    np.testing.assert_array_equal(rows["item_id"], world.item_ids[before:])
    assert world.items.iloc[: len(items_before)].equals(items_before)
    assert world.is_new().sum() == 40 and world.item_features().shape[0] == before + 40
    new = np.arange(before, world.n_items)
    att = world.attraction(np.arange(world.n_users), new)
    assert att.max() > 0.8, "some injected items must be very attractive to some shoppers"
    assert (world.products.quality[new] > 1.5).any()
    np.testing.assert_array_equal(world.item_index(rows["item_id"].to_numpy()), new)


def test_histories_are_newest_first(logged):
    world = fresh_copy(logged[0])
    users = np.arange(world.n_users)
    slates = world.oracle_slates(users, 3)
    result = world.step(users, slates, np.random.default_rng(9))
    items, events, mask = world.histories(users, 4)
    u = int(np.flatnonzero(result.clicks.any(1))[0])
    last_click = slates[u, np.flatnonzero(result.clicks[u])[-1]]
    assert mask[u, 0] and items[u, 0] == last_click
    assert EVENT_TYPES[events[u, 0]] in ("click", "cart", "purchase")
    assert (items[~mask] == 0).all() and items.shape == (world.n_users, 4)


def test_save_and_load_restore_the_same_world(logged, tmp_path):
    world = fresh_copy(logged[0])
    rng = np.random.default_rng(10)
    world.inject_items(5, rng)
    users = np.arange(world.n_users)
    world.step(users, world.oracle_slates(users, 4), rng)
    loaded = World.load(world.save(tmp_path / "world"))
    slates = np.tile(np.arange(world.n_items - 6, world.n_items), (world.n_users, 1))
    np.testing.assert_array_equal(loaded.click_probs(users, slates), world.click_probs(users, slates))
    assert loaded.items.equals(world.items) and loaded.cfg == world.cfg
    for got, want in zip(loaded.histories(users, 10), world.histories(users, 10), strict=True):
        np.testing.assert_array_equal(got, want)
    a, b = world.step(users, slates, np.random.default_rng(11)), loaded.step(users, slates, np.random.default_rng(11))
    np.testing.assert_array_equal(a.clicks, b.clicks)
    np.testing.assert_array_equal(loaded.state.satiation, world.state.satiation)


def test_popularity_follows_own_appeal(logged):
    world = logged[0]
    pop = world.popularity()
    assert pop.shape == (world.n_items,) and ((pop > 0) & (pop < 1)).all()
    assert np.corrcoef(pop, world.products.quality)[0, 1] > 0.3
