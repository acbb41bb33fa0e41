"""Ray Train fine-tuning on a real local Ray: 2 workers, a killed worker restarted from its
checkpoint, a rerun that resumes, an export that loads with identical scores, and bad input refused
before any worker starts. Tiny BERT (2 layers, hidden 32) and a tiny simulated shop."""

import json

import numpy as np
import pandas as pd
import pytest

from recsys.data import write_table
from recsys.model import BaseModelError, TwoTower, build_tiny_base, load_item_table
from recsys.simulator import World, WorldConfig
from training.config import TrainConfig, TrainConfigError
from training.loop import FAILURE_MARKER
from training.prepare import DataDirError
from training.trainer import ClusterError, fit

pytestmark = pytest.mark.timeout(1800)


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    root = tmp_path_factory.mktemp("train-shop")
    world = World.create(WorldConfig(users=60, items=40, days=30, seed=1))
    write_table(world.items, root / "shop" / "items.parquet", "items")
    write_table(world.generate_events(), root / "shop" / "events.parquet", "events")
    return root


@pytest.fixture(scope="module")
def tiny_base(shop):
    return build_tiny_base(shop / "tiny-bert")


def config(shop, tiny_base, **kw) -> TrainConfig:
    base = dict(data=shop / "shop", out=shop / "model", base=str(tiny_base), storage_path=str(shop / "runs"),
                batch_size=32, dim=16, epochs=2, patience=0, timeout_s=60, log_every=5, max_failures=1)
    return TrainConfig(**{**base, **kw})


def test_two_workers_survive_a_killed_worker_then_a_rerun_resumes(ray_session, shop, tiny_base):
    cfg = config(shop, tiny_base, workers=2, cpus_per_worker=1.0, name="resume", inject_failure_epoch=1)
    first = fit(cfg)
    # The injected failure killed epoch 1 once; the restarted group resumed from epoch 0's checkpoint.
    assert (shop / "runs" / "resume" / FAILURE_MARKER).exists()
    assert [m["epoch"] for m in first.metrics] == [0, 1]
    assert all(np.isfinite(m["val_ndcg10"]) and m["samples_per_s"] > 0 for m in first.metrics)
    steps = first.metrics[-1]["step"]

    second = fit(cfg.__class__(**{**cfg.__dict__, "epochs": 3, "inject_failure_epoch": -1}))
    assert [m["epoch"] for m in second.metrics] == [0, 1, 2]
    assert second.metrics[:2] == first.metrics  # history restored, not retrained
    assert second.metrics[2]["step"] == steps + steps // 2  # the third epoch continued the step count

    model = TwoTower.from_pretrained(second.model_dir)
    table = load_item_table(second.model_dir)
    items = pd.read_parquet(shop / "shop" / "items.parquet")
    np.testing.assert_allclose(model.embed_items(items), table.vectors, atol=1e-5)
    again = TwoTower.from_pretrained(second.model_dir)
    np.testing.assert_array_equal(again.embed_items(items), model.embed_items(items))
    manifest = json.loads((second.model_dir / "serendip.json").read_text())
    assert manifest["data_fingerprint"].startswith("sha256:") and manifest["calibration"]["method"] == "platt"
    probs = model.click_probability(np.array([-5.0, 5.0]))
    assert 0 <= probs[0] <= probs[1] <= 1  # never inverted (a flat base rate if the tiny model is worse than chance)


def test_bad_input_is_refused_before_any_worker(ray_session, shop, tiny_base, tmp_path):
    (tmp_path / "no-items").mkdir()
    write_table(pd.read_parquet(shop / "shop" / "events.parquet"), tmp_path / "no-items" / "events.parquet", "events")
    sparse = tmp_path / "sparse"
    write_table(pd.read_parquet(shop / "shop" / "items.parquet"), sparse / "items.parquet", "items")
    one_each = pd.read_parquet(shop / "shop" / "events.parquet").query("event == 'click'").groupby("user_id").head(1)
    write_table(one_each, sparse / "events.parquet", "events")
    gpt = tmp_path / "gpt"
    gpt.mkdir()
    (gpt / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    (gpt / "model.safetensors").write_bytes(b"")
    cases = [
        ({"data": tmp_path / "no-items"}, DataDirError, "no items.parquet or items.csv"),
        ({"data": sparse}, DataDirError, "the valid split is empty"),
        ({"base": str(gpt)}, BaseModelError, "model_type='gpt2' is not BERT-family"),
        ({"workers": 3}, ClusterError, "--workers=3 x --cpus-per-worker=1.0 needs 3 CPUs but the Ray cluster has 2"),
        ({"gpu": True}, ClusterError, "--gpu: the Ray cluster has no GPU; drop --gpu"),
    ]
    for overrides, error, match in cases:
        with pytest.raises(error, match=match):
            fit(config(shop, tiny_base, storage_path=str(tmp_path / "runs"), name="bad", **overrides))
    assert not (tmp_path / "runs" / "bad").exists() or not any((tmp_path / "runs" / "bad").glob("checkpoint_*"))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"workers": 0}, "--workers=0: must be >= 1"),
        ({"protocol": "time"}, "--protocol='time': use one of"),
        ({"positive_events": ("like",)}, "--positive-events=\\('like',\\): use a non-empty subset"),
        ({"warmup": 1.0}, r"--warmup=1.0: must be in \[0, 1\)"),
        ({"lr": 0.0}, "--lr=0.0: must be > 0"),
    ],
)
def test_config_errors(kwargs, match):
    with pytest.raises(TrainConfigError, match=match):
        TrainConfig(**kwargs)


def test_loop_runs_without_ray_and_resumes(shop, tiny_base, tmp_path):
    """The same train_loop in one plain process (how Tune and tests reuse it): no Ray at all."""
    from training.loop import train_loop
    from training.prepare import prepare
    from training.session import LocalSession

    cfg = config(shop, tiny_base, storage_path=str(tmp_path), name="local", epochs=1, negatives="catalog")
    prepared = prepare(cfg)
    loop_config = {**cfg.to_dict(), "prepared": prepared.uri, "fingerprint": prepared.fingerprint}
    session = LocalSession(tmp_path / "local", prepared.path("examples.parquet"))
    first = train_loop(loop_config, session)
    assert [m["epoch"] for m in first["history"]] == [0] and np.isfinite(first["history"][0]["loss"])
    again = train_loop({**loop_config, "epochs": 2}, session)
    assert [m["epoch"] for m in again["history"]] == [0, 1]
    assert again["history"][0] == first["history"][0]
    model = TwoTower.from_pretrained(session.best_checkpoint() / "model")
    assert model.calibrator is not None and model.manifest["data_fingerprint"] == prepared.fingerprint
