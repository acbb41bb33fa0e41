"""The three tables every layer shares: items, events and impressions (DESIGN.md, "Files").

Ids are int64 everywhere. Timestamps are UTC milliseconds. ``attributes`` is a JSON object of
string keys and string values, stored as a string so that Parquet and CSV carry it alike.
Positions in a slate count from 0 (the top or leftmost slot).
"""

from __future__ import annotations

import pyarrow as pa

EVENT_TYPES: tuple[str, ...] = ("view", "click", "cart", "purchase")
"""Allowed values of ``events.event``, weakest to strongest signal."""

TS = pa.timestamp("ms", tz="UTC")

ITEMS = pa.schema(
    [
        pa.field("item_id", pa.int64(), nullable=False),
        pa.field("title", pa.string(), nullable=False),
        pa.field("category", pa.string()),
        pa.field("brand", pa.string()),
        pa.field("price", pa.float64()),
        pa.field("attributes", pa.string()),
    ],
    metadata={"serendip.table": "items", "serendip.schema_version": "1"},
)

EVENTS = pa.schema(
    [
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("item_id", pa.int64(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("event", pa.string(), nullable=False),
    ],
    metadata={"serendip.table": "events", "serendip.schema_version": "1"},
)

IMPRESSIONS = pa.schema(
    [
        pa.field("impression_id", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("policy", pa.string(), nullable=False),
        pa.field("item_id", pa.int64(), nullable=False),
        pa.field("position", pa.int32(), nullable=False),
        pa.field("propensity", pa.float64(), nullable=False),
        pa.field("score", pa.float64()),
        pa.field("reward", pa.float64(), nullable=False),
    ],
    metadata={"serendip.table": "impressions", "serendip.schema_version": "1"},
)

DECISIONS = pa.schema(
    [
        pa.field("impression_id", pa.string(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("policy", pa.string(), nullable=False),
        pa.field("model_version", pa.string(), nullable=False),
        pa.field("candidate_ids", pa.list_(pa.int64()), nullable=False),
        pa.field("candidate_scores", pa.list_(pa.float32()), nullable=False),
        pa.field("candidate_prior", pa.list_(pa.float32())),
        pa.field("user_vector", pa.list_(pa.float32())),
    ],
    metadata={"serendip.table": "decisions", "serendip.schema_version": "1"},
)
"""The decision context of each served impression (one row per slate), beside the impressions
table: every candidate the policy ranked, with the model's score and calibrated prior, the model
version and the user vector, so any policy (the linear ones with the model's item vectors) can be
replayed on the log."""

SCHEMAS: dict[str, pa.Schema] = {"items": ITEMS, "events": EVENTS, "impressions": IMPRESSIONS}
