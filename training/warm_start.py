"""Start a run from a trained model instead of the pretrained base (``--init-from``, ``serendip retrain``).

The new model takes the parent's fine-tuned encoder, its projection, user tower and click bias, its
calibration until validation fits a new one, and the ID vector of every item both know. Items the
parent never learned an ID for (new products, newly clicked ones) start from the usual small random
vector. The architecture must match the parent's, else its weights do not fit.
"""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import numpy as np
import torch

from recsys.model import TwoTower, TwoTowerConfig

ID_WEIGHT = "item_tower.ids.weight"


class WarmStartError(ValueError):
    """The parent model cannot seed this run (another architecture); the message names the setting."""


def check_architecture(parent: TwoTowerConfig, config: TwoTowerConfig, parent_dir: Path) -> None:
    """Raise WarmStartError naming every architecture field (but ``base``) where the two differ."""
    differ = [f.name for f in fields(TwoTowerConfig) if f.name != "base" and getattr(parent, f.name) != getattr(config, f.name)]
    if differ:
        shown = ", ".join(f"{name}: parent {getattr(parent, name)!r}, this run {getattr(config, name)!r}" for name in differ)
        raise WarmStartError(
            f"--init-from {parent_dir}: the model's architecture differs from this run's ({shown}); use "
            "`serendip retrain`, which takes the parent's architecture, or set the flags to the parent's values"
        )


def warm_start(parent_dir: str | Path, config: TwoTowerConfig, item_ids: np.ndarray) -> TwoTower:
    """A model with ID vectors for ``item_ids`` whose every other weight is the parent's (see module doc)."""
    parent = TwoTower.from_pretrained(parent_dir)
    check_architecture(parent.config, config, Path(parent_dir))
    model = TwoTower(replace(config, base=parent.config.base), parent.item_tower.encoder, parent.tokenizer,
                     item_ids if config.id_embeddings else None)
    towers = parent.towers_state()
    model.load_state_dict({k: v for k, v in towers.items() if k not in (ID_WEIGHT, "id_vocab")}, strict=False)
    if model.item_tower.ids is not None and ID_WEIGHT in towers:
        parent_ids = towers["id_vocab"].numpy()
        rows = model.id_rows(parent_ids)
        known = rows > 0
        with torch.no_grad():
            model.item_tower.ids.weight[rows[known]] = towers[ID_WEIGHT][1:][torch.as_tensor(known)]
    model.calibrator = parent.calibrator
    model.manifest = {"base_model": parent.manifest.get("base_model", parent.config.base)}
    return model.train()
