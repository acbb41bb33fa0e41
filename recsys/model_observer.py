"""What policies see in a simulator replay when a trained two-tower model is given (``--model``).

The observer turns the world's shoppers and candidates into the model's scores, its calibrated
click probability (the bandit prior) and the linear policies' features with the function serving
calls (``recsys.model.bandit_input``): cached item vectors, a user vector from the history, then
``bandit_input`` per shopper. Catalog vectors come from the model's item table;
products the table lacks (injected mid-run) are embedded with the item tower on first sight.

The tuning sweep's online objective and ``benchmarks/quality_bandit.py`` both replay through
:class:`ModelObservers`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from recsys.replay import Observation, Observer


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


def model_observer(model, vectors: np.ndarray) -> Observer:
    """A ``recsys.replay`` Observer backed by ``model``, starting from the catalog ``vectors``."""
    import torch

    from recsys.model.bandit_input import bandit_input

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
        given = [bandit_input(model, user[b], vecs[candidates[b]]) for b in range(len(users))]
        prior = None if model.calibrator is None else np.stack([g.prior for g in given])
        return Observation(np.stack([g.scores for g in given]), prior, np.stack([g.features for g in given]), user)

    return observe


class ModelObservers:
    """World -> model-backed Observer: the model loads once, each catalog's vectors are embedded once.

    Replays of one saved world (a sweep's seeds) share its catalog; worlds built from different
    seeds (the quality benchmark) get their own. A catalog is recognized by its item ids and titles.
    """

    def __init__(self, model_dir: str | Path) -> None:
        from recsys.model import TwoTower

        self.model_dir = Path(model_dir)
        self.model = TwoTower.from_pretrained(self.model_dir)
        self._vectors: dict[int, np.ndarray] = {}

    def __call__(self, world) -> Observer:
        """A fresh observer for one replay of ``world`` (its injected products stay its own)."""
        key = int(pd.util.hash_pandas_object(world.items[["item_id", "title"]], index=False).sum())
        if key not in self._vectors:
            self._vectors[key] = catalog_vectors(self.model, self.model_dir, world)
        return model_observer(self.model, self._vectors[key])
