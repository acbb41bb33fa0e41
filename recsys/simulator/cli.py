"""``serendip simulate``: write a simulated shop (items, logged events and searches, and the hidden world) to a folder."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from recsys.data import write_table
from recsys.simulator.config import WorldConfig
from recsys.simulator.world import World


@dataclass
class SimulateConfig:
    """Where to write the shop and how big it is; every other knob keeps WorldConfig's default."""

    out: Path
    """Folder to write items.parquet, events.parquet and world/ into (created if needed)."""
    users: int = 10_000
    """Number of shoppers."""
    items: int = 5_000
    """Number of products in the initial catalog."""
    days: int = 30
    """Days of logged history."""
    seed: int = 0
    """Seed of the whole world."""
    searches: float = 0.25
    """Logged searches per shopper, written to queries.parquet (0 = no search log)."""
    quiet: bool = False
    """Print nothing (the summary line is printed otherwise)."""

    def world_config(self) -> WorldConfig:
        """The WorldConfig these flags describe (validated there, so errors name WorldConfig's fields)."""
        return WorldConfig(users=self.users, items=self.items, days=self.days, seed=self.seed)


def simulate(cfg: SimulateConfig) -> Path:
    """Create the world, log its history and searches, write DIR/items.parquet, events.parquet, queries.parquet and world/."""
    started = time.perf_counter()
    out = Path(cfg.out)
    world = World.create(cfg.world_config())
    events = world.generate_events()
    queries = world.search_log(round(cfg.searches * cfg.users)) if cfg.searches > 0 else None
    made = time.perf_counter()
    write_table(world.items, out / "items.parquet", "items")
    write_table(events, out / "events.parquet", "events")
    if queries is not None:
        write_table(queries, out / "queries.parquet", "queries")
    world.save(out / "world")
    if not cfg.quiet:
        print(json.dumps({"out": str(out), "users": world.n_users, "items": world.n_items, "events": len(events),
                          "search_clicks": 0 if queries is None else len(queries),
                          "simulate_s": round(made - started, 2),
                          "write_s": round(time.perf_counter() - made, 2)}))
    return out
