"""What changes as shoppers visit: satiation, taste drift, the clock and each shopper's click history.

Every update is vectorized over the visiting shoppers. A visit first shows products (the caller
draws clicks from the world's exact probabilities), then :func:`after_visits` applies what the
visit did: satiation decays by one visit and grows with the visit's clicks and purchases, drift is
sampled for the time since the shopper's last visit, and the clicks join the shopper's history.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from recsys.simulator.behaviour import drift_step, satiation_decay
from recsys.simulator.config import WorldConfig

CLICK, CART, PURCHASE = 1, 2, 3
"""Indices into recsys.data.EVENT_TYPES of the events a history remembers."""


@dataclass
class ShopState:
    """The world's mutable state; everything else about a world is fixed when it is made."""

    clock: float
    """Days since day 0 of the logged history."""
    drift: np.ndarray
    """float32 (U, C) drift of each shopper's category tastes, in logits."""
    satiation: np.ndarray
    """float32 (U, C) satiation of each shopper with each category."""
    last_visit: np.ndarray
    """float64 (U,) clock at each shopper's last visit (when drift was last sampled)."""
    visits: np.ndarray
    """int64 (U,) visits so far."""
    discovered: np.ndarray
    """bool (U, C) categories the shopper has clicked (a latent interest stops being latent to a model)."""
    history_items: np.ndarray
    """int32 (U, H) ring buffer of clicked item indices."""
    history_events: np.ndarray
    """int8 (U, H) strongest event of each remembered click (CLICK, CART or PURCHASE)."""
    history_count: np.ndarray
    """int64 (U,) clicks ever remembered per shopper; slot of the next one is count % H."""

    @classmethod
    def fresh(cls, users: int, categories: int, history_len: int) -> ShopState:
        """Day 0: no satiation, no drift, no history."""
        return cls(0.0, np.zeros((users, categories), np.float32), np.zeros((users, categories), np.float32),
                   np.zeros(users), np.zeros(users, np.int64), np.zeros((users, categories), bool),
                   np.zeros((users, history_len), np.int32),
                   np.zeros((users, history_len), np.int8), np.zeros(users, np.int64))

    def arrays(self) -> dict[str, np.ndarray]:
        """The array fields by name (for saving)."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "clock"}


def remember(state: ShopState, users: np.ndarray, items: np.ndarray, events: np.ndarray) -> None:
    """Append clicks (flat arrays in time order) to each shopper's ring buffer, newest last."""
    if len(users) == 0:
        return
    order = np.argsort(users, kind="stable")
    u, it, ev = users[order], items[order], events[order]
    starts = np.flatnonzero(np.r_[True, u[1:] != u[:-1]])
    counts = np.diff(np.r_[starts, len(u)])
    rank = np.arange(len(u)) - np.repeat(starts, counts)
    size = state.history_items.shape[1]
    keep = rank >= np.repeat(counts, counts) - size  # only the newest `size` of one call survive
    slot = (state.history_count[u] + rank) % size
    state.history_items[u[keep], slot[keep]] = it[keep]
    state.history_events[u[keep], slot[keep]] = ev[keep]
    state.history_count[u[starts]] += counts


def recent(state: ShopState, users: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Newest-first (items (B, L), events (B, L), mask (B, L)); padding is item 0, event 0, mask False."""
    size = state.history_items.shape[1]
    count = state.history_count[users]
    j = np.arange(max_len)
    slot = (count[:, None] - 1 - j) % size
    mask = j < np.minimum(count, size)[:, None]
    items = np.where(mask, state.history_items[users[:, None], slot], 0).astype(np.int64)
    events = np.where(mask, state.history_events[users[:, None], slot], 0).astype(np.int64)
    return items, events, mask


def after_visits(state: ShopState, cfg: WorldConfig, visitors: np.ndarray, clicked_users: np.ndarray,
                 clicked_cats: np.ndarray, purchased: np.ndarray, rng: np.random.Generator) -> None:
    """Apply one visit per entry of ``visitors``: satiation decay and growth, then taste drift.

    ``clicked_users``/``clicked_cats``/``purchased`` list the visits' clicks (one entry per click).
    Drift is sampled once per distinct visitor for the time since their last visit.
    """
    who, times = np.unique(visitors, return_counts=True)
    state.satiation[who] *= satiation_decay(cfg.satiation_half_life, times)[:, None].astype(np.float32)
    added = 1.0 + cfg.purchase_satiation * purchased
    np.add.at(state.satiation, (clicked_users, clicked_cats), added.astype(np.float32))
    state.visits[who] += times
    state.discovered[clicked_users, clicked_cats] = True
    if cfg.drift_sd > 0:
        noise = rng.standard_normal((len(who), state.drift.shape[1]))
        elapsed = state.clock - state.last_visit[who]
        state.drift[who] = drift_step(state.drift[who], elapsed, cfg.drift_sd, cfg.drift_days, noise)
    state.last_visit[who] = state.clock
