"""BPR-MF (Rendle et al. 2009) as RecBole 1.2.1 trains it by default: the ID-only reference a
ranking benchmark runs in its own process, on the very split its model is scored on.

RecBole's ``BPR`` with its default settings: 64-dim user and item vectors (Xavier-normal init),
score u . i, loss -log(1e-10 + sigmoid(s_pos - s_neg)) with one uniform negative per positive
drawn outside the user's training items, Adam at lr 1e-3 with no weight decay, batches of 2,048
shuffled every epoch, up to 300 epochs, validation MRR@10 after each (full ranking, training items
masked), a stop once more than 10 epochs have gone by without a validation score at least as good
as the best, and the best epoch's vectors kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
from torch import nn

from recsys.metrics.protocols import ProtocolError, Scorer, evaluate_random_split


@dataclass(frozen=True)
class BPRConfig:
    """RecBole 1.2.1's defaults for BPR (``recbole/properties/overall.yaml`` and ``model/BPR.yaml``)."""

    dim: int = 64
    """embedding_size."""
    lr: float = 1e-3
    """learning_rate (Adam)."""
    batch_size: int = 2048
    """train_batch_size."""
    epochs: int = 300
    """Most epochs."""
    patience: int = 10
    """stopping_step: training stops once more than this many epochs went by without a validation
    MRR@10 at least as good as the best."""
    seed: int = 0
    """Seed of the init, the shuffles and the negatives."""


@dataclass
class BPRResult:
    """A trained BPR: its scorer over the catalog and how the training went."""

    scorer: Scorer
    """score_users(user_ids (b,)) -> (b, n) over the catalog's item_ids (zeros for unknown users)."""
    best_epoch: int
    """Epoch whose vectors were kept (1-based)."""
    best_valid_mrr10: float
    """Its validation MRR@10."""
    epochs: int
    """Epochs run."""
    seconds: float
    """Wall time of the training."""


def _negatives(users: np.ndarray, taken: np.ndarray, n_items: int, rng: np.random.Generator) -> np.ndarray:
    """One uniform item per row outside the user's training items (``taken``: sorted user * n + item keys)."""
    neg = rng.integers(0, n_items, size=len(users))
    redo = np.arange(len(users))
    while len(redo):
        keys = users[redo] * n_items + neg[redo]
        pos = np.minimum(np.searchsorted(taken, keys), len(taken) - 1)
        redo = redo[taken[pos] == keys]
        neg[redo] = rng.integers(0, n_items, size=len(redo))
    return neg


def train_bpr(split, item_ids: np.ndarray, cfg: BPRConfig = BPRConfig(), log_every: int = 0) -> BPRResult:
    """Train BPR on ``split.train`` and pick its epoch on ``split.valid``; score with ``result.scorer``."""
    item_ids = np.asarray(item_ids, dtype=np.int64)
    train = split.train
    columns = pd.Index(item_ids).get_indexer(train["item_id"].to_numpy())
    if len(train) == 0 or (columns < 0).any():
        raise ProtocolError("BPR: the train split is empty or names items outside item_ids; pass the catalog's ids")
    users = pd.Index(np.unique(train["user_id"].to_numpy(np.int64)))
    rows = users.get_indexer(train["user_id"].to_numpy()).astype(np.int64)
    columns = columns.astype(np.int64)
    n_items = len(item_ids)
    taken = np.unique(rows * n_items + columns)  # sorted (user row, item column) keys of the training pairs
    items_per_user = np.bincount(taken // n_items)
    if items_per_user.max() >= n_items:
        raise ProtocolError(f"BPR: user {users[items_per_user.argmax()]} has interacted with every item, so no "
                            "negative can be drawn; drop that user from the split or add items to the catalog")

    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    user_emb, item_emb = nn.Embedding(len(users), cfg.dim), nn.Embedding(n_items, cfg.dim)
    nn.init.xavier_normal_(user_emb.weight)
    nn.init.xavier_normal_(item_emb.weight)
    optim = torch.optim.Adam([user_emb.weight, item_emb.weight], lr=cfg.lr)

    def scorer_of(u_vecs: np.ndarray, i_vecs: np.ndarray) -> Scorer:
        def score_users(user_ids: np.ndarray) -> np.ndarray:
            idx = users.get_indexer(np.asarray(user_ids))
            vecs = np.where((idx >= 0)[:, None], u_vecs[np.maximum(idx, 0)], 0.0)
            return vecs @ i_vecs.T
        return score_users

    best = (-1.0, 0, None)
    started, epoch = time.perf_counter(), 0
    for epoch in range(1, cfg.epochs + 1):
        order = rng.permutation(len(rows))
        negs = _negatives(rows[order], taken, n_items, rng)
        u_all, p_all, n_all = (torch.from_numpy(a) for a in (rows[order], columns[order], negs))
        for lo in range(0, len(order), cfg.batch_size):
            u, p, n = (t[lo:lo + cfg.batch_size] for t in (u_all, p_all, n_all))
            uv = user_emb(u)
            diff = (uv * item_emb(p)).sum(-1) - (uv * item_emb(n)).sum(-1)
            loss = -torch.log(1e-10 + torch.sigmoid(diff)).mean()
            optim.zero_grad()
            loss.backward()
            optim.step()
        u_vecs, i_vecs = user_emb.weight.detach().numpy().copy(), item_emb.weight.detach().numpy().copy()
        mrr = evaluate_random_split(scorer_of(u_vecs, i_vecs), split, item_ids, ks=(10,), phase="valid")["model"]["mrr@10"]
        if log_every and epoch % log_every == 0:
            print(f"[bpr] epoch {epoch}: loss {loss.item():.4f} valid mrr@10 {mrr:.4f}", flush=True)
        # RecBole's early_stopping: a tie counts as progress; stop after more than `patience` epochs without.
        if mrr >= best[0]:
            best = (mrr, epoch, (u_vecs, i_vecs))
        elif epoch - best[1] > cfg.patience:
            break
    return BPRResult(scorer_of(*best[2]), best[1], best[0], epoch, time.perf_counter() - started)
