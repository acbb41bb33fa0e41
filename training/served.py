"""What serving adds to a shop's data: the impression log and the products added through ``PUT /items``.

- **Positives.** A logged row with reward > 0 (a click, cart or purchase fed back to ``/feedback``) becomes
  a positive event of that user and item, so it joins the split, the histories and the softmax.
- **Negatives.** A logged row with reward 0 is an item the user was shown and did not take. Its BCE
  weight is the clipped inverse of its propensity, self-normalised to mean 1 (the clipped IPS and SNIPS
  estimators: Strehl et al. 2010; Swaminathan & Joachims 2015), so the items the logging policy kept
  showing do not dominate the negatives just because it kept showing them.
- **Added products.** ``serving.catalog.CatalogStore`` keeps each ``PUT /items`` batch as
  ``<state_dir>/catalog/v<version>.safetensors`` with the rows (items schema, as the request sent them)
  in the file's JSON metadata under ``"items"``; later versions win for a repeated id. The format is
  CatalogStore's: this reader follows it without importing serving (imports point down: training never
  imports serving).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
from safetensors import safe_open

from recsys.data.io import validate_frame
from recsys.data.schemas import EVENT_TYPES

CATALOG_GLOB = "v*.safetensors"


def catalog_files(directory: Path | None) -> list[Path]:
    """The catalog's version files in version order (none for no directory)."""
    return sorted(Path(directory).glob(CATALOG_GLOB)) if directory is not None else []


def read_added_items(directory: Path | None) -> pd.DataFrame:
    """Every product added through PUT /items, newest text per id, as a validated items table."""
    rows = []
    for path in catalog_files(directory):
        with safe_open(str(path), framework="numpy") as f:
            rows += json.loads((f.metadata() or {}).get("items", "[]"))
    if not rows:
        return pd.DataFrame(columns=["item_id", "title", "category", "brand", "price", "attributes"])
    newest = pd.DataFrame(rows).drop_duplicates("item_id", keep="last").reset_index(drop=True)
    return validate_frame(newest, "items", source=str(directory))


def with_added_items(items: pd.DataFrame, added: pd.DataFrame) -> pd.DataFrame:
    """The shop's catalog with the added products appended (an added row replaces the shop's row of its id)."""
    if added.empty:
        return items
    kept = items[~items["item_id"].isin(added["item_id"])]
    return pd.concat([kept, added[items.columns]], ignore_index=True)


def served_positives(impressions: pd.DataFrame, positive_events: tuple[str, ...]) -> pd.DataFrame:
    """Rewarded log rows as events (user_id, item_id, ts, event).

    The log keeps a reward, not the event kind, so a served positive counts as the weakest event
    kind the run treats as positive (a click with the default ``--positive-events``).
    """
    kind = min(positive_events, key=EVENT_TYPES.index)
    rewarded = impressions.loc[impressions["reward"] > 0, ["user_id", "item_id", "ts"]]
    return rewarded.assign(event=kind).reset_index(drop=True)


def logged_negatives(impressions: pd.DataFrame, ipw: bool, clip: float) -> pd.DataFrame:
    """(user_id, item_id, weight) of shown-but-unrewarded pairs; weight 1, or the pair's summed clipped
    inverse propensities scaled to mean 1 over the pairs."""
    shown = impressions.loc[impressions["reward"] <= 0, ["user_id", "item_id", "propensity"]]
    inverse = np.minimum(1.0 / shown["propensity"].to_numpy(np.float64), clip) if ipw else np.ones(len(shown))
    pairs = shown.assign(weight=inverse).groupby(["user_id", "item_id"], sort=False, as_index=False)["weight"].sum()
    if not ipw:
        return pairs.assign(weight=1.0)
    return pairs.assign(weight=pairs["weight"] / pairs["weight"].mean()) if len(pairs) else pairs
