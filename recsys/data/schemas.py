"""The three tables every layer shares: items, events and impressions, each as Parquet with one schema.

Ids are int64 everywhere. Timestamps are UTC milliseconds. ``attributes`` is a JSON object of
string keys and string values, stored as a string so that Parquet and CSV carry it alike.
Positions in a slate count from 0 (the top or leftmost slot).
"""

from __future__ import annotations

import pyarrow as pa

EVENT_REWARDS: dict[str, float] = {"view": 0.0, "click": 1.0, "cart": 1.0, "purchase": 1.0}
"""The one table of event names, weakest to strongest signal, and the reward each earns as feedback
(a click is the unit of success). Every list of event names derives from it."""

EVENT_TYPES: tuple[str, ...] = tuple(EVENT_REWARDS)
"""Allowed values of ``events.event``, weakest to strongest signal."""

POSITIVE_EVENTS: tuple[str, ...] = tuple(name for name, reward in EVENT_REWARDS.items() if reward > 0)
"""The events that reward a recommendation (click, cart, purchase): training's positives by default."""

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

QUERIES = pa.schema(
    [
        pa.field("user_id", pa.int64(), nullable=False),
        pa.field("ts", TS, nullable=False),
        pa.field("query", pa.string(), nullable=False),
        pa.field("item_id", pa.int64(), nullable=False),
    ],
    metadata={"serendip.table": "queries", "serendip.schema_version": "1"},
)
"""An optional search log beside the events: one row per product clicked after a search, with the
search's free text, so training can teach the user tower what /recommend's ``query`` means."""

SCHEMAS: dict[str, pa.Schema] = {"items": ITEMS, "events": EVENTS, "impressions": IMPRESSIONS, "queries": QUERIES}
