"""Check a raw Arrow table against one of the shared schemas and cast it, or say exactly what is wrong.

Every check is vectorized with ``pyarrow.compute``. Where a check fails, the first bad row is found
either with ``pc.index`` on the failure mask or, for a failed cast, by bisection over slices
(O(log n) casts). The error names the source, the column, the 0-based row, the bad value and the fix.

Rules that are part of the interface:
- Checks run column by column in schema order, and for each column: cast, then nulls, then the
  column's value rule. The first failing check raises; a table is either fully valid or rejected.
- ``ts`` must carry a time zone. A naive timestamp or a bare number is ambiguous (local time?
  seconds or milliseconds?), so it is rejected with the conversion to use. Zoned values are
  converted to UTC and truncated to milliseconds.
- Columns that are not in the schema are kept, unchecked and unchanged, after the schema's columns:
  a shop's own columns (a session id, a rating) survive a round trip. Select
  ``list(SCHEMAS[table].names)`` to drop them.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Callable

import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recsys.data.schemas import EVENT_TYPES, SCHEMAS, TS

ROW_NOUN = {"items": "item", "events": "event", "impressions": "impression", "queries": "search click"}
"""What one row of each table is, for messages ("every event row needs a user_id")."""


class SchemaError(ValueError):
    """A table that breaks its schema; the message names the file, column, first bad row, value and fix."""

    def __init__(self, source: str, problem: str, fix: str, *, column: str | None = None,
                 row: int | None = None):
        where = source if column is None else f"{source}: column {column!r}"
        where = where if row is None else f"{where} row {row}"
        super().__init__(f"{where}: {problem}; {fix}")
        self.source, self.column, self.row = source, column, row


def schema_for(table: str) -> pa.Schema:
    """The pyarrow schema of a table name, or a ValueError listing the known names."""
    if table not in SCHEMAS:
        raise ValueError(f"unknown table {table!r}; use one of {', '.join(SCHEMAS)}")
    return SCHEMAS[table]


def show(value: object) -> str:
    """A bad value as a message prints it: strings quoted, numbers and times plain."""
    return repr(value) if isinstance(value, str) else str(value)


def first_failing_row(n: int, ok: Callable[[int, int], bool]) -> int:
    """The first row of [0, n) that fails, by bisection; ``ok(lo, hi)`` tests rows [lo, hi), and [0, n) fails."""
    lo, hi = 0, n
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if ok(lo, mid):
            lo = mid
        else:
            hi = mid
    return lo


def first_true(mask: pa.ChunkedArray | pa.Array) -> int:
    """Index of the first True in a boolean mask (nulls count as False), or -1."""
    return pc.index(pc.fill_null(mask, False), True).as_py()


# What each target type is called in messages, and how to write a value of it.
TYPE_NAME = {pa.int64(): "an integer (int64)", pa.int32(): "an integer (int32)",
             pa.float64(): "a number (float64)", pa.string(): "text (UTF-8 string)"}
TYPE_FIX = {
    pa.int64(): "ids must be whole numbers such as 42",
    pa.int32(): "write a whole number such as 2",
    pa.float64(): "write a plain number such as 0.25",
    pa.string(): "write UTF-8 text",
    TS: "write ISO-8601 with a zone offset such as 2024-05-01T12:00:00Z",
}


def cast_column(col: pa.ChunkedArray, field: pa.Field, source: str) -> pa.ChunkedArray:
    """Cast one column to its field's type, or raise SchemaError at the first value that does not fit."""
    if col.type == field.type:
        return col
    if len(col) == 0 or pa.types.is_null(col.type):  # nothing to misread: an empty or all-null column
        return pa.chunked_array([pa.nulls(len(col), field.type)])
    if field.type == TS:
        return cast_timestamp(col, field.name, source)
    try:
        pc.cast(col.slice(0, 0), field.type)
    except pa.ArrowNotImplementedError:
        raise SchemaError(source, f"has type {col.type}, which is not {TYPE_NAME[field.type]}",
                          TYPE_FIX[field.type], column=field.name) from None
    try:
        return pc.cast(col, field.type)
    except pa.ArrowInvalid:
        row = first_failing_row(len(col), lambda lo, hi: castable(col.slice(lo, hi - lo), field.type))
        raise SchemaError(source, f"{show(col[row].as_py())} is not {TYPE_NAME[field.type]}",
                          TYPE_FIX[field.type], column=field.name, row=row) from None


