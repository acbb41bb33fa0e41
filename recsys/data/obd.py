"""The Open Bandit Dataset (ZOZOTOWN's logged slates; Saito et al., NeurIPS 2021) as impressions.

Layout (``<root>/README.md``): ``<root>/<policy>/<campaign>/<campaign>.csv`` holds one row per logged
(user, item, position) with ``timestamp``, ``item_id``, ``position`` (1..3), ``click``,
``propensity_score``, ``user_feature_0..3`` (hashed categoricals) and ``user-item_affinity_0..79``;
``item_context.csv`` next to it holds ``item_feature_0`` (numeric) and ``item_feature_1..3``.

The mapping onto the impressions table:
- ``impression_id`` = ``"<policy>-<row>"`` (the file's row index), ``policy`` = the folder name;
- ``position`` counts from 0 (the file's 1, 2, 3 become 0, 1, 2);
- ``propensity`` = ``propensity_score``, ``reward`` = ``click``, ``score`` is null;
- ``user_id``: the log has no user id, only four hashed user features. ``user_id`` is a stable
  64-bit hash of those four strings (pandas' ``hash_pandas_object``, fixed key), so it names a
  user *segment*: equal features give equal ids in every file and folder.

Caveat from the README: ``item_context.csv`` differs between the two policy folders for the same
item ids, so ``item_features`` of a ``random`` log and a ``bts`` log are not interchangeable.
"""

from __future__ import annotations

import csv
import difflib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pcsv

from recsys.data.io import validate_frame
from recsys.data.validation import SchemaError, cast_column, cast_timestamp

POLICIES = ("random", "bts")
CAMPAIGNS = ("all", "men", "women")
USER_FEATURES = tuple(f"user_feature_{i}" for i in range(4))
LOG_COLUMNS = {"timestamp": None, "item_id": pa.int64(), "position": pa.int32(), "click": pa.float64(),
               "propensity_score": pa.float64(), **dict.fromkeys(USER_FEATURES, pa.string())}
"""Columns of a log file and their types (``timestamp``: zoned ISO-8601), besides ``user-item_affinity_<item>``."""
CONTEXT_COLUMNS = {"item_id": pa.int64(), "item_feature_0": pa.float64(),
                   **{f"item_feature_{i}": pa.string() for i in (1, 2, 3)}}
"""Columns of ``item_context.csv`` and their types."""
LAYOUT_FIX = "OBD files are comma-separated with a header row (see the dataset's README.md)"


@dataclass(frozen=True)
class ObdLog:
    """One Open Bandit Dataset log: impressions plus the contexts a contextual policy needs."""

    impressions: pd.DataFrame
    """Impressions schema, one row per logged (user, item, position), in file order."""
    user_features: np.ndarray
    """(n, 4) int64: codes of ``user_feature_0..3``, each numbered by sorted distinct value within this file."""
    affinity: np.ndarray
    """(n, n_items) float64: ``user-item_affinity_<item>`` of each row's user to every item."""
    item_features: np.ndarray
    """(n_items, f) float64, row = item id: ``item_feature_0``, then one-hots of ``item_feature_1..3``."""
    item_feature_names: tuple[str, ...]
    """Names of the ``item_features`` columns (``item_feature_2=<hash>`` for a one-hot)."""
    n_items: int
    """Number of items (rows of ``item_context.csv``)."""
    n_positions: int
    """Number of slate positions (3 in ZOZOTOWN's layout)."""


def log_paths(root: Path, policy: str, campaign: str) -> tuple[Path, Path]:
    """The log and item-context files of (policy, campaign), after checking both names."""
    if policy not in POLICIES:
        raise ValueError(f"unknown OBD policy {policy!r}; use one of {', '.join(POLICIES)}")
    if campaign not in CAMPAIGNS:
        raise ValueError(f"unknown OBD campaign {campaign!r}; use one of {', '.join(CAMPAIGNS)}")
    folder = Path(root) / policy / campaign
    log, context = folder / f"{campaign}.csv", folder / "item_context.csv"
    for path in (log, context):
        if not path.exists():
            raise FileNotFoundError(f"{path}: missing; root must be the OBD folder holding "
                                    f"<policy>/<campaign>/ (the shared sample has campaign 'all' only)")
    return log, context


def first_ragged_row(path: Path) -> tuple[int | None, str]:
    """(data row from 0, what is wrong) of the first row whose field count is not the header's."""
    with path.open(newline="", encoding="utf-8", errors="replace") as f:
        rows = csv.reader(f)
        width = len(next(rows))
        bad = next(((i, len(r)) for i, r in enumerate(rows) if len(r) != width), None)
    return (None, "rows with more or fewer fields than the header") if bad is None else \
        (bad[0], f"{bad[1]} fields where the header has {width}")


