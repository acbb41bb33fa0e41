"""Logged searches: shoppers type a few of a product's words, the shop lists the products that match,
and the shopper clicks on that list through the same click model as a visit.

A shopper searches for what they want: a product drawn by a multinomial logit over their attraction
logits (McFadden 1974), latent interests included, since a search is where a shopper asks for what
the shop never showed them. The query is that product's type with at most one more of its words:
its feature tag, brand, finish or fit ("waterproof trail running shoe", "men's hiking boot"). The
shop's search lists the products that have every word of the query (an exact attribute match, as a
search engine's filter), in popularity order with some noise, and the shopper examines the list by
position and clicks by attraction (satiation aside), so every clicked product matches the query.

The log is a ``queries`` table (``recsys.data.schemas``): one row per click, with the search's
user, time and query text. Searches without a click leave no row, as in a real search log.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from recsys.simulator.behaviour import attraction, examination
from recsys.simulator.catalog import words_of
from recsys.simulator.vocabulary import GENDERS, GROUPS

STREAM_SEARCHES = 4
"""Random stream of the search log, after the streams of ``recsys.simulator.config``."""
SEARCH_RESULTS = 12
"""Products a search lists (the first page)."""
REFINEMENTS = ("", "tag", "brand", "finish", "fit")
"""The word a query adds to the product type ("" = the type alone)."""
DAY_MS = 86_400_000


def query_words(world, items: np.ndarray, refinement: np.ndarray) -> tuple[list[str], np.ndarray]:
    """Each query's text and the attribute groups it fixes (bool (S, len(GROUPS)))."""
    kinds = words_of(world.vocab, world.products, "type")[items]
    extra = {g: words_of(world.vocab, world.products, g)[items] for g in REFINEMENTS[1:]}
    fixed = np.zeros((len(items), len(GROUPS)), bool)
    fixed[:, GROUPS.index("type")] = True
    texts = []
    for s, (kind, how) in enumerate(zip(kinds, refinement, strict=True)):
        group = REFINEMENTS[how]
        if group:
            fixed[s, GROUPS.index(group)] = True
        texts.append(f"{extra[group][s]} {kind}" if group else str(kind))
    return texts, fixed


def draw_targets(world, users: np.ndarray, rng: np.random.Generator, chunk: int = 1024) -> np.ndarray:
    """The product each search is after: P(item) proportional to exp(attraction logit) of its shopper."""
    out = np.empty(len(users), np.int64)
    for lo in range(0, len(users), chunk):
        logits = world.logits_all(world.taste_now(users[lo: lo + chunk]))
        logits -= logits.max(1, keepdims=True)
        cdf = np.cumsum(np.exp(logits), axis=1)
        draws = rng.random(len(cdf)) * cdf[:, -1]
        out[lo: lo + chunk] = (cdf < draws[:, None]).sum(1)
    return np.minimum(out, world.n_items - 1)


def search_log(world, searches: int, seed: int | None = None) -> pd.DataFrame:
    """``searches`` searches spread over the logged days, as a queries table (one row per click).

    Deterministic for a world and a seed (default: the world's); it does not move the world.
    """
    if not isinstance(searches, (int, np.integer)) or searches < 0:
        raise ValueError(f"searches: {searches!r} must be a whole number >= 0")
    cfg = world.cfg
    rng = np.random.default_rng([cfg.seed if seed is None else seed, STREAM_SEARCHES])
    users = rng.integers(0, cfg.users, size=int(searches))
    targets = draw_targets(world, users, rng)
    fitted = world.products.codes[targets, GROUPS.index("fit")] != GENDERS.index("none")
    refinement = rng.integers(0, len(REFINEMENTS) - 1 + fitted.astype(np.int64))
    texts, fixed = query_words(world, targets, refinement)
    codes = world.products.codes
    examine = examination(SEARCH_RESULTS, cfg.position_decay)
    rows = []
    for s, user in enumerate(users):
        groups = np.flatnonzero(fixed[s])
        matches = np.flatnonzero((codes[:, groups] == codes[targets[s], groups]).all(1))
        noisy = world.products.quality[matches] + rng.gumbel(size=len(matches))
        listed = matches[np.argsort(-noisy, kind="stable")]
        listed = listed[:SEARCH_RESULTS]
        logits = world.pair_logits(world.shoppers.taste, np.full(len(listed), user), listed, world.state.drift)
        clicked = rng.random(len(listed)) < examine[: len(listed)] * attraction(logits, np.ones(len(listed)))
        rows.extend((s, int(item)) for item in listed[clicked])
    return queries_frame(world, users, texts, rows, rng)


def queries_frame(world, users: np.ndarray, texts: list[str], rows: list[tuple[int, int]],
                  rng: np.random.Generator) -> pd.DataFrame:
    """The queries table: each search at a uniform time of the logged days, its clicks a few seconds apart."""
    cfg = world.cfg
    t0 = int(pd.Timestamp(dt.date.fromisoformat(cfg.start), tz="UTC").value // 1_000_000)
    start = t0 + (rng.random(len(users)) * max(cfg.days, 1) * DAY_MS).astype(np.int64)
    search = np.array([s for s, _ in rows], np.int64)
    items = np.array([i for _, i in rows], np.int64)
    ts = start[search] + 5_000 * (1 + np.arange(len(search)) - np.searchsorted(search, search))
    frame = pd.DataFrame({
        "user_id": users[search].astype(np.int64),
        "ts": pd.DatetimeIndex(ts.astype("datetime64[ms]"), tz="UTC"),
        "query": np.asarray(texts, dtype=object)[search].astype(str) if len(search) else np.zeros(0, str),
        "item_id": world.item_ids[items] if len(items) else np.zeros(0, np.int64),
    })
    return frame.sort_values(["ts", "item_id"], kind="stable").reset_index(drop=True)