def castable(col: pa.ChunkedArray, to: pa.DataType) -> bool:
    """Whether every value of ``col`` casts safely to ``to``."""
    try:
        pc.cast(col, to)
    except pa.ArrowInvalid:
        return False
    return True


def cast_timestamp(col: pa.ChunkedArray, name: str, source: str) -> pa.ChunkedArray:
    """Zoned timestamps or zoned ISO-8601 strings -> timestamp[ms, UTC]; anything ambiguous is refused."""
    if pa.types.is_timestamp(col.type) and col.type.tz is None:
        raise SchemaError(source, f"has naive timestamps ({col.type}) with no time zone",
                          "say which zone they are in, e.g. pandas .dt.tz_localize('UTC')", column=name)
    if pa.types.is_integer(col.type) or pa.types.is_floating(col.type):
        raise SchemaError(source, f"has type {col.type}, not a timestamp, and its unit is ambiguous",
                          "convert it with pd.to_datetime(col, unit='s' or 'ms', utc=True)", column=name)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        # Through nanoseconds first: a string with sub-millisecond digits does not parse as ms.
        wide = pa.timestamp("ns", tz="UTC")
        try:
            col = pc.cast(col, wide)
        except pa.ArrowInvalid:
            row = first_failing_row(len(col), lambda lo, hi: castable(col.slice(lo, hi - lo), wide))
            raise SchemaError(source, f"{show(col[row].as_py())} is not a timestamp with a zone offset",
                              TYPE_FIX[TS], column=name, row=row) from None
    if not pa.types.is_timestamp(col.type):
        raise SchemaError(source, f"has type {col.type}, not a timestamp", TYPE_FIX[TS], column=name)
    return pc.cast(col, options=pc.CastOptions(TS, allow_time_truncate=True))


def first_bad_json_object(col: pa.ChunkedArray) -> int:
    """First row that is not a JSON object, or -1; nulls are fine.

    Shape is checked with one regex pass; syntax with one ``json.loads`` of all rows joined into a
    JSON array, and by bisection over such joins only when that fails.
    """
    bad = first_true(pc.invert(pc.match_substring_regex(col, r"^\s*\{[\s\S]*\}\s*$")))
    if bad >= 0:
        return bad
    texts = pc.fill_null(col, "{}")

    def ok(lo: int, hi: int) -> bool:
        try:
            # A row count check catches rows that only parse together ('{"a": "}', '{"}').
            return len(json.loads("[" + ",".join(texts.slice(lo, hi - lo).to_pylist()) + "]")) == hi - lo
        except json.JSONDecodeError:
            return False

    return -1 if ok(0, len(texts)) else first_failing_row(len(texts), ok)


def in_range(col: pa.ChunkedArray, low: float, high: float, low_open: bool) -> pa.ChunkedArray:
    """Mask of values in [low, high] (or (low, high] with low_open); NaN is out of range."""
    above = pc.greater(col, low) if low_open else pc.greater_equal(col, low)
    return pc.and_(above, pc.less_equal(col, high))


