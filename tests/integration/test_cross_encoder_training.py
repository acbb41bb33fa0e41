"""The cross-encoder reranker fine-tuned through Ray Train's TorchTrainer on a real local Ray: a tiny
BERT (2 layers, hidden 32), a tiny simulated shop with a search log, a few steps, an exported
directory that loads as safetensors without remote code and reranks deterministically."""

import json

import numpy as np
import pytest

from recsys.data import write_table
from recsys.model import build_tiny_base
from recsys.model.cross_encoder import RERANKER_FILE, CrossEncoder, Reranker
from recsys.policies import Context
from recsys.simulator import World, WorldConfig
from training.cross_encoder import RerankerTrainConfig, fit_reranker

pytestmark = pytest.mark.timeout(900)


def test_reranker_trains_through_ray_train_and_exports_a_servable_directory(ray_session, tmp_path):
    world = World.create(WorldConfig(users=60, items=40, days=20, seed=4))
    write_table(world.items, tmp_path / "shop" / "items.parquet", "items")
    write_table(world.generate_events(), tmp_path / "shop" / "events.parquet", "events")
    write_table(world.search_log(60), tmp_path / "shop" / "queries.parquet", "queries")
    base = build_tiny_base(tmp_path / "tiny-bert")
    cfg = RerankerTrainConfig(data=tmp_path / "shop", out=tmp_path / "reranker", base=str(base), batch_size=8,
                              max_steps=3, epochs=2, history_items=3, max_len=64, storage_path=str(tmp_path / "runs"),
                              cpus_per_worker=1.0, timeout_s=60, lr=1e-3)
    out, history = fit_reranker(cfg)
    assert out == cfg.out and (out / "model.safetensors").is_file()
    assert history[-1]["step"] == 3 and all(np.isfinite(h["loss"]) for h in history)
    manifest = json.loads((out / RERANKER_FILE).read_text())
    assert manifest["config"]["history_items"] == 3 and manifest["data_fingerprint"].startswith("sha256:")
    encoder = CrossEncoder.from_pretrained(out)
    reranker = Reranker(encoder, world.items, top_n=5)
    ctx = Context(item_ids=world.items["item_id"].to_numpy()[:8], scores=np.linspace(1, 0, 8))
    history_ids = world.items["item_id"].tolist()[10:13]
    first, again = reranker.rerank(ctx, history_ids, "rain jacket"), reranker.rerank(ctx, history_ids, "rain jacket")
    assert np.array_equal(first.scores, again.scores) and np.array_equal(first.scores[5:], ctx.scores[5:])
    assert sorted(first.scores) == sorted(ctx.scores)
