"""A world on disk: ``arrays.npz`` (every array, no pickle) and ``world.json`` (config, words, clock).

The items table is not stored: it is rendered from the products' word codes and the stored
vocabulary, so a loaded world has the same catalog, tastes and state, hence the same click_probs.
"""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path

import numpy as np

from recsys.simulator.catalog import ARRAY_FIELDS, Products
from recsys.simulator.config import WorldConfig
from recsys.simulator.shoppers import Shoppers
from recsys.simulator.state import ShopState
from recsys.simulator.vocabulary import Vocabulary

FORMAT = "serendip.world"
VERSION = 1
ARRAYS, HEADER = "arrays.npz", "world.json"
SHOPPER_FIELDS = tuple(f.name for f in fields(Shoppers))


def save_world(world, path: Path) -> Path:
    """Write ``world`` into directory ``path`` (created if needed); returns ``path``."""
    path.mkdir(parents=True, exist_ok=True)
    arrays = {f"products.{name}": getattr(world.products, name) for name in ARRAY_FIELDS}
    arrays |= {f"shoppers.{name}": getattr(world.shoppers, name) for name in SHOPPER_FIELDS}
    arrays |= {f"state.{name}": value for name, value in world.state.arrays().items()}
    arrays["emerging"] = world.emerging
    header = {
        "format": FORMAT,
        "version": VERSION,
        "config": world.cfg.to_json(),
        "vocabulary": world.vocab.to_json(),
        "clock": world.state.clock,
        "users": world.n_users,
        "items": world.n_items,
        "arrays": sorted(arrays),
    }
    partial = path / f".{ARRAYS}.partial.npz"
    np.savez(partial, **arrays)
    os.replace(partial, path / ARRAYS)
    (path / HEADER).write_text(json.dumps(header, indent=1))
    return path


def read_header(path: Path) -> dict:
    """world.json, checked for format and version."""
    file = path / HEADER
    if not file.exists():
        raise FileNotFoundError(f"{file}: no saved world here; write one with World.save or `serendip simulate`")
    header = json.loads(file.read_text())
    if header.get("format") != FORMAT:
        raise ValueError(f"{file}: format {header.get('format')!r} is not {FORMAT!r}; point at a saved world")
    if header.get("version") != VERSION:
        raise ValueError(f"{file}: version {header.get('version')!r} is not {VERSION}; re-create the world "
                         "with this version of serendip")
    return header


def load_world(path: Path):
    """The world saved in ``path`` by :func:`save_world`."""
    from recsys.simulator.world import World

    header = read_header(path)
    file = path / ARRAYS
    if not file.exists():
        raise FileNotFoundError(f"{file}: missing; the world in {path} is incomplete, save it again")
    with np.load(file, allow_pickle=False) as data:
        missing = sorted(set(header["arrays"]) - set(data.files))
        if missing:
            raise ValueError(f"{file}: array {missing[0]!r} is missing; the world in {path} is incomplete, save it again")
        arrays = {name: data[name] for name in data.files}
    products = Products(*(arrays[f"products.{name}"] for name in ARRAY_FIELDS))
    shoppers = Shoppers(*(arrays[f"shoppers.{name}"] for name in SHOPPER_FIELDS))
    state_fields = [f.name for f in fields(ShopState)]
    state = ShopState(**{name: float(header["clock"]) if name == "clock" else arrays[f"state.{name}"]
                         for name in state_fields})
    cfg = WorldConfig(**header["config"])
    return World(cfg, Vocabulary.from_json(header["vocabulary"]), products, shoppers, arrays["emerging"], state)
