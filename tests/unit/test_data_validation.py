"""read_table / write_table: round trips, and one exact SchemaError message per kind of bad input."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from recsys.data import SCHEMAS, SchemaError, read_table, write_table


def items() -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": [10, 11, 12],
        "title": ["Northpeak trail shoe", "Plain tee", "Alder mug"],
        "category": ["shoes", None, "kitchen"],
        "brand": [None, "Northpeak", "Alder"],
        "price": [59.5, np.nan, 0.0],
        "attributes": ['{"colour": "grey"}', None, "{}"],
    })


def events() -> pd.DataFrame:
    return pd.DataFrame({
        "user_id": [1, 1, 2, 2],
        "item_id": [10, 11, 10, 12],
        "ts": pd.date_range("2024-05-01", periods=4, freq="h", tz="UTC"),
        "event": ["view", "click", "cart", "purchase"],
    })


def impressions(n: int = 20) -> pd.DataFrame:
    return pd.DataFrame({
        "impression_id": [f"imp-{i // 2}" for i in range(n)],
        "ts": pd.date_range("2024-05-01", periods=n, freq="min", tz="UTC"),
        "user_id": np.arange(n) // 2,
        "policy": "thompson",
        "item_id": np.arange(n) % 7,
        "position": np.arange(n) % 2,
        "propensity": 0.5,
        "score": np.linspace(-1, 1, n),
        "reward": (np.arange(n) % 3 == 0).astype(float),
    })


FRAMES = {"items": items, "events": events, "impressions": impressions}


def write_raw(df: pd.DataFrame, path) -> None:
    """Write without validation, as a foreign tool would."""
    if path.suffix == ".parquet":
        pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path)
    else:
        df.to_csv(path, index=False)


def exact(message: str) -> str:
    return f"^{re.escape(message)}$"


# (table, replaced columns, expected message after "<file>: "). Each row is read from Parquet and CSV.
BAD_BOTH = [
    ("items", {"price": ["59.5", None, "abc"]},
     "column 'price' row 2: 'abc' is not a number (float64); write a plain number such as 0.25"),
    ("items", {"price": [1.0, -3.0, 2.0]},
     "column 'price' row 1: -3.0 is not a finite price >= 0; leave the price empty (null) when it is unknown"),
    ("items", {"item_id": [10, 11, 10]},
     "column 'item_id' row 2: 10 repeats the item_id of row 0; item ids must be unique; keep one row per item"),
    ("items", {"title": ["a", None, "c"]},
     "column 'title' row 1: null is not allowed; every item row needs 'title'; fill it in or drop the row"),
    ("items", {"attributes": ["{}", '{"colour": }', None]},
     "column 'attributes' row 1: '{\"colour\": }' is not a JSON object; "
     'write attributes as a JSON object of strings such as {"colour": "grey"}'),
    ("items", {"attributes": ['["grey"]', "{}", None]},
     "column 'attributes' row 0: '[\"grey\"]' is not a JSON object; "
     'write attributes as a JSON object of strings such as {"colour": "grey"}'),
    ("events", {"user_id": pd.Series([1, None, 2, 2], dtype=object)},
     "column 'user_id' row 1: null is not allowed; every event row needs 'user_id'; fill it in or drop the row"),
    ("events", {"item_id": ["10", "11", "x9", "12"]},
     "column 'item_id' row 2: 'x9' is not an integer (int64); ids must be whole numbers such as 42"),
    ("events", {"event": ["view", "click", "like", "purchase"]},
     "column 'event' row 2: 'like' is not one of view, click, cart, purchase; "
     "map the source's event names onto recsys.data.EVENT_TYPES"),
    ("events", {"ts": None},
     "missing column 'ts'; the events table needs columns user_id, item_id, ts, event"),
    ("impressions", {"propensity": [0.5] * 17 + [0.0, 0.5, 0.5]},
     "column 'propensity' row 17: 0.0 is not in (0, 1]; "
     "propensities must be the logging policy's probability of showing the item"),
    ("impressions", {"propensity": [0.5, 1.5] + [0.5] * 18},
     "column 'propensity' row 1: 1.5 is not in (0, 1]; "
     "propensities must be the logging policy's probability of showing the item"),
    ("impressions", {"propensity": [0.5, 0.5, np.nan] + [0.5] * 17},
     "column 'propensity' row 2: null is not allowed; every impression row needs 'propensity'; "
     "fill it in or drop the row"),
    ("impressions", {"reward": [0.0] * 5 + [2.0] + [0.0] * 14},
     "column 'reward' row 5: 2.0 is not in [0, 1]; rewards must be a click (0 or 1) or a value scaled into [0, 1]"),
    ("impressions", {"reward": [-0.5] + [0.0] * 19},
     "column 'reward' row 0: -0.5 is not in [0, 1]; rewards must be a click (0 or 1) or a value scaled into [0, 1]"),
    ("impressions", {"position": [0, 1, 0, -1] + [0] * 16},
     "column 'position' row 3: -1 is negative; positions count from 0 at the top of the slate"),
    ("impressions", {"propensity": None, "propensty": [0.5] * 20},
     "missing column 'propensity' (is 'propensty' a misspelling?); the impressions table needs columns "
     "impression_id, ts, user_id, policy, item_id, position, propensity, score, reward"),
]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
@pytest.mark.parametrize(("table", "columns", "message"), BAD_BOTH)
def test_bad_file_raises_one_exact_error(tmp_path, suffix, table, columns, message):
    df = FRAMES[table]()
    for name, values in columns.items():
        df = df.drop(columns=name) if values is None else df.assign(**{name: values})
    path = tmp_path / f"{table}{suffix}"
    write_raw(df, path)
    with pytest.raises(SchemaError, match=exact(f"{path}: {message}")):
        read_table(path, table)


# Cases whose message depends on how the file stores the value (Parquet types vs CSV text).
BAD_ONE = [
    (".parquet", "events", {"ts": pd.date_range("2024-05-01", periods=4, freq="h")},
     "column 'ts': has naive timestamps (timestamp[ns]) with no time zone; "
     "say which zone they are in, e.g. pandas .dt.tz_localize('UTC')"),
    (".parquet", "events", {"ts": [1714521600, 1714521601, 1714521602, 1714521603]},
     "column 'ts': has type int64, not a timestamp, and its unit is ambiguous; "
     "convert it with pd.to_datetime(col, unit='s' or 'ms', utc=True)"),
    (".csv", "events", {"ts": ["2024-05-01T00:00:00Z", "2024-05-01T01:00:00+02:00", "2024-05-01 02:00:00",
                               "2024-05-01"]},
     "column 'ts' row 2: '2024-05-01 02:00:00' is not a timestamp with a zone offset; "
     "write ISO-8601 with a zone offset such as 2024-05-01T12:00:00Z"),
    (".parquet", "impressions", {"position": [0, 2**40] + [0] * 18},
     "column 'position' row 1: 1099511627776 is not an integer (int32); write a whole number such as 2"),
    (".csv", "impressions", {"position": [0, 2**40] + [0] * 18},
     "column 'position' row 1: '1099511627776' is not an integer (int32); write a whole number such as 2"),
    (".parquet", "events", {"item_id": [10.0, 11.0, 11.5, 12.0]},
     "column 'item_id' row 2: 11.5 is not an integer (int64); ids must be whole numbers such as 42"),
    (".parquet", "items", {"title": [["a"], ["b"], ["c"]]},
     "column 'title': has type list<element: string>, which is not text (UTF-8 string); write UTF-8 text"),
]


@pytest.mark.parametrize(("suffix", "table", "columns", "message"), BAD_ONE)
def test_bad_typed_values_name_how_to_write_them(tmp_path, suffix, table, columns, message):
    path = tmp_path / f"{table}{suffix}"
    write_raw(FRAMES[table]().assign(**columns), path)
    with pytest.raises(SchemaError, match=exact(f"{path}: {message}")):
        read_table(path, table)


def test_empty_tables_read_and_write_with_schema_dtypes(tmp_path):
    csv = tmp_path / "events.csv"
    csv.write_text("user_id,item_id,ts,event\n")
    empty = pd.DataFrame({name: [] for name in SCHEMAS["events"].names})
    for path in (csv, write_table(empty, tmp_path / "events.parquet", "events")):
        back = read_table(path, "events")
        assert back.empty and str(back["ts"].dtype) == "datetime64[ms, UTC]" and back["user_id"].dtype == np.int64


def test_error_carries_its_location(tmp_path):
    path = tmp_path / "impressions.parquet"
    write_raw(impressions().assign(position=[0] * 19 + [-2]), path)
    with pytest.raises(SchemaError) as caught:
        read_table(path, "impressions")
    assert (caught.value.source, caught.value.column, caught.value.row) == (str(path), "position", 19)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
@pytest.mark.parametrize("table", sorted(FRAMES))
def test_round_trip_keeps_values_and_schema_dtypes(tmp_path, suffix, table):
    df = FRAMES[table]()
    back = read_table(write_table(df, tmp_path / f"{table}{suffix}", table), table)
    assert list(back.columns) == SCHEMAS[table].names
    expected = pa.Table.from_pandas(df, preserve_index=False).cast(SCHEMAS[table]).to_pandas()
    pd.testing.assert_frame_equal(back, expected)


def test_csv_tells_null_from_empty_string(tmp_path):
    df = items().assign(title=["a", "", "c"])
    back = read_table(write_table(df, tmp_path / "items.csv", "items"), "items")
    assert back["title"][1] == "" and back["category"][1] is None


def test_timestamps_become_utc_milliseconds(tmp_path):
    ts = pd.to_datetime(["2024-05-01T09:00:00.123456+09:00"] * 4)
    back = read_table(write_table(events().assign(ts=ts), tmp_path / "e.parquet", "events"), "events")
    assert str(back["ts"].dtype) == "datetime64[ms, UTC]"
    assert back["ts"][0] == pd.Timestamp("2024-05-01T00:00:00.123Z")


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_extra_columns_are_kept_after_the_schema_columns(tmp_path, suffix):
    df = events().assign(session=["s1", "s1", "s2", "s2"], rating=[4.0, 3.0, 5.0, 1.0])
    back = read_table(write_table(df, tmp_path / f"events{suffix}", "events"), "events")
    assert list(back.columns) == [*SCHEMAS["events"].names, "session", "rating"]
    assert back["session"].tolist() == ["s1", "s1", "s2", "s2"] and back["rating"].tolist() == [4.0, 3.0, 5.0, 1.0]


def test_write_refuses_a_bad_frame_and_leaves_no_file(tmp_path):
    path = tmp_path / "impressions.parquet"
    with pytest.raises(SchemaError, match=exact(
            f"{path}: column 'reward' row 0: 3.0 is not in [0, 1]; "
            "rewards must be a click (0 or 1) or a value scaled into [0, 1]")):
        write_table(impressions().assign(reward=3.0), path, "impressions")
    assert list(tmp_path.iterdir()) == []


def test_first_bad_row_is_found_across_chunks(tmp_path):
    path = tmp_path / "impressions.parquet"
    df = impressions(5000).assign(propensity=0.5)
    df.loc[4321, "propensity"] = 0.0
    pq.write_table(pa.Table.from_pandas(df, preserve_index=False), path, row_group_size=1000)
    with pytest.raises(SchemaError, match=r"column 'propensity' row 4321: 0\.0 is not in \(0, 1\]"):
        read_table(path, "impressions")


@pytest.mark.parametrize(("call", "error", "message"), [
    (lambda p: read_table(p / "items.json", "items"), ValueError,
     "items.json: unknown table file type '.json'; name it .parquet or .csv"),
    (lambda p: read_table(p / "items.parquet", "products"), ValueError,
     "unknown table 'products'; use one of items, events, impressions"),
    (lambda p: read_table(p / "missing.parquet", "items"), FileNotFoundError,
     "missing.parquet: no such table file"),
])
def test_bad_calls_name_the_fix(tmp_path, call, error, message):
    with pytest.raises(error, match=re.escape(message)):
        call(tmp_path)


def test_a_repeated_column_is_refused(tmp_path):
    path = tmp_path / "events.csv"
    path.write_text("user_id,item_id,ts,event,ts\n1,2,2024-05-01T00:00:00Z,view,2024-05-02T00:00:00Z\n")
    with pytest.raises(SchemaError, match=exact(f"{path}: column 'ts' appears 2 times; keep one column of each name")):
        read_table(path, "events")


def test_unreadable_parquet_is_a_schema_error(tmp_path):
    path = tmp_path / "items.parquet"
    path.write_text("not parquet")
    with pytest.raises(SchemaError, match=re.escape(f"{path}: not a readable .parquet table (")):
        read_table(path, "items")
