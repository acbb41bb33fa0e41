"""What policies see in a simulator replay when a trained two-tower model is given (``--model``).

The observer turns the world's shoppers and candidates into the model's scores, its calibrated
click probability (the bandit prior) and neural-linear features, exactly as serving would:
cached item vectors, a user vector from the history, a dot product over the temperature.
Catalog vectors come from the model's item table; products the table lacks (injected mid-run)
are embedded with the item tower on first sight.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np


def catalog_vectors(model, model_dir: Path, world) -> np.ndarray:
    """float32 (n_items, d) vectors of the world's catalog: from the item table, embedding the rest."""
    from recsys.model import load_item_table

    table = load_item_table(model_dir)
    ids = world.item_ids
    order = np.argsort(table.item_ids)
    pos = np.clip(np.searchsorted(table.item_ids[order], ids), 0, len(order) - 1)
    rows = order[pos]
    known = table.item_ids[rows] == ids
    vectors = np.zeros((len(ids), table.vectors.shape[1]), dtype=np.float32)
    vectors[known] = table.vectors[rows[known]]
    if (~known).any():
        vectors[~known] = model.embed_items(world.items.iloc[np.flatnonzero(~known)])
    return vectors


def model_observer(model, vectors: np.ndarray):
    """A ``recsys.replay`` Observer backed by ``model``, starting from the catalog ``vectors``."""
    import torch

    from recsys.policies import neural_linear_features
    from recsys.replay import Observation

    cache = {"vectors": np.asarray(vectors, dtype=np.float32)}
    history_len = int(getattr(model.config, "history_len", 50))

    def observe(world, users: np.ndarray, candidates: np.ndarray) -> Observation:
        if len(cache["vectors"]) < world.n_items:  # products injected since the last round
            new = world.items.iloc[len(cache["vectors"]):]
            cache["vectors"] = np.vstack([cache["vectors"], model.embed_items(new)])
        vecs = cache["vectors"]
        items, events, mask = world.histories(users, history_len)
        with torch.no_grad():
            user = model.encode_users(torch.from_numpy(vecs[items]), torch.from_numpy(events.astype(np.int64)),
                                      torch.from_numpy(mask)).numpy()
        scores = np.einsum("bd,bmd->bm", user, vecs[candidates]) / model.temperature
        prior = model.click_probability(scores)
        m = candidates.shape[1]
        feats = np.stack([np.hstack([np.ones((m, 1)), prior[b][:, None], neural_linear_features(user[b], vecs[candidates[b]])])
                          for b in range(len(users))])
        return Observation(scores, prior, feats)

    return observe
