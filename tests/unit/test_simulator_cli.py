"""``serendip simulate`` writes tables the data layer reads and a world that reloads identically."""

from __future__ import annotations

import numpy as np

from recsys.data import read_table
from recsys.simulator import SimulateConfig, World, simulate


def test_simulate_writes_readable_tables_and_the_world(tmp_path, capsys):
    out = simulate(SimulateConfig(out=tmp_path / "shop", users=60, items=90, days=5, seed=3))
    items, events = read_table(out / "items.parquet", "items"), read_table(out / "events.parquet", "events")
    assert len(items) == 90 and len(events) > 0
    assert set(events["item_id"]) <= set(items["item_id"])
    world = World.load(out / "world")
    assert world.items["title"].tolist() == items["title"].tolist()
    again = World.create(SimulateConfig(out=tmp_path, users=60, items=90, days=5, seed=3).world_config())
    again.generate_events()
    users = np.arange(60)
    slates = np.tile(np.arange(10), (60, 1))
    np.testing.assert_array_equal(world.click_probs(users, slates), again.click_probs(users, slates))
    assert f'"events": {len(events)}' in capsys.readouterr().out
