"""``serendip retrain`` on a real local Ray: a served log written by serving's own ImpressionLog and a
product added through the catalog store train a new, warm-started model version that knows the new
product and records where it came from. Tiny BERT (2 layers, hidden 32) and a tiny simulated shop."""

import json

import numpy as np
import pandas as pd
import pytest

from recsys.data import write_table
from recsys.model import TwoTower, build_tiny_base, load_item_table
from recsys.simulator import World, WorldConfig
from serendip.cli import main
from serving.catalog import CatalogStore
from serving.impression_log import ImpressionLog
from training.config import TrainConfig
from training.prepare import RunReusedError

pytestmark = pytest.mark.timeout(600)

NEW_ITEM = 5001
T0 = 1_767_225_600_000  # 2026-01-01 UTC, ms


def serve_log(state, parent, items, users, *, slates: int) -> None:
    """What a running app leaves in its state dir: one PUT product and ``slates`` expired slates."""
    row = {"item_id": NEW_ITEM, "title": "Glacier merino hiking sock", "category": "socks", "brand": "Fjell",
           "price": 19.0, "attributes": json.dumps({"material": "merino"})}
    model = TwoTower.from_pretrained(parent)
    CatalogStore(state / "catalog").add(np.array([NEW_ITEM]), model.embed_items(pd.DataFrame([row])), [row])
    rng = np.random.default_rng(0)
    log = ImpressionLog(state / "impressions", batch_rows=25)
    for n in range(slates):
        shown = np.append(rng.choice(items, 3, replace=False), NEW_ITEM)
        rewards = (shown == NEW_ITEM).astype(float)  # every shopper who sees the new product clicks it
        log.add(f"imp-{n}", T0 + 1000 * n, users[n % len(users)], "thompson", shown,
                rng.uniform(0.05, 0.9, len(shown)), rng.normal(size=len(shown)), rewards)
        if log.due():
            log.flush()
    log.flush()


def served_model(tmp_path, items: pd.DataFrame):
    """The model being served: a tiny BERT two-tower saved as `serendip train` exports it (untrained, for speed)."""
    cfg = TrainConfig(base=str(build_tiny_base(tmp_path / "tiny-bert")), batch_size=32, dim=16, patience=0)
    model = TwoTower.from_base(cfg.model_config(), item_ids=items["item_id"].to_numpy())
    model.save_pretrained(tmp_path / "v1", item_table=model.item_table(items),
                          manifest={"data_fingerprint": "sha256:v1", "train_config": cfg.to_dict()})
    return tmp_path / "v1"


def test_retrain_from_a_served_log_makes_a_new_version(ray_session, tmp_path):
    world = World.create(WorldConfig(users=50, items=30, days=20, seed=2))
    shop = tmp_path / "shop"
    write_table(world.items, shop / "items.parquet", "items")
    events = world.generate_events()
    write_table(events, shop / "events.parquet", "events")
    parent = served_model(tmp_path, world.items)
    state = tmp_path / "serve-state"
    serve_log(state, parent, world.items["item_id"].to_numpy(), np.unique(events["user_id"])[:40], slates=60)

    args = ["retrain", "--model", str(parent), "--logs", str(state / "impressions"), "--data", str(shop),
            "--out", str(tmp_path / "v2"), "--epochs", "1", "--storage-path", str(tmp_path / "runs"),
            "--timeout-s", "60", "--log-every", "5"]
    assert main(args) == 0

    new, old = TwoTower.from_pretrained(tmp_path / "v2"), TwoTower.from_pretrained(parent)
    table, old_table = load_item_table(tmp_path / "v2"), load_item_table(parent)
    rows, found = table.rows(np.array([NEW_ITEM]))
    assert found.all() and np.isfinite(table.vectors[rows]).all()
    assert NEW_ITEM in new.id_vocab.tolist()  # clicked in the log: it learned an ID vector
    shared, _ = table.rows(old_table.item_ids)
    assert not np.allclose(table.vectors[shared], old_table.vectors, atol=1e-4)  # retrained, not re-exported
    manifest = json.loads((tmp_path / "v2" / "serendip.json").read_text())
    assert manifest["parent"]["model"] == str(parent.resolve())
    assert manifest["impression_log"]["path"] == str((state / "impressions").resolve())
    assert manifest["impression_log"]["rewarded"] == 60 and manifest["added_items"]["new_item_ids"] == [NEW_ITEM]
    assert manifest["run_name"] == "retrain-v2" and manifest["train_config"]["dim"] == 16
    assert manifest["base_model"] == old.manifest["base_model"]

    serve_log(state, parent, world.items["item_id"].to_numpy(), np.unique(events["user_id"])[:40], slates=70)
    with pytest.raises(RunReusedError, match="run 'retrain-v2' .* already trained on other inputs"):
        main(args)  # the log grew: the finished run is not resumed and v2 is left as it was
    assert load_item_table(tmp_path / "v2").vectors.tobytes() == table.vectors.tobytes()
