"""RecBole atomic files (``<name>.inter``, ``<name>.item``) mapped onto the events and items tables.

The format (RecBole docs, "Atomic Files"): tab-separated, no quoting, one header row of
``field:type`` with type ``token``, ``token_seq``, ``float`` or ``float_seq``; sequences are
space-separated.

The mapping:
- **Ids.** Tokens are strings; the tables want int64. When every token of a kind is a plain integer
  (``"42"``, not ``"042"``) its number is kept. Otherwise the sorted distinct tokens are numbered
  0..n-1, which does not depend on row order. Item tokens are numbered over ``.inter`` and ``.item``
  together so that both tables agree. The tokens stay in extra columns ``user_token`` and
  ``item_token``, so the mapping is reversible.
- **Events.** Every interaction is a positive; ``recsys.data.ratings`` says which become purchases.
  ``ts`` comes from the ``timestamp`` field (unix seconds). Other ``.inter`` fields are kept as
  extra columns.
- **Items.** ``title`` is the first field in ``TITLE_FIELDS``, ``category`` the first token of the
  first field in ``CATEGORY_FIELDS``, ``brand`` and ``price`` are taken when present. Every other
  field goes into ``attributes`` under its RecBole name, as the file's text. Items seen only in
  ``.inter`` get the title ``"item <token>"``, so that every event's item has a row.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from recsys.data.io import validate_frame
from recsys.data.ratings import events_from_ratings
from recsys.data.validation import SchemaError, cast_column, first_true

ATOMIC_TYPES = ("token", "token_seq", "float", "float_seq")
TITLE_FIELDS = ("title", "movie_title", "item_name", "name")
CATEGORY_FIELDS = ("category", "categories", "class", "genre", "genres")
PLAIN_INTEGER = r"-?(0|[1-9][0-9]{0,17})"


FORMAT_FIX = "RecBole atomic files are UTF-8, tab-separated, one value per header field"


def read_header(path: Path) -> tuple[list[str], list[str]]:
    """Field names and RecBole types of the header row, or a SchemaError saying what is wrong with it."""
    try:
        with path.open(encoding="utf-8") as f:
            header = f.readline().rstrip("\r\n").split("\t")
    except UnicodeDecodeError as err:
        raise SchemaError(str(path), f"not UTF-8 text ({err.reason} at byte {err.start})",
                          "re-encode it, e.g. iconv -f latin1 -t utf-8") from None
    if len(header) == 1 and ("," in header[0] or ";" in header[0]):
        raise SchemaError(str(path), f"the header {header[0]!r} is one field: the file is not tab-separated",
                          FORMAT_FIX)
    names, kinds = [], []
    for field in header:
        name, _, kind = field.rpartition(":")
        if kind not in ATOMIC_TYPES or not name:
            raise SchemaError(str(path), f"header field {field!r} has no RecBole type",
                              "write header fields as name:type, type one of " + ", ".join(ATOMIC_TYPES))
        if name in names:
            raise SchemaError(str(path), f"header field {name!r} appears twice", "keep one field of each name")
        names.append(name)
        kinds.append(kind)
    return names, kinds


def first_ragged_line(path: Path, width: int) -> tuple[int | None, str]:
    """(data row from 0, what is wrong) of the first row without ``width`` tab-separated fields."""
    with path.open(encoding="utf-8", errors="replace") as f:
        next(f)
        bad = next(((i, line.rstrip("\r\n").count("\t") + 1) for i, line in enumerate(f)
                    if line.strip("\r\n") and line.rstrip("\r\n").count("\t") + 1 != width), None)
    return (None, "rows with more or fewer fields than the header") if bad is None else \
        (bad[0], f"{bad[1]} tab-separated fields where the header has {width}")


def read_atomic(path: Path) -> pa.Table:
    """One atomic file as Arrow: columns named without their type, text as strings, floats as float64."""
    names, kinds = read_header(path)
    ragged = []
    try:
        table = pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(column_names=names, skip_rows=1),
            parse_options=pcsv.ParseOptions(delimiter="\t", quote_char=False,
                                            invalid_row_handler=lambda row: ragged.append(row) or "skip"),
            convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(names, pa.string()),
                                                strings_can_be_null=True, null_values=[""]),
        )
    except pa.ArrowInvalid as err:
        raise SchemaError(str(path), f"not a readable atomic file ({err})", FORMAT_FIX) from None
    if ragged:
        row, problem = first_ragged_line(path, len(names))
        raise SchemaError(str(path), problem, FORMAT_FIX, row=row)
    for i, (name, kind) in enumerate(zip(names, kinds, strict=True)):
        if kind == "float":
            table = table.set_column(i, name, cast_column(table[name], pa.field(name, pa.float64()), str(path)))
    return table


def require_filled(table: pa.Table, fields: tuple[str, ...], path: Path) -> None:
    """The fields exist and hold no empty value, or a SchemaError naming the file, field and row."""
    for name in fields:
        if name not in table.column_names:
            raise SchemaError(str(path), f"missing field '{name}:token'",
                              f"RecBole {path.suffix} files need the field {name}:token")
        row = first_true(pc.is_null(table[name]))
        if row >= 0:
            raise SchemaError(str(path), "empty value", "every row needs one; fill it in or drop the row",
                              column=name, row=row)


def token_ids(tokens: np.ndarray) -> pd.Series:
    """Distinct tokens -> int64 ids: the integer itself when all are plain integers, else the sorted rank."""
    distinct = pd.Index(pd.unique(tokens)).sort_values()
    if distinct.str.fullmatch(PLAIN_INTEGER).all():
        return pd.Series(distinct.astype(np.int64), index=distinct)
    return pd.Series(np.arange(len(distinct), dtype=np.int64), index=distinct)


def lookup(ids: pd.Series, tokens: np.ndarray) -> np.ndarray:
    """The int64 ids of ``tokens`` under a ``token_ids`` map (vectorized)."""
    return ids.to_numpy()[ids.index.get_indexer(tokens)]


def first_of(names: tuple[str, ...], columns: list[str]) -> str | None:
    """The first of ``names`` that is a column, or None."""
    return next((name for name in names if name in columns), None)


def items_frame(item: pd.DataFrame | None, item_ids: pd.Series) -> pd.DataFrame:
    """Items-schema rows for every id in ``item_ids`` (the .item rows first, then placeholders)."""
    item = pd.DataFrame({"item_id": pd.Series(dtype=str)}) if item is None else item
    known = item["item_id"].to_numpy(dtype=object)
    missing = np.setdiff1d(item_ids.index.to_numpy(dtype=object), known)
    title = first_of(TITLE_FIELDS, list(item.columns))
    category = first_of(CATEGORY_FIELDS, list(item.columns))
    used = {"item_id", title, "brand", "price"}
    attribute_fields = [c for c in item.columns if c not in used]
    attributes = None
    if attribute_fields and len(item):
        # pandas writes one JSON object per line in C; no per-row Python.
        attributes = item[attribute_fields].fillna("").to_json(orient="records", lines=True).splitlines()
    rows = pd.DataFrame({
        "item_id": lookup(item_ids, known),
        "title": item[title] if title else None,
        "category": item[category].str.split(" ", n=1).str[0] if category else None,
        "brand": item["brand"] if "brand" in item else None,
        "price": item["price"] if "price" in item else np.nan,
        "attributes": attributes,
        "item_token": known,
    })
    rows["title"] = rows["title"].fillna("item " + rows["item_token"])
    placeholders = pd.DataFrame({"item_id": lookup(item_ids, missing), "title": "item " + pd.Series(missing),
                                 "item_token": missing})
    return pd.concat([rows, placeholders], ignore_index=True) if len(missing) else rows


def resolve_prefix(path_prefix: str | os.PathLike) -> Path:
    """``data/ml-100k/ml-100k`` as given, or ``data/ml-100k`` (a RecBole dataset folder) -> its prefix."""
    prefix = Path(path_prefix)
    return prefix / prefix.name if prefix.is_dir() else prefix


def load_recbole(path_prefix: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read ``<prefix>.inter`` (required) and ``<prefix>.item`` (optional) -> (items_df, events_df).

    Both frames are validated against the schemas; see the module docstring for the mapping.
    """
    prefix = resolve_prefix(path_prefix)
    inter_path, item_path = prefix.with_name(prefix.name + ".inter"), prefix.with_name(prefix.name + ".item")
    if not inter_path.exists():
        raise FileNotFoundError(f"{inter_path}: no RecBole interaction file; pass the dataset's path prefix, "
                                "e.g. data/ml-100k/ml-100k for data/ml-100k/ml-100k.inter")
    inter = read_atomic(inter_path)
    numeric = tuple(name for name in ("rating", "timestamp") if name in inter.column_names)
    require_filled(inter, ("user_id", "item_id", *numeric), inter_path)
    item = None
    if item_path.exists():
        item_table = read_atomic(item_path)
        require_filled(item_table, ("item_id",), item_path)
        item = item_table.to_pandas()
    user_tokens = inter["user_id"].to_numpy(zero_copy_only=False)
    item_tokens = inter["item_id"].to_numpy(zero_copy_only=False)
    user_ids = token_ids(user_tokens)
    known = () if item is None else item["item_id"].to_numpy(dtype=object)
    item_ids = token_ids(np.concatenate([item_tokens, np.asarray(known, dtype=object)]))
    rest = [name for name in inter.column_names if name not in ("user_id", "item_id", "rating", "timestamp")]
    # Read as numbers whatever type the header declares: a rating:token of "5" is still a rating.
    column = {name: cast_column(inter[name], pa.field(name, pa.float64()), str(inter_path)).to_numpy()
              for name in numeric}
    events = events_from_ratings(lookup(user_ids, user_tokens), lookup(item_ids, item_tokens),
                                 column.get("rating"), column.get("timestamp"))
    for name in rest:
        events[name] = inter[name].to_numpy(zero_copy_only=False)
    events["user_token"], events["item_token"] = user_tokens, item_tokens
    items = items_frame(item, item_ids)
    return (validate_frame(items, "items", str(item_path if item is not None else inter_path)),
            validate_frame(events, "events", str(inter_path)))
