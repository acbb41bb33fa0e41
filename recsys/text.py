"""How an item reads to the language model: one line of text per product.

Training and serving both call :func:`render_items`, so the item tower sees the same words for a
product at fine-tuning time and at request time (one implementation, so the two cannot drift apart).
The line is ``title | category | brand | price band | key: value, ...``; missing fields are left
out rather than written as "None", so a catalog without brands or prices still reads naturally.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

TEXT_TEMPLATE = "title | category | brand | price band | attributes"
"""The field order of a rendered item; stored in serendip.json so a model records what it read."""

SEPARATOR = " | "

PRICE_BANDS: tuple[tuple[float, str], ...] = (
    (20.0, "budget"),
    (75.0, "mid-range"),
    (250.0, "premium"),
    (math.inf, "luxury"),
)
"""Upper price bound (exclusive) and the words used for that band."""


def price_band(price: float | None) -> str | None:
    """Words for a price ("budget", "mid-range", "premium", "luxury"), or None when unknown."""
    if price is None or not math.isfinite(float(price)) or float(price) < 0:
        return None
    for upper, words in PRICE_BANDS:
        if float(price) < upper:
            return f"{words} price"
    return None


def _attributes_text(attributes: Any) -> str | None:
    """``"colour: grey, material: mesh"`` from a JSON object string (or a mapping)."""
    if attributes is None or (isinstance(attributes, float) and math.isnan(attributes)):
        return None
    if isinstance(attributes, str):
        if not attributes.strip():
            return None
        try:
            attributes = json.loads(attributes)
        except json.JSONDecodeError:
            return attributes.strip()
    if not isinstance(attributes, Mapping) or not attributes:
        return None
    return ", ".join(f"{key}: {value}" for key, value in attributes.items() if value not in (None, ""))


def _field(value: Any) -> str | None:
    """A text field, or None when it is missing or blank."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def render_item(row: Mapping[str, Any]) -> str:
    """One product as one line of text, in the order of :data:`TEXT_TEMPLATE`."""
    parts = [
        _field(row.get("title")),
        _field(row.get("category")),
        _field(row.get("brand")),
        price_band(row.get("price")) if _field(row.get("price")) is not None else None,
        _attributes_text(row.get("attributes")),
    ]
    return SEPARATOR.join(p for p in parts if p)


def render_items(df: pd.DataFrame) -> list[str]:
    """Every row of an items table as text (see :func:`render_item`); columns may be missing."""
    if "title" not in df.columns:
        raise KeyError("items table: column 'title' is missing; render_items needs at least item titles")
    return [render_item(row) for row in df.to_dict("records")]
