"""The ID-only item tower of the ranking ablation: known items get their ID vector and nothing from
their text, new items get no vector at all, it saves and loads, and a config that cannot work is named."""

import numpy as np
import pandas as pd
import pytest
import torch

from recsys.model import ModelConfigError, TwoTower, TwoTowerConfig, build_tiny_base

ITEMS = pd.DataFrame({"item_id": [10, 11, 12], "title": ["red trail shoe", "blue wool hat", "green socks"],
                      "category": ["shoes", "hats", "socks"]})


@pytest.fixture(scope="module")
def id_only(tmp_path_factory):
    base = build_tiny_base(tmp_path_factory.mktemp("tiny-bert"))
    torch.manual_seed(0)
    config = TwoTowerConfig(base=str(base), dim=16, user_heads=2, history_len=4, train_layers=0, text_tower=False,
                            id_dropout=0.0)
    return TwoTower.from_base(config, item_ids=np.array([10, 11])).eval()


def test_id_only_vectors_ignore_the_text_and_new_items_get_none(id_only):
    vecs = id_only.embed_items(ITEMS)
    renamed = id_only.embed_items(ITEMS.assign(title=["x", "y", "z"], category=["a", "b", "c"]))
    np.testing.assert_array_equal(vecs, renamed)
    np.testing.assert_allclose(np.linalg.norm(vecs[:2], axis=1), 1.0, rtol=1e-5)
    assert not vecs[2].any()  # item 12 was never trained on: an ID-only model has nothing for it
    assert id_only.item_tower.proj is None


def test_id_only_round_trips(id_only, tmp_path):
    id_only.save_pretrained(tmp_path / "m")
    loaded = TwoTower.from_pretrained(tmp_path / "m")
    assert loaded.config.text_tower is False
    np.testing.assert_allclose(loaded.embed_items(ITEMS), id_only.embed_items(ITEMS), atol=1e-6)


@pytest.mark.parametrize("kwargs", [{"id_embeddings": False}, {"train_layers": 2}])
def test_an_item_tower_without_text_needs_ids_and_no_fine_tuning(kwargs):
    with pytest.raises(ModelConfigError, match="text_tower=False .* needs id_embeddings=True and train_layers=0"):
        TwoTowerConfig(text_tower=False, **kwargs)
