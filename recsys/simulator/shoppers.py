"""Shoppers: a taste weight on every word of the vocabulary, with revealed and latent interests.

A shopper's attraction to a product is ``sigmoid(base_logit + quality + taste . x)`` where ``x`` is
the product's one-hot words (one per attribute group), so a taste is one row of ``taste (U, F)``.
Interests are categories liked ``interest_logit`` more than the rest. *Revealed* interests fill the
logged history; *latent* ones are liked just as much but the shop never showed them, so no log
reveals them. Emerging categories are latent for many shoppers and revealed for none: a trend the
log has not caught, which only exploration finds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.simulator.config import WorldConfig
from recsys.simulator.vocabulary import GENDERS, GROUPS, Vocabulary

BUDGET_SHARES = np.array([0.3, 0.35, 0.25, 0.1])
"""Shares of shoppers whose preferred price band is budget, mid-range, premium, luxury."""
PRICE_AVERSION = 0.7
"""Logits lost per price band away from the shopper's preferred one."""
FIT_TASTE = {"own": 0.3, "other": -3.0, "unisex": 0.1, "none": 0.0}
"""Taste for a product's fit, relative to the shopper's own (men's or women's)."""
SPREAD = {"category": 0.4, "type": 0.5, "tag": 0.5, "brand": 0.4, "finish": 0.4}
"""Standard deviation of the shopper-to-shopper noise on each group's tastes, in logits."""
FAVOURITES = {"tag": (2, 1.0), "brand": (2, 1.0), "finish": (1, 0.8)}
"""Per group: how many favourite words a shopper has, and how much more they like each."""


def feature_offsets(vocab: Vocabulary) -> np.ndarray:
    """Start column of each attribute group in the one-hot feature space (len(GROUPS) + 1 entries)."""
    sizes = [len(vocab.groups[g]) for g in GROUPS]
    return np.concatenate([[0], np.cumsum(sizes)])


@dataclass
class Shoppers:
    """Shoppers' fixed traits; the world's state adds drift and satiation on top."""

    taste: np.ndarray
    """float16 (U, F) weight on every word, feature columns as in feature_offsets (half precision: memory)."""
    revealed: np.ndarray
    """bool (U, C) categories the logged history shows."""
    latent: np.ndarray
    """bool (U, C) categories liked but never logged."""


def gumbel_top(log_weights: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """(U, k) distinct columns per row, drawn without replacement with the given log weights.

    Gumbel-top-k: the k largest of log w + Gumbel noise are a weighted draw without replacement
    (Vieira 2014; Kool, van Hoof & Welling 2019).
    """
    keys = log_weights + rng.gumbel(size=log_weights.shape)
    return np.argsort(-keys, axis=1, kind="stable")[:, :k]


def draw_interests(cfg: WorldConfig, vocab: Vocabulary, emerging: np.ndarray,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(revealed, latent) bool (U, C) masks; emerging categories take ``emerging_share`` of latent draws."""
    weights = np.array([c.weight for c in vocab.categories])
    n_cat, users = len(weights), cfg.users
    plain = np.where(emerging, 0.0, weights / weights[~emerging].sum())
    hot = emerging / max(emerging.sum(), 1)
    share = cfg.emerging_share if emerging.any() else 0.0
    latent_w = (1 - share) * plain + share * hot
    rows = np.arange(users)[:, None]
    latent = np.zeros((users, n_cat), dtype=bool)
    with np.errstate(divide="ignore"):
        latent[rows, gumbel_top(np.broadcast_to(np.log(latent_w), (users, n_cat)), cfg.latent_interests, rng)] = True
        revealed_logw = np.where(latent | emerging, -np.inf, np.log(weights))
    revealed = np.zeros_like(latent)
    revealed[rows, gumbel_top(revealed_logw, cfg.revealed_interests, rng)] = True
    return revealed, latent


def draw_shoppers(cfg: WorldConfig, vocab: Vocabulary, emerging: np.ndarray, rng: np.random.Generator) -> Shoppers:
    """``cfg.users`` shoppers with tastes over every word of ``vocab``."""
    revealed, latent = draw_interests(cfg, vocab, emerging, rng)
    offsets, users = feature_offsets(vocab), cfg.users
    taste = np.zeros((users, offsets[-1]), dtype=np.float32)
    rows = np.arange(users)[:, None]

    def block(group: str) -> np.ndarray:
        g = GROUPS.index(group)
        return taste[:, offsets[g]: offsets[g + 1]]

    for group, sd in SPREAD.items():
        block(group)[:] = sd * rng.standard_normal(block(group).shape, dtype=np.float32)
    block("category")[:] += np.where(revealed | latent, 0.5, -0.5) * cfg.interest_logit
    for group, (count, boost) in FAVOURITES.items():
        words = block(group)
        words[rows, rng.integers(0, words.shape[1], size=(users, count))] += boost
    own = rng.integers(0, 2, size=users)
    fit = block("fit")
    fit[:, GENDERS.index("unisex")] = FIT_TASTE["unisex"]
    fit[:, GENDERS.index("none")] = FIT_TASTE["none"]
    fit[np.arange(users), own] = FIT_TASTE["own"]
    fit[np.arange(users), 1 - own] = FIT_TASTE["other"]
    budget = rng.choice(len(BUDGET_SHARES), size=users, p=BUDGET_SHARES)
    bands = np.arange(block("price_band").shape[1])
    block("price_band")[:] = -PRICE_AVERSION * np.abs(bands[None, :] - budget[:, None])
    return Shoppers(taste.astype(np.float16), revealed, latent)
