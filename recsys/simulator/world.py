"""The simulated shop as an online environment with exact truth.

``World`` holds the catalog, the shoppers and the mutable state. It answers what any policy needs
to be scored exactly: ``click_probs`` (P(click) of every slot of a slate, with position bias and the
shopper's current satiation), ``oracle_slates`` (the slate with the most expected clicks: items
sorted by attraction, best at the top, which is optimal under the position-based model by the
rearrangement inequality) and ``regret``. ``step`` draws clicks from exactly those probabilities and
then moves the world on. Users are indices 0..U-1 (= user ids); items are indices into
``world.items`` (item id = ``world.item_ids[index]``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.simulator.behaviour import attraction, examination, satiation_factor
from recsys.simulator.catalog import Products, draw_products, render_items
from recsys.simulator.config import STREAM_CATALOG, STREAM_POPULARITY, STREAM_SHOPPERS, WorldConfig
from recsys.simulator.shoppers import Shoppers, draw_shoppers, feature_offsets
from recsys.simulator.state import CART, CLICK, PURCHASE, ShopState, after_visits, recent, remember
from recsys.simulator.vocabulary import DEFAULT_VOCABULARY, GROUPS, Vocabulary

POPULARITY_SAMPLE = 2048
"""Shoppers averaged over by popularity()."""
CHUNK = 1 << 22
"""Most (user, item, group) gathers done at once, to bound memory on large candidate sets."""


@dataclass
class StepResult:
    """What one step's shoppers did with their slates; ``expected`` is what clicks were drawn from."""

    clicks: np.ndarray
    """bool (B, k) clicked slots."""
    carts: np.ndarray
    """bool (B, k) clicked slots that went to the cart."""
    purchases: np.ndarray
    """bool (B, k) carted slots that were bought."""
    expected: np.ndarray
    """float64 (B, k) exact click probabilities (= click_probs before the step)."""