# Per-column value rules: (table, column) -> (bad-mask function, problem template, fix).
RULES: dict[tuple[str, str], tuple[Callable[[pa.ChunkedArray], pa.ChunkedArray], str, str]] = {
    ("events", "event"): (
        lambda c: pc.invert(pc.is_in(c, pa.array(EVENT_TYPES))),
        "{} is not one of " + ", ".join(EVENT_TYPES),
        "map the source's event names onto recsys.data.EVENT_TYPES"),
    ("impressions", "propensity"): (
        lambda c: pc.invert(in_range(c, 0.0, 1.0, low_open=True)),
        "{} is not in (0, 1]",
        "propensities must be the logging policy's probability of showing the item"),
    ("impressions", "reward"): (
        lambda c: pc.invert(in_range(c, 0.0, 1.0, low_open=False)),
        "{} is not in [0, 1]",
        "rewards must be a click (0 or 1) or a value scaled into [0, 1]"),
    ("impressions", "position"): (
        lambda c: pc.less(c, 0),
        "{} is negative",
        "positions count from 0 at the top of the slate"),
    ("items", "price"): (
        lambda c: pc.invert(pc.and_(pc.is_finite(c), pc.greater_equal(c, 0.0))),
        "{} is not a finite price >= 0",
        "leave the price empty (null) when it is unknown"),
}


def check_values(col: pa.ChunkedArray, table: str, field: pa.Field, source: str) -> None:
    """Nulls in a required column, the column's value rule, and JSON/uniqueness where they apply."""
    if not field.nullable:
        row = first_true(pc.is_null(col, nan_is_null=True))
        if row >= 0:
            raise SchemaError(source, "null is not allowed",
                              f"every {ROW_NOUN[table]} row needs {field.name!r}; fill it in or drop the row",
                              column=field.name, row=row)
    if (table, field.name) in RULES:
        bad, problem, fix = RULES[table, field.name]
        row = first_true(bad(col))
        if row >= 0:
            raise SchemaError(source, problem.format(show(col[row].as_py())), fix, column=field.name, row=row)
    if field.name == "attributes":
        row = first_bad_json_object(col)
        if row >= 0:
            raise SchemaError(source, f"{show(col[row].as_py())} is not a JSON object",
                              'write attributes as a JSON object of strings such as {"colour": "grey"}',
                              column=field.name, row=row)
    if table == "items" and field.name == "item_id":
        check_unique(col, source)


def check_unique(col: pa.ChunkedArray, source: str) -> None:
    """Item ids must be unique: name the first repeat and the row it repeats."""
    if pc.count_distinct(col).as_py() == len(col):
        return
    ids = col.to_numpy()
    row = int(pd.Series(ids).duplicated().to_numpy().argmax())
    seen_at = int((ids == ids[row]).argmax())
    raise SchemaError(source, f"{ids[row]} repeats the item_id of row {seen_at}",
                      "item ids must be unique; keep one row per item", column="item_id", row=row)


def validate(raw: pa.Table, table: str, source: str) -> pa.Table:
    """Cast ``raw`` to the table's schema and check every rule; extra columns are kept after the schema's."""
    schema = schema_for(table)
    repeated = [name for name in raw.column_names if raw.column_names.count(name) > 1]
    if repeated:
        raise SchemaError(source, f"column {repeated[0]!r} appears {raw.column_names.count(repeated[0])} times",
                          "keep one column of each name")
    missing = [name for name in schema.names if name not in raw.column_names]
    if missing:
        extra = [name for name in raw.column_names if name not in schema.names]
        near = difflib.get_close_matches(missing[0], extra, n=1)
        hint = f" (is {near[0]!r} a misspelling?)" if near else ""
        raise SchemaError(source, f"missing column {missing[0]!r}{hint}",
                          f"the {table} table needs columns {', '.join(schema.names)}")
    columns = []
    for field in schema:
        col = cast_column(raw.column(field.name), field, source)
        check_values(col, table, field, source)
        columns.append(col)
    extras = [name for name in raw.column_names if name not in schema.names]
    fields = list(schema) + [raw.schema.field(name) for name in extras]
    return pa.table(columns + [raw.column(name) for name in extras],
                    schema=pa.schema(fields, metadata=schema.metadata))
