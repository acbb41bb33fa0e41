"""The data layer: the three shared tables, their validated I/O, foreign-format loaders and splits.

- ``read_table`` / ``write_table``: Parquet or CSV, validated against ``recsys.data.schemas``.
- Loaders: RecBole atomic files, GroupLens MovieLens-100k, the Open Bandit Dataset.
- Splits: time-ordered leave-one-out, random per-user 8:1:1, cold items.
"""

from recsys.data.io import read_table, write_table
from recsys.data.movielens import fetch_ml100k, load_movielens_100k
from recsys.data.obd import ObdLog, load_obd
from recsys.data.recbole import load_recbole
from recsys.data.schemas import EVENT_TYPES, EVENTS, IMPRESSIONS, ITEMS, SCHEMAS
from recsys.data.splits import Split, cold_item_split, leave_one_out, random_split
from recsys.data.validation import SchemaError

__all__ = [
    "EVENTS", "EVENT_TYPES", "IMPRESSIONS", "ITEMS", "SCHEMAS", "ObdLog", "SchemaError", "Split",
    "cold_item_split", "fetch_ml100k", "leave_one_out", "load_movielens_100k", "load_obd",
    "load_recbole", "random_split", "read_table", "write_table",
]