class World:
    """A deterministic simulated shop: catalog, shoppers with tastes, and the exact click model."""

    def __init__(self, cfg: WorldConfig, vocab: Vocabulary, products: Products, shoppers: Shoppers,
                 emerging: np.ndarray, state: ShopState):
        self.cfg, self.vocab, self.shoppers, self.emerging, self.state = cfg, vocab, shoppers, emerging, state
        self.offsets = feature_offsets(vocab)
        self.set_products(products)

    @classmethod
    def create(cls, cfg: WorldConfig, vocab: Vocabulary = DEFAULT_VOCABULARY) -> World:
        """A new world; the same config (and vocabulary) always makes the same world."""
        n_cat = len(vocab.categories)
        catalog_rng = np.random.default_rng([cfg.seed, STREAM_CATALOG])
        products = draw_products(vocab, cfg.items, catalog_rng, first_id=1, quality_sd=cfg.quality_sd)
        shopper_rng = np.random.default_rng([cfg.seed, STREAM_SHOPPERS])
        emerging = np.zeros(n_cat, dtype=bool)
        emerging[shopper_rng.choice(n_cat, cfg.emerging_categories, replace=False)] = True
        shoppers = draw_shoppers(cfg, vocab, emerging, shopper_rng)
        return cls(cfg, vocab, products, shoppers, emerging, ShopState.fresh(cfg.users, n_cat, cfg.history_len))

    @classmethod
    def load(cls, path: str | os.PathLike) -> World:
        """The world saved in ``path`` by :meth:`save`, state included."""
        from recsys.simulator.snapshot import load_world

        return load_world(Path(path))

    def save(self, path: str | os.PathLike) -> Path:
        """Write the world (arrays.npz + world.json, no pickle) to directory ``path``; returns it."""
        from recsys.simulator.snapshot import save_world

        return save_world(self, Path(path))

    # ---- catalog -------------------------------------------------------------------------------
    def set_products(self, products: Products) -> None:
        """Install a catalog and rebuild what is derived from it."""
        self.products = products
        self.item_category = products.codes[:, 0].astype(np.int64)
        self.columns = self.offsets[:-1] + products.codes.astype(np.int64)
        n = len(products)
        self.onehot = sp.csr_matrix((np.ones(n * len(GROUPS)), self.columns.ravel(),
                                     np.arange(0, n * len(GROUPS) + 1, len(GROUPS))), shape=(n, self.offsets[-1]))
        self._items: pd.DataFrame | None = None

    @property
    def items(self) -> pd.DataFrame:
        """The catalog as an items table (items schema), row i = item index i."""
        if self._items is None:
            self._items = render_items(self.vocab, self.products)
        return self._items

    @property
    def n_users(self) -> int:
        """Number of shoppers."""
        return self.cfg.users

    @property
    def n_items(self) -> int:
        """Number of products now (injected ones included)."""
        return len(self.products)

    @property
    def item_ids(self) -> np.ndarray:
        """int64 (n,) item id of each item index."""
        return self.products.item_ids

    def item_index(self, item_ids: np.ndarray) -> np.ndarray:
        """Item indices of item ids; raises ValueError naming the first unknown id."""
        ids = np.asarray(item_ids, dtype=np.int64)
        index = ids - self.products.item_ids[0]
        ok = (index >= 0) & (index < self.n_items)
        ok[ok] = self.products.item_ids[index[ok]] == ids[ok]
        if not ok.all():
            raise ValueError(f"item_ids: {ids[~ok][0]} is not an item of this world (ids "
                             f"{self.item_ids[0]}..{self.item_ids[-1]})")
        return index

    @property
    def feature_names(self) -> list[str]:
        """Names of item_features() columns: 'group=word' one-hots, then 'log_price'."""
        return [f"{g}={w}" for g in GROUPS for w in self.vocab.groups[g]] + ["log_price"]

    def item_features(self) -> np.ndarray:
        """float32 (n, f) attribute one-hots plus log1p(price)/7, for policies that run without a model.

        Built on each call (n x f dense): cache it, and rebuild after inject_items.
        """
        price = (np.log1p(self.products.price) / 7.0)[:, None]
        return np.hstack([self.onehot.toarray(), price]).astype(np.float32)

    # ---- truth ---------------------------------------------------------------------------------
    def taste_now(self, users: np.ndarray) -> np.ndarray:
        """float64 (B, F) current tastes: fixed taste plus category drift."""
        taste = self.shoppers.taste[users].astype(np.float64)
        taste[:, : self.offsets[1]] += self.state.drift[users]
        return taste

    def logits_all(self, taste: np.ndarray, quality: bool = True) -> np.ndarray:
        """(B, n) attraction logits of every product under tastes (B, F)."""
        bias = self.cfg.base_logit + (self.products.quality.astype(np.float64) if quality else 0.0)
        return (self.onehot @ taste.T).T + bias

    def pair_logits(self, taste: np.ndarray, rows: np.ndarray, items: np.ndarray, drift: np.ndarray | None = None,
                    quality: bool = True) -> np.ndarray:
        """(N,) attraction logit of ``items[i]`` under taste row ``rows[i]`` of ``taste``, plus ``drift[rows[i]]``.

        The same sum as logits_all, one (row, item) pair at a time, in chunks that bound memory.
        """
        out = np.empty(len(rows))
        step = CHUNK // len(GROUPS)
        for lo in range(0, len(rows), step):
            r, it = rows[lo: lo + step], items[lo: lo + step]
            out[lo: lo + step] = taste[r[:, None], self.columns[it]].sum(1, dtype=np.float64)
        if drift is not None:
            out += drift[rows, self.item_category[items]]
        bias = self.products.quality[items].astype(np.float64) if quality else 0.0
        return out + self.cfg.base_logit + bias

    def attraction(self, user_ids: np.ndarray, candidates: np.ndarray | None = None) -> np.ndarray:
        """(B, m) P(click | examined) now, satiation included; candidates (m,), (B, m) or None = all."""
        users = self.check_users(user_ids)
        if candidates is None:
            logits, cats = self.logits_all(self.taste_now(users)), self.item_category[None, :]
        else:
            items = np.broadcast_to(self.check_items(candidates, "candidates", len(users)),
                                    (len(users), np.shape(candidates)[-1]))
            rows = np.repeat(users, items.shape[1])
            logits = self.pair_logits(self.shoppers.taste, rows, items.ravel(), self.state.drift).reshape(items.shape)
            cats = self.item_category[items]
        keep = satiation_factor(self.state.satiation[users], self.cfg.satiation)
        return attraction(logits, keep[np.arange(len(users))[:, None], cats])

    def click_probs(self, user_ids: np.ndarray, slates: np.ndarray) -> np.ndarray:
        """(B, k) exact P(click) of each slot: examination(position) * attraction(user, item) now."""
        slates = self.check_items(slates, "slates", len(np.atleast_1d(user_ids)), ndim=2)
        return self.attraction(user_ids, slates) * examination(slates.shape[1], self.cfg.position_decay)

    def oracle_slates(self, user_ids: np.ndarray, k: int, candidates: np.ndarray | None = None) -> np.ndarray:
        """(B, k) item indices with the most expected clicks now: top-k attraction, best first."""
        att = self.attraction(user_ids, candidates)
        if not 1 <= k <= att.shape[1]:
            raise ValueError(f"k: {k} must be in [1, {att.shape[1]}] (the number of candidates)")
        top = np.argpartition(-att, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(att, top, 1), axis=1, kind="stable"), 1)
        if candidates is None:
            return top
        cands = np.broadcast_to(np.asarray(candidates, dtype=np.int64), (len(att), att.shape[1]))
        return np.take_along_axis(cands, top, axis=1)

    def regret(self, user_ids: np.ndarray, slates: np.ndarray, candidates: np.ndarray | None = None) -> np.ndarray:
        """(B,) oracle's expected clicks minus the slates' expected clicks, exactly, in the current state."""
        slates = np.asarray(slates)
        best = self.oracle_slates(user_ids, slates.shape[1], candidates)
        return self.click_probs(user_ids, best).sum(1) - self.click_probs(user_ids, slates).sum(1)

    def prior_probs(self, user_ids: np.ndarray, candidates: np.ndarray | None = None) -> np.ndarray:
        """(B, m) what a perfect model of everything logged so far would predict for P(click | examined).

        It knows the words of every product and each shopper's tastes, except latent interests the
        shopper has not clicked yet: those look like non-interests, as in the log. It knows nothing of
        drift, satiation or a product's own appeal (no text shows them). This is the best case of a
        calibrated text model, the prior a bandit starts from; a click in a latent category reveals it.
        """
        users = self.check_users(user_ids)
        taste = self.shoppers.taste[users].astype(np.float64)
        hidden = self.shoppers.latent[users] & ~self.state.discovered[users]
        taste[:, : self.offsets[1]][hidden] = -0.5 * self.cfg.interest_logit
        if candidates is None:
            logits = self.logits_all(taste, quality=False)
        else:
            items = np.broadcast_to(self.check_items(candidates, "candidates", len(users)),
                                    (len(users), np.shape(candidates)[-1]))
            rows = np.repeat(np.arange(len(users)), items.shape[1])
            logits = self.pair_logits(taste, rows, items.ravel(), quality=False).reshape(items.shape)
        return 1.0 / (1.0 + np.exp(-logits))

    def popularity(self) -> np.ndarray:
        """(n,) mean attraction of each product over a fixed sample of shoppers, without satiation or drift."""
        rng = np.random.default_rng([self.cfg.seed, STREAM_POPULARITY])
        users = rng.choice(self.n_users, size=min(self.n_users, POPULARITY_SAMPLE), replace=False)
        logits = self.logits_all(self.shoppers.taste[np.sort(users)].astype(np.float64))
        return (1.0 / (1.0 + np.exp(-logits))).mean(axis=0)

    # ---- dynamics ------------------------------------------------------------------------------
    def step(self, user_ids: np.ndarray, slates: np.ndarray, rng: np.random.Generator) -> StepResult:
        """Show ``slates`` (B, k) to ``user_ids`` (B,), draw clicks, carts and purchases, move the world on.

        After the draw: satiation decays one visit and grows with the clicks (and more with purchases),
        tastes drift for the time since each shopper's last visit, the clicks join their histories, and
        the clock advances by B / (users * sessions_per_day) days (traffic-normalized time).
        """
        users = self.check_users(user_ids)
        expected = self.click_probs(users, slates)
        slates = np.asarray(slates, dtype=np.int64)
        clicks = rng.random(expected.shape) < expected
        carts = clicks & (rng.random(expected.shape) < self.cfg.cart_rate)
        purchases = carts & (rng.random(expected.shape) < self.cfg.purchase_rate)
        rows, slots = np.nonzero(clicks)
        items = slates[rows, slots]
        after_visits(self.state, self.cfg, users, users[rows], self.item_category[items],
                     purchases[rows, slots], rng)
        events = np.where(purchases[rows, slots], PURCHASE, np.where(carts[rows, slots], CART, CLICK))
        remember(self.state, users[rows], items, events)
        self.state.clock += len(users) / (self.cfg.users * self.cfg.sessions_per_day)
        return StepResult(clicks, carts, purchases, expected)

    def inject_items(self, n: int, rng: np.random.Generator) -> pd.DataFrame:
        """Add ``n`` new products (a share of them hits) released now; returns their items-table rows."""
        if not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n: {n!r} must be a whole number >= 1 (products to inject)")
        new = draw_products(self.vocab, int(n), rng, first_id=int(self.item_ids[-1]) + 1,
                            quality_sd=self.cfg.quality_sd, hit_share=self.cfg.new_hit_share,
                            hit_boost=self.cfg.new_hit_boost, released=self.state.clock)
        old_items = self._items
        self.set_products(self.products.concat(new))
        rows = render_items(self.vocab, new)
        if old_items is not None:
            self._items = pd.concat([old_items, rows], ignore_index=True)
        return rows

    def is_new(self) -> np.ndarray:
        """bool (n,) products injected after the initial catalog."""
        return np.arange(self.n_items) >= self.cfg.items

    def histories(self, user_ids: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Newest-first clicked items (B, L) item indices, their event index into EVENT_TYPES (B, L), mask (B, L).

        Only clicks and stronger events are remembered (not views); padding is item 0 with mask False.
        """
        if not isinstance(max_len, (int, np.integer)) or max_len < 1:
            raise ValueError(f"max_len: {max_len!r} must be a whole number >= 1")
        return recent(self.state, self.check_users(user_ids), int(max_len))

    def generate_events(self) -> pd.DataFrame:
        """The logged history of ``cfg.days`` days (events schema), replayed from day 0 so it is repeatable.

        It resets the state to day 0 and leaves the world at the end of the log (clock = days), so the
        online environment continues from the shop the log describes.
        """
        from recsys.simulator.history import log_history

        return log_history(self)

    def search_log(self, searches: int, seed: int | None = None) -> pd.DataFrame:
        """``searches`` logged searches and the clicks that followed (queries schema); see ``recsys.simulator.searches``.

        Run it after :meth:`generate_events` (tastes drift as the log goes on); it leaves the world as it is.
        """
        from recsys.simulator.searches import search_log

        return search_log(self, searches, seed)

    # ---- checks --------------------------------------------------------------------------------
    def check_users(self, user_ids: np.ndarray) -> np.ndarray:
        """user_ids as an int64 (B,) array, or a ValueError naming the problem."""
        users = np.asarray(user_ids)
        if users.ndim != 1 or not np.issubdtype(users.dtype, np.integer):
            raise ValueError(f"user_ids: expected a 1-d integer array, got shape {users.shape} dtype {users.dtype}")
        if len(users) and (users.min() < 0 or users.max() >= self.n_users):
            bad = users[(users < 0) | (users >= self.n_users)][0]
            raise ValueError(f"user_ids: {bad} is out of range; users are 0..{self.n_users - 1}")
        return users.astype(np.int64)

    def check_items(self, items: np.ndarray, name: str, batch: int, ndim: int | None = None) -> np.ndarray:
        """Item indices (m,) or (batch, m) as int64, or a ValueError naming ``name`` and the problem."""
        arr = np.asarray(items)
        if not np.issubdtype(arr.dtype, np.integer) or arr.ndim not in ((ndim,) if ndim else (1, 2)):
            raise ValueError(f"{name}: expected {'a 2-d' if ndim == 2 else 'a 1-d or 2-d'} integer array of item "
                             f"indices, got shape {arr.shape} dtype {arr.dtype}")
        if arr.ndim == 2 and arr.shape[0] != batch:
            raise ValueError(f"{name}: has {arr.shape[0]} rows but there are {batch} user_ids")
        if arr.size and (arr.min() < 0 or arr.max() >= self.n_items):
            bad = arr[(arr < 0) | (arr >= self.n_items)][0]
            raise ValueError(f"{name}: item index {bad} is out of range; indices are 0..{self.n_items - 1} "
                             "(map item ids with world.item_index)")
        if arr.shape[-1] == 0:
            raise ValueError(f"{name}: is empty; give at least one item")
        return arr.astype(np.int64)
