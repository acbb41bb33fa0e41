"""The catalog: products drawn as word codes, then rendered as titles and attributes.

A product is one word from each attribute group (category, type, feature tag, brand, finish, fit,
price band), plus a price, an own appeal (``quality``) and an optional model-line name that is only
noise. The world computes with the codes; the items table is rendered from them, so a saved world
stores codes, not strings, and renders the same table on load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pandas as pd

from recsys.simulator.vocabulary import GENDERS, GROUPS, LINES, Vocabulary
from recsys.text import PRICE_BANDS as TEXT_PRICE_BANDS

# Upper price bounds of the bands, shared with recsys.text so the simulator's band is the text's band.
BAND_BOUNDS = np.array([upper for upper, _ in TEXT_PRICE_BANDS][:-1])
TIER_PRICE = np.array([0.45, 0.8, 1.5, 2.8])
"""Price multiple of a category's base price at each brand tier."""
FIT_SHARES = np.array([0.45, 0.45, 0.10])
"""Shares of men's, women's and unisex among fitted products."""
LINE_SHARE = 0.4
"""Share of products whose title carries a model-line name."""

ARRAY_FIELDS = ("item_ids", "codes", "line", "price", "quality", "released")


@dataclass
class Products:
    """Products as arrays, row i = item index i; ``codes[:, g]`` indexes the words of group GROUPS[g]."""

    item_ids: np.ndarray
    """int64 (n,) public item ids."""
    codes: np.ndarray
    """int16 (n, len(GROUPS)) word index within each attribute group."""
    line: np.ndarray
    """int16 (n,) index into LINES, -1 for none."""
    price: np.ndarray
    """float64 (n,) price."""
    quality: np.ndarray
    """float32 (n,) own appeal in logits (the per-item base attraction)."""
    released: np.ndarray
    """float64 (n,) world clock (days) at which the product appeared; 0 for the initial catalog."""

    def __len__(self) -> int:
        return len(self.item_ids)

    def concat(self, other: Products) -> Products:
        """These products followed by ``other``'s."""
        return Products(*(np.concatenate([getattr(self, f), getattr(other, f)]) for f in ARRAY_FIELDS))


def choice_table(vocab: Vocabulary, group: str) -> tuple[np.ndarray, np.ndarray]:
    """(C, width) codes of the words each category offers in ``group``, and how many each offers."""
    words = {w: i for i, w in enumerate(vocab.groups[group])}
    if group == "brand":
        offers = [[words[b.name] for b in vocab.brands if c.name in b.categories] for c in vocab.categories]
    else:
        attr = {"type": "types", "tag": "tags", "finish": "finishes"}[group]
        offers = [[words[w] for w in getattr(c, attr)] for c in vocab.categories]
    if min(len(o) for o in offers) == 0:
        empty = next(c.name for c, o in zip(vocab.categories, offers, strict=True) if not o)
        raise ValueError(f"vocabulary: category {empty!r} offers no {group}; give it at least one")
    table = np.zeros((len(offers), max(len(o) for o in offers)), dtype=np.int64)
    for c, o in enumerate(offers):
        table[c, : len(o)] = o
    return table, np.array([len(o) for o in offers])


def pick(table: np.ndarray, counts: np.ndarray, cats: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly chosen word code per product from its category's row of ``table``."""
    j = np.floor(rng.random(len(cats)) * counts[cats]).astype(np.int64)
    return table[cats, j]


def draw_products(vocab: Vocabulary, n: int, rng: np.random.Generator, *, first_id: int, quality_sd: float,
                  hit_share: float = 0.0, hit_boost: float = 0.0, released: float = 0.0,
                  category_weights: np.ndarray | None = None) -> Products:
    """``n`` new products; a share ``hit_share`` of them gets ``hit_boost`` extra appeal."""
    cats_spec = vocab.categories
    weights = np.array([c.weight for c in cats_spec]) if category_weights is None else category_weights
    cats = rng.choice(len(cats_spec), size=n, p=weights / weights.sum())
    brands = pick(*choice_table(vocab, "brand"), cats, rng)
    tier = np.array([b.tier for b in vocab.brands])[brands] + rng.choice([-1, 0, 0, 1], size=n)
    tier = np.clip(tier, 0, len(TIER_PRICE) - 1)
    base = np.array([c.base_price for c in cats_spec])[cats]
    price = base * TIER_PRICE[tier] * rng.lognormal(0.0, 0.2, size=n)
    price = np.maximum(np.round(price), 1.0) - 0.01
    gendered = np.array([c.gendered for c in cats_spec])[cats]
    fit = np.where(gendered, rng.choice(3, size=n, p=FIT_SHARES), GENDERS.index("none"))
    codes = np.stack([
        cats,
        pick(*choice_table(vocab, "type"), cats, rng),
        pick(*choice_table(vocab, "tag"), cats, rng),
        brands,
        pick(*choice_table(vocab, "finish"), cats, rng),
        fit,
        np.searchsorted(BAND_BOUNDS, price, side="right"),
    ], axis=1).astype(np.int16)
    line = np.where(rng.random(n) < LINE_SHARE, rng.integers(0, len(LINES), size=n), -1).astype(np.int16)
    quality = rng.normal(0.0, quality_sd, size=n) + hit_boost * (rng.random(n) < hit_share)
    ids = np.arange(first_id, first_id + n, dtype=np.int64)
    return Products(ids, codes, line, price, quality.astype(np.float32), np.full(n, float(released)))


def words_of(vocab: Vocabulary, products: Products, group: str) -> np.ndarray:
    """Object array of each product's word in ``group``."""
    return np.array(vocab.groups[group], dtype=object)[products.codes[:, GROUPS.index(group)]]


def render_items(vocab: Vocabulary, products: Products) -> pd.DataFrame:
    """The items table (items schema) of these products: title, category, brand, price, attributes JSON."""
    cats = products.codes[:, GROUPS.index("category")]
    brand, tag, kind = (words_of(vocab, products, g) for g in ("brand", "tag", "type"))
    finish, fit = words_of(vocab, products, "finish"), words_of(vocab, products, "fit")
    lines = np.array([""] + [" " + w for w in LINES], dtype=object)[products.line + 1]
    fitted = fit != "none"
    fit_text = np.where(fitted, ", " + fit.astype(str), "").astype(object)
    titles = brand + lines + " " + tag + " " + kind + fit_text + ", " + finish
    departments = np.array([c.department for c in vocab.categories], dtype=object)[cats]
    finish_keys = np.array([c.finish_kind for c in vocab.categories], dtype=object)[cats]
    attributes = [
        json.dumps({"department": d, "type": t, "feature": g, k: f, **({"fit": s} if s != "none" else {})})
        for d, t, g, k, f, s in zip(departments, kind, tag, finish_keys, finish, fit, strict=True)
    ]
    return pd.DataFrame({
        "item_id": products.item_ids,
        "title": titles.astype(str),
        "category": words_of(vocab, products, "category").astype(str),
        "brand": brand.astype(str),
        "price": products.price,
        "attributes": attributes,
    })

