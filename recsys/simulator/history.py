"""The logged history: ``days`` days of visits to the shop as it was, written as an events table.

The historic shop showed each shopper products from their revealed categories (a share
``history_focus`` of exposures) and from other categories they are not secretly fond of; it never
showed their latent categories, which is why no log reveals them. Within a category it showed
products in proportion to their own appeal (a popularity ranking). Each visit's products go
through the same click model, satiation and drift as ``World.step``, one Python loop per day.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

from recsys.data.schemas import EVENT_TYPES
from recsys.simulator.behaviour import attraction, examination, satiation_factor
from recsys.simulator.config import STREAM_HISTORY
from recsys.simulator.state import CART, CLICK, PURCHASE, ShopState, after_visits, remember

DAY_MS = 86_400_000
LAST_SESSION_MS = 22 * 3_600_000
"""Visits start between midnight and 22:00 UTC, so every event of a day stays within it."""
SLOT_MS = 4_000
"""Time between two positions' views within a visit."""
FUNNEL_MS = {CLICK: 20_000, CART: 30_000, PURCHASE: 60_000}
"""Mean delay (exponential, capped at 10 minutes) from the previous step of the funnel."""


def exposure_cdf(world) -> tuple[np.ndarray, np.ndarray]:
    """float32 (U, C) cumulative share of each category in a shopper's logged exposures, and bool (U,)
    whether the shopper has anything to be shown at all (a tiny catalog may stock none of their categories)."""
    cfg, shoppers = world.cfg, world.shoppers
    stocked = np.bincount(world.item_category[: cfg.items], minlength=len(world.emerging)) > 0
    weights = np.array([c.weight for c in world.vocab.categories]) * stocked
    revealed = shoppers.revealed & stocked
    other = ~shoppers.revealed & ~shoppers.latent & stocked
    focus = np.where(revealed.any(1), cfg.history_focus, 0.0)[:, None]
    share = focus * revealed / np.maximum(revealed.sum(1, keepdims=True), 1)
    other_w = other * weights
    share += (1 - focus) * other_w / np.maximum(other_w.sum(1, keepdims=True), 1e-300)
    cdf = np.cumsum(share, axis=1)
    cdf /= np.maximum(cdf[:, -1:], 1e-300)
    cdf = cdf.astype(np.float32)
    # From a shopper's last possible category on, the cdf is exactly 1, so no draw lands past it.
    last = share.shape[1] - 1 - np.argmax(share[:, ::-1] > 0, axis=1)
    cdf[np.arange(share.shape[1])[None, :] >= last[:, None]] = 1.0
    return cdf, share.sum(1) > 0


def popularity_sampler(world) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Initial products sorted by category, the running total of their appeal, and each category's rows."""
    cats = world.item_category[: world.cfg.items]
    order = np.argsort(cats, kind="stable")
    cum = np.cumsum(np.exp(world.products.quality[order].astype(np.float64)))
    ends = np.searchsorted(cats[order], np.arange(len(world.emerging)), side="right")
    starts = np.r_[0, ends[:-1]]
    return order, cum, starts, ends


def funnel_delay(rng: np.random.Generator, stage: int, n: int) -> np.ndarray:
    """Milliseconds from the previous funnel step to ``stage``."""
    return np.minimum(rng.exponential(FUNNEL_MS[stage], size=n), 600_000).astype(np.int64)


