"""The two-tower BERT recommender (Ray-free): item tower over text, user tower over cached item vectors.

Public names are re-exported here so callers write
``from recsys.model import TwoTower, load_item_table``.
"""

from recsys.model.base import BaseModelError, build_tiny_base, check_base, default_base_path
from recsys.model.calibration import Calibrator, fit_calibration
from recsys.model.config import ModelConfigError, TwoTowerConfig
from recsys.model.history import HistoryIndex, sort_for_history
from recsys.model.item_table import ItemTable, ItemTableError, load_item_table, save_item_table
from recsys.model.manifest import ManifestError, fingerprint_files, read_manifest
from recsys.model.two_tower import TwoTower

__all__ = [
    "BaseModelError",
    "Calibrator",
    "HistoryIndex",
    "ItemTable",
    "ItemTableError",
    "ManifestError",
    "ModelConfigError",
    "TwoTower",
    "TwoTowerConfig",
    "build_tiny_base",
    "check_base",
    "default_base_path",
    "fingerprint_files",
    "fit_calibration",
    "load_item_table",
    "read_manifest",
    "save_item_table",
    "sort_for_history",
]
