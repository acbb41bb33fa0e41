"""The simulated shop's knobs: one validated dataclass, every field documented in one line."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields

from recsys.simulator.vocabulary import CATEGORIES

STREAM_CATALOG, STREAM_SHOPPERS, STREAM_HISTORY, STREAM_POPULARITY = range(4)
"""Independent random streams of one seed: np.random.default_rng([seed, stream])."""


@dataclass(frozen=True)
class WorldConfig:
    """Everything that defines a simulated shop; the same config and seed make the same world."""

    users: int = 10_000
    """Number of shoppers; user ids are 0 .. users-1."""
    items: int = 5_000
    """Number of products in the initial catalog; item ids are 1 .. items (index + 1)."""
    days: int = 30
    """Days of logged history that generate_events() writes."""
    seed: int = 0
    """Seed of everything the world draws (catalog, shoppers, logged history)."""
    sessions_per_day: float = 0.16
    """Probability that a shopper visits on a given day; step() advances the clock at this rate of traffic."""
    views_per_session: float = 9.0
    """Mean number of products a logged visit shows (1 + Poisson)."""
    revealed_interests: int = 2
    """Categories each shopper likes that their logged history shows."""
    latent_interests: int = 2
    """Categories each shopper likes that their logged history never shows (the shop never showed them)."""
    emerging_categories: int = 2
    """Trending categories: nobody's history reveals them, but many shoppers hold them as latent interests."""
    emerging_share: float = 0.6
    """Fraction of latent interests that fall on the emerging categories."""
    interest_logit: float = 3.5
    """How much more a shopper likes an interest category than another one, in logits."""
    base_logit: float = -1.5
    """Attraction logit of a neutral product for a neutral shopper."""
    quality_sd: float = 0.5
    """Spread of each product's own appeal (the per-item base attraction a model can learn), in logits."""
    history_focus: float = 0.8
    """Share of logged exposures that fall in a shopper's revealed categories (the rest: other non-latent ones)."""
    position_decay: float = 0.7
    """Examination of position j is (1 + j) ** -position_decay (position-based click model)."""
    satiation: float = 0.35
    """Attraction of a category is multiplied by exp(-satiation * s), s = the shopper's satiation with it."""
    satiation_half_life: float = 2.0
    """Visits after which a shopper's satiation with a category has halved."""
    purchase_satiation: float = 2.0
    """Satiation a purchase adds to its category (a click adds 1)."""
    cart_rate: float = 0.3
    """Probability that a click puts the product in the cart."""
    purchase_rate: float = 0.5
    """Probability that a carted product is bought."""
    drift_sd: float = 0.5
    """Stationary spread of each shopper's drift in category tastes, in logits (Ornstein-Uhlenbeck)."""
    drift_days: float = 30.0
    """Time constant of taste drift, in days."""
    new_hit_share: float = 0.25
    """Share of injected products that are hits (their appeal is raised by new_hit_boost)."""
    new_hit_boost: float = 2.0
    """Extra appeal of a hit among injected products, in logits."""
    history_len: int = 50
    """Clicked products remembered per shopper for histories()."""
    start: str = "2024-01-01"
    """UTC date of day 0 of the logged history (YYYY-MM-DD)."""

    def __post_init__(self) -> None:
        at_least = {"users": 1, "items": 1, "days": 0, "revealed_interests": 1, "latent_interests": 0,
                    "emerging_categories": 0, "history_len": 1}
        for name, low in at_least.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < low:
                raise ValueError(f"WorldConfig.{name}: {value!r} must be a whole number >= {low}")
        unit = ("sessions_per_day", "emerging_share", "history_focus", "cart_rate", "purchase_rate",
                "new_hit_share")
        for name in unit:
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"WorldConfig.{name}: {value!r} must be in [0, 1]")
        if self.sessions_per_day == 0.0:
            raise ValueError("WorldConfig.sessions_per_day: 0.0 must be in (0, 1]; shoppers have to visit")
        positive = ("views_per_session", "satiation_half_life", "drift_days")
        for name in positive:
            if not getattr(self, name) > 0:
                raise ValueError(f"WorldConfig.{name}: {getattr(self, name)!r} must be > 0")
        non_negative = ("interest_logit", "quality_sd", "position_decay", "satiation", "purchase_satiation",
                        "drift_sd", "new_hit_boost")
        for name in non_negative:
            if not getattr(self, name) >= 0:
                raise ValueError(f"WorldConfig.{name}: {getattr(self, name)!r} must be >= 0")
        self.check_interests()
        try:
            dt.date.fromisoformat(self.start)
        except (TypeError, ValueError):
            raise ValueError(f"WorldConfig.start: {self.start!r} is not a date; write YYYY-MM-DD") from None

    def check_interests(self) -> None:
        """Interest counts must fit the catalog's categories (emerging ones are never revealed)."""
        n = len(CATEGORIES)
        if self.emerging_categories >= n:
            raise ValueError(f"WorldConfig.emerging_categories: {self.emerging_categories} must be < {n}, "
                             "the number of categories")
        room = n - self.emerging_categories
        if self.revealed_interests + self.latent_interests > room:
            raise ValueError(f"WorldConfig.revealed_interests: {self.revealed_interests} revealed plus "
                             f"{self.latent_interests} latent must be <= {room} (categories that are not emerging)")

    def to_json(self) -> dict:
        """The config as a JSON-ready dict; WorldConfig(**d) restores it."""
        return {f.name: getattr(self, f.name) for f in fields(self)}