def log_history(world) -> pd.DataFrame:
    """Replay ``cfg.days`` days from day 0 and return their events; leaves the world at clock = days."""
    cfg = world.cfg
    world.state = ShopState.fresh(cfg.users, len(world.emerging), cfg.history_len)
    rng = np.random.default_rng([cfg.seed, STREAM_HISTORY])
    cdf, can_visit = exposure_cdf(world)
    sampler = popularity_sampler(world)
    t0 = int(pd.Timestamp(dt.date.fromisoformat(cfg.start), tz="UTC").value // 1_000_000)
    days = [log_day(world, day, t0 + day * DAY_MS, cdf, can_visit, sampler, rng)
            for day in range(cfg.days)]
    world.state.clock = float(cfg.days)
    return events_frame(world, days)


def log_day(world, day: int, t_day: int, cdf: np.ndarray, can_visit: np.ndarray, sampler: tuple,
            rng: np.random.Generator) -> tuple[np.ndarray, ...]:
    """One day of visits: (user index, item index, ts ms, event code) arrays in time order."""
    cfg, state = world.cfg, world.state
    state.clock = float(day)
    visitors = np.flatnonzero((rng.random(cfg.users) < cfg.sessions_per_day) & can_visit)
    views = 1 + rng.poisson(cfg.views_per_session - 1.0, size=len(visitors))
    session = np.repeat(np.arange(len(visitors)), views)
    users = visitors[session]
    position = np.arange(len(session)) - np.repeat(np.cumsum(views) - views, views)
    cats = (cdf[users] < rng.random(len(users), dtype=np.float32)[:, None]).sum(1)
    order, cum, starts, ends = sampler
    # Within the category's rows of `cum`, the product whose share of appeal holds a uniform draw.
    lo = np.where(starts > 0, cum[np.maximum(starts - 1, 0)], 0.0)[cats]
    hi = cum[np.maximum(ends - 1, 0)][cats]
    pick = np.searchsorted(cum, lo + rng.random(len(users)) * (hi - lo), side="right")
    items = order[np.clip(pick, starts[cats], ends[cats] - 1)]
    logits = world.pair_logits(world.shoppers.taste, users, items, state.drift)
    att = attraction(logits, satiation_factor(state.satiation[users, cats], cfg.satiation))
    expected = examination(int(views.max(initial=1)), cfg.position_decay)[position] * att
    clicks = rng.random(len(users)) < expected
    carts = clicks & (rng.random(len(users)) < cfg.cart_rate)
    purchases = carts & (rng.random(len(users)) < cfg.purchase_rate)
    after_visits(state, cfg, visitors, users[clicks], cats[clicks], purchases[clicks], rng)
    strongest = np.where(purchases, PURCHASE, np.where(carts, CART, CLICK))
    remember(state, users[clicks], items[clicks], strongest[clicks])
    start = t_day + rng.integers(0, LAST_SESSION_MS, size=len(visitors))
    seen = start[session] + position * SLOT_MS
    clicked = seen[clicks] + funnel_delay(rng, CLICK, int(clicks.sum()))
    carted = clicked[carts[clicks]] + funnel_delay(rng, CART, int(carts.sum()))
    bought = carted[purchases[carts]] + funnel_delay(rng, PURCHASE, int(purchases.sum()))
    parts = [(users, items, seen, 0), (users[clicks], items[clicks], clicked, CLICK),
             (users[carts], items[carts], carted, CART), (users[purchases], items[purchases], bought, PURCHASE)]
    u, it, ts = (np.concatenate([p[i] for p in parts]) for i in range(3))
    ev = np.concatenate([np.full(len(p[0]), p[3], np.int8) for p in parts])
    by_time = np.argsort(ts, kind="stable")
    return u[by_time], it[by_time], ts[by_time], ev[by_time]


def events_frame(world, days: list[tuple[np.ndarray, ...]]) -> pd.DataFrame:
    """The events table (events schema) of the logged days."""
    if not days:
        days = [(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int8))]
    u, it, ts, ev = (np.concatenate([d[i] for d in days]) for i in range(4))
    return pd.DataFrame({
        "user_id": u.astype(np.int64),
        "item_id": world.item_ids[it],
        "ts": pd.DatetimeIndex(ts.astype("datetime64[ms]"), tz="UTC"),
        "event": pd.Categorical.from_codes(ev, categories=list(EVENT_TYPES)),
    })