def read_obd_csv(path: Path, columns: dict[str, pa.DataType | None]) -> pa.Table:
    """One OBD CSV as Arrow with ``columns`` present and cast, or a SchemaError naming file, column, row and fix."""
    ragged = []
    options = pcsv.ParseOptions(invalid_row_handler=lambda row: ragged.append(row) or "skip")
    strings = {name: pa.string() for name, kind in columns.items() if kind == pa.string()}
    try:
        table = pcsv.read_csv(path, parse_options=options, convert_options=pcsv.ConvertOptions(column_types=strings))
    except pa.ArrowInvalid as err:
        raise SchemaError(str(path), f"not a readable CSV file ({err})", LAYOUT_FIX) from None
    if ragged:
        row, problem = first_ragged_row(path)
        raise SchemaError(str(path), problem, LAYOUT_FIX, row=row)
    names = table.column_names
    missing = [name for name in columns if name not in names]
    if missing:
        others = [name for name in names if name not in columns]
        raise SchemaError(str(path), f"missing column {missing[0]!r}{column_hint(missing[0], others)}", LAYOUT_FIX)
    if table.num_rows == 0:
        raise SchemaError(str(path), "has a header but no rows", "an OBD file needs at least one data row")
    for name, kind in columns.items():
        if kind is None:
            table = table.set_column(names.index(name), name, cast_timestamp(table[name], name, str(path)))
        elif kind != pa.string():
            table = table.set_column(names.index(name), name, cast_column(table[name], pa.field(name, kind), str(path)))
    return table


def column_hint(name: str, names: list[str]) -> str:
    """Why a column may be missing: a file with another delimiter, or a near miss among the unexpected ``names``."""
    if len(names) == 1:
        sep = next((s for s in (";", "\t", "|") if s in names[0]), None)
        if sep:
            return f" (the header is one field with {sep!r} in it: is the file {sep!r}-separated?)"
    near = difflib.get_close_matches(name, names, n=1)
    return f" (is {near[0]!r} a misspelling?)" if near else ""


def item_feature_matrix(context: pd.DataFrame) -> tuple[np.ndarray, tuple[str, ...]]:
    """``item_feature_0`` and one-hot ``item_feature_1..3``, rows ordered by item id."""
    context = context.sort_values("item_id")
    if not np.array_equal(context["item_id"].to_numpy(), np.arange(len(context))):
        raise ValueError("item_context.csv: item_id must be 0..n-1 with one row each; got "
                         f"{context['item_id'].tolist()[:10]}...")
    categorical = [f"item_feature_{i}" for i in (1, 2, 3)]
    one_hot = pd.get_dummies(context[categorical], prefix_sep="=", dtype=np.float64)
    features = pd.concat([context[["item_feature_0"]].astype(np.float64), one_hot], axis=1)
    return features.to_numpy(), tuple(features.columns)


def load_obd(root: str | os.PathLike, policy: str = "random", campaign: str = "all") -> ObdLog:
    """Read one OBD log (``policy`` ``"random"`` or ``"bts"``) as impressions plus contexts.

    The impressions are validated like any impressions file (propensities in (0, 1], rewards in
    [0, 1], positions >= 0). See the module docstring for the mapping.
    """
    log_path, context_path = log_paths(Path(root), policy, campaign)
    context = read_obd_csv(context_path, CONTEXT_COLUMNS).to_pandas()
    item_features, names = item_feature_matrix(context)
    n_items = len(context)
    affinity_columns = {f"user-item_affinity_{i}": pa.float64() for i in range(n_items)}
    log = read_obd_csv(log_path, {**LOG_COLUMNS, **affinity_columns}).to_pandas()
    users = log[list(USER_FEATURES)].astype(str)
    user_id = pd.util.hash_pandas_object(users, index=False).to_numpy() & np.uint64(2**63 - 1)
    row = log.iloc[:, 0]
    impressions = pd.DataFrame({
        "impression_id": policy + "-" + row.astype(str),
        "ts": log["timestamp"],
        "user_id": user_id.astype(np.int64),
        "policy": policy,
        "item_id": log["item_id"],
        "position": log["position"] - 1,
        "propensity": log["propensity_score"],
        "score": np.nan,
        "reward": log["click"].astype(np.float64),
    })
    impressions = validate_frame(impressions, "impressions", str(log_path))
    unknown = ~impressions["item_id"].between(0, n_items - 1)
    if unknown.any():
        first = int(unknown.to_numpy().argmax())
        raise ValueError(f"{log_path}: column 'item_id' row {first}: {impressions['item_id'][first]} is not "
                         f"in {context_path} (items 0..{n_items - 1}); use the item_context.csv of the same folder")
    codes = np.stack([pd.factorize(users[name], sort=True)[0] for name in USER_FEATURES], axis=1)
    affinity = log[list(affinity_columns)].to_numpy(dtype=np.float64)
    return ObdLog(impressions=impressions, user_features=codes.astype(np.int64), affinity=affinity,
                  item_features=item_features, item_feature_names=names, n_items=n_items,
                  n_positions=int(impressions["position"].max()) + 1)
