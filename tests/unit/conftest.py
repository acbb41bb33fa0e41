"""Fixtures the unit tests share."""

import pytest
import torch

from recsys.model import TwoTower, TwoTowerConfig, build_tiny_base


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A tiny two-tower (2-layer, 32-hidden BERT base built here; 16-dim towers), in eval mode."""
    base = build_tiny_base(tmp_path_factory.mktemp("tiny"))
    torch.manual_seed(0)
    config = TwoTowerConfig(base=str(base), dim=16, user_heads=2, user_layers=1, id_embeddings=False, history_len=8)
    return TwoTower.from_base(config).eval()
