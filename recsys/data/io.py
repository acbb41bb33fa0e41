"""Read and write the shared tables as Parquet or CSV (chosen by suffix), always validated.

``read_table`` returns the whole table or raises ``SchemaError``: never a partial table.
``write_table`` validates before it writes and writes through a temporary file, so a failed write
leaves no half-written table behind.

CSV conventions (what ``write_table`` writes and ``read_table`` expects):
- a header row; comma-separated; UTF-8;
- an empty unquoted field is null, a quoted ``""`` is the empty string;
- ``ts`` is ISO-8601 with a zone offset (``2024-05-01 12:00:00.000Z``);
- row numbers in errors count data rows from 0, the header excluded.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq

from recsys.data.validation import SchemaError, schema_for, validate

SUFFIXES = (".parquet", ".csv")


def file_kind(path: Path) -> str:
    """'.parquet' or '.csv' from the file name, or a ValueError naming the file and the choices."""
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: unknown table file type {path.suffix!r}; name it .parquet or .csv")
    return suffix


def read_raw(path: Path, schema: pa.Schema) -> pa.Table:
    """The file as Arrow, unvalidated. CSV schema columns arrive as strings and are cast by ``validate``."""
    try:
        if file_kind(path) == ".parquet":
            return pq.read_table(path)
        convert = pcsv.ConvertOptions(
            column_types={name: pa.string() for name in schema.names},
            strings_can_be_null=True,
            null_values=[""],
            quoted_strings_can_be_null=False,
        )
        return pcsv.read_csv(path, convert_options=convert)
    except (pa.ArrowInvalid, OSError) as err:
        if isinstance(err, FileNotFoundError) or not path.exists():
            raise FileNotFoundError(f"{path}: no such table file") from err
        raise SchemaError(str(path), f"not a readable {path.suffix} table ({err})",
                          "write it with recsys.data.write_table or check the file's format") from None


def read_table(path: str | os.PathLike, table: str) -> pd.DataFrame:
    """Read ``items``, ``events`` or ``impressions`` from .parquet or .csv, fully validated.

    Columns come in schema order, then any extra columns of the file, unchanged.
    """
    path = Path(path)
    schema = schema_for(table)
    return validate(read_raw(path, schema), table, source=str(path)).to_pandas()


def validate_frame(df: pd.DataFrame, table: str, source: str) -> pd.DataFrame:
    """``df`` cast to the table's schema and validated, as a DataFrame; ``source`` names it in errors.

    Loaders use it so that what they return has exactly the dtypes ``read_table`` returns.
    """
    return validate(pa.Table.from_pandas(df, preserve_index=False), table, source=source).to_pandas()


def write_table(df: pd.DataFrame, path: str | os.PathLike, table: str) -> Path:
    """Cast ``df`` to the table's schema, validate it, and write .parquet or .csv; returns the path.

    Error rows are positions in ``df`` (0-based), which are also the rows of the written file.
    """
    path = Path(path)
    kind = file_kind(path)
    checked = validate(pa.Table.from_pandas(df, preserve_index=False), table, source=str(path))
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    if kind == ".parquet":
        pq.write_table(checked, partial)
    else:
        pcsv.write_csv(checked, partial)
    os.replace(partial, path)
    return path
