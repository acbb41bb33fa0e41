"""One training step's inputs and loss: histories from the cached catalog, BERT only over the batch's
unique candidate items (and search queries), sampled softmax with logQ correction plus click/no-click BCE.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from recsys.model import TwoTower
from recsys.model.losses import click_bce_loss, in_batch_negatives, sampled_softmax_loss
from training.config import TrainConfig
from training.run_data import RunData


@dataclass
class TextCache:
    """The catalog seen through the frozen encoder (computed once) and its pooled text (per epoch)."""

    states: torch.Tensor
    """(n, T, hidden) states after the frozen layers, or (n, hidden) pooled text when nothing is fine-tuned."""
    mask: torch.Tensor
    """(n, T) valid tokens."""
    pooled: torch.Tensor
    """(n, hidden) pooled text features of the current model; refreshed once per epoch for histories."""
    id_rows: torch.Tensor
    """(n,) ID-vector row of each catalog item (0 = none)."""
    query_states: torch.Tensor = field(default_factory=lambda: torch.empty(0))
    """(Q, T, hidden) search query texts after the frozen layers (or (Q, hidden) pooled), by query_row."""
    query_mask: torch.Tensor = field(default_factory=lambda: torch.empty(0, dtype=torch.bool))
    """(Q, T) valid query tokens."""

    @classmethod
    def build(cls, core: TwoTower, data: RunData, batch_size: int = 256) -> TextCache:
        """Run the frozen encoder over the whole catalog (and the search queries) once."""
        states, mask = core.frozen_text_states(data.texts, batch_size)
        cache = cls(states, mask, states if states.dim() == 2 else torch.empty(0), core.id_rows(data.item_ids).to(states.device))
        if data.query_texts:
            cache.query_states, cache.query_mask = core.frozen_text_states(data.query_texts, batch_size)
        cache.refresh(core)
        return cache

    @torch.no_grad()
    def refresh(self, core: TwoTower, chunk: int = 512) -> None:
        """Recompute pooled text under the current fine-tuned layers (eval mode, no grad)."""
        if self.states.dim() == 2:
            self.pooled = self.states
            return
        was_training = core.training
        core.eval()
        self.pooled = torch.cat(
            [core.item_tower.pooled(self.states[lo : lo + chunk], self.mask[lo : lo + chunk])
             for lo in range(0, len(self.states), chunk)]
        )
        core.train(was_training)

    @torch.no_grad()
    def item_vectors(self, core: TwoTower) -> torch.Tensor:
        """Every catalog item's vector under the current model (eval mode: no ID dropout)."""
        was_training = core.training
        core.eval()
        vectors = core.item_tower.vectors(self.pooled, self.id_rows)
        core.train(was_training)
        return vectors


@dataclass
class Batch:
    """Tensors of one step (B examples, U unique candidate items, L history slots)."""

    hist_rows: torch.Tensor
    """(B, L) catalog rows of the history items (0 where padded)."""
    hist_items: torch.Tensor
    """(H,) the distinct catalog rows among them."""
    hist_slots: torch.Tensor
    """(B, L) index of each history slot into ``hist_items``."""
    hist_events: torch.Tensor
    hist_mask: torch.Tensor
    candidates: torch.Tensor
    """(U,) catalog rows of the batch's unique items."""
    column: torch.Tensor
    """(B,) each example's candidate column."""
    label: torch.Tensor
    """(B,) 1 = positive, 0 = shown without a click."""
    weight: torch.Tensor
    """(B,) BCE weight of each example (inverse propensity for a logged non-click, else 1)."""
    exclude: torch.Tensor
    """(B, U) True where a candidate may not be a negative for that row (in its history, or not a positive item)."""
    query_rows: torch.Tensor | None = None
    """(B,) each example's search query (a row of ``TextCache.query_states``; -1 = none), or None: no query in the batch."""

    def __len__(self) -> int:
        return int(self.label.shape[0])


def make_batch(frame: pd.DataFrame, data: RunData, cfg: TrainConfig, rng: np.random.Generator, device) -> Batch:
    """Build a step's tensors from rows of the examples table."""
    rows = data.rows_of(data.item_ids, frame["item_id"].to_numpy(np.int64))
    label = frame["label"].to_numpy(np.int64)
    weight = frame["weight"].to_numpy(np.float32) if "weight" in frame else np.ones(len(frame), np.float32)
    hist_rows, hist_events, hist_mask = data.history.gather(
        frame["user_id"].to_numpy(np.int64), cfg.history_len, positions=frame["pos"].to_numpy(np.int64),
        mode=cfg.history_mode, drop=cfg.history_drop, rng=rng,
    )
    if cfg.negatives == "catalog":  # every catalog item is a history item, so every one gets a vector
        hist_items, hist_slots = np.arange(len(data.item_ids)), hist_rows
    else:
        hist_items, hist_slots = np.unique(hist_rows, return_inverse=True)
    candidates, column = np.unique(rows, return_inverse=True)
    positive_item = np.zeros(len(candidates), bool)
    positive_item[column[label == 1]] = True
    seen = ((hist_rows[:, :, None] == candidates[None, None, :]) & hist_mask[:, :, None]).any(1)
    exclude = seen | ~positive_item[None, :]

    def t(a, dtype=torch.long):
        return torch.as_tensor(a, dtype=dtype, device=device)

    query_rows = frame["query_row"].to_numpy(np.int64) if "query_row" in frame else None
    return Batch(t(hist_rows), t(hist_items), t(hist_slots.reshape(hist_rows.shape)), t(hist_events),
                 t(hist_mask, torch.bool), t(candidates), t(column), t(label), t(weight, torch.float32), t(exclude, torch.bool),
                 t(query_rows) if query_rows is not None and (query_rows >= 0).any() else None)


def batch_loss(model, core: TwoTower, batch: Batch, cache: TextCache, data: RunData, cfg: TrainConfig,
               autocast, generator: torch.Generator) -> tuple[torch.Tensor, dict[str, float]]:
    """Sampled softmax (logQ-corrected, in-batch negatives) + ``bce_weight`` x click BCE."""
    with autocast:
        query_vecs, query_mask = _query_tokens(core, batch, cache)
        users, items, history_items = model(
            cache.pooled[batch.hist_items], cache.id_rows[batch.hist_items], batch.hist_slots, batch.hist_events,
            batch.hist_mask,
            cache.states[batch.candidates], cache.mask[batch.candidates], cache.id_rows[batch.candidates],
            query_vecs, query_mask,
        )
    logits = core.scores(users.float(), items.float())
    positive = batch.label == 1
    parts: dict[str, torch.Tensor] = {}
    if positive.any() and cfg.negatives == "catalog":
        parts["softmax"] = _catalog_softmax(core, users[positive], items, history_items.float(), batch, positive)
    elif positive.any():
        parts["softmax"] = sampled_softmax_loss(
            logits[positive], batch.column[positive], data.log_q.to(logits.device)[batch.candidates],
            batch.exclude[positive],
        )
    if cfg.bce_weight > 0:
        parts["bce"] = cfg.bce_weight * _bce(logits, core.bce_bias, batch, cfg, generator)
    loss = sum(parts.values()) if parts else logits.sum() * 0.0
    return loss, {k: float(v.detach()) for k, v in parts.items()}


def _query_tokens(core: TwoTower, batch: Batch, cache: TextCache) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """The batch's query tokens (B, d) and which rows have one (B,), through the text path serving runs
    for a request's query (``TwoTower.query_vectors``, live: the fine-tuned layers and the projection learn)."""
    if batch.query_rows is None:
        return None, None
    has = batch.query_rows >= 0
    rows, inverse = torch.unique(batch.query_rows[has], return_inverse=True)
    vecs = core.query_vectors(cache.query_states[rows], cache.query_mask[rows])
    tokens = torch.zeros(len(batch), vecs.shape[1], dtype=vecs.dtype, device=vecs.device)
    tokens[has] = vecs[inverse]
    return tokens, has


def _catalog_softmax(core: TwoTower, users, items, catalog, batch: Batch, positive) -> torch.Tensor:
    """Full softmax over the catalog: the batch's items with fresh vectors, the rest from this step's
    projection of the cached text (exact when no BERT layer is fine-tuned). No sampling, no logQ."""
    catalog = catalog.index_put((batch.candidates,), items.float())
    logits = core.scores(users.float(), catalog)
    targets = batch.candidates[batch.column[positive]]
    hist, valid = batch.hist_rows[positive], batch.hist_mask[positive]
    rows = torch.arange(len(hist), device=hist.device).unsqueeze(1).expand_as(hist)
    seen = torch.zeros_like(logits, dtype=torch.bool)
    seen[rows[valid], hist[valid]] = True
    return sampled_softmax_loss(logits, targets, torch.zeros(logits.shape[1], device=logits.device), seen)


def _bce(logits: torch.Tensor, bias: torch.Tensor, batch: Batch, cfg: TrainConfig, generator) -> torch.Tensor:
    """Click BCE on the examples' own items; without impression negatives, on sampled in-batch ones."""
    rows = torch.arange(len(batch), device=logits.device)
    own = logits[rows, batch.column] + bias
    if (batch.label == 0).any():
        # click_bce_loss plus per-example weights (the IPS weights of logged non-clicks, training.served;
        # 1 elsewhere); recsys.model.losses could take a weight argument and serve both.
        pos_weight = torch.tensor(float(cfg.pos_weight), dtype=own.dtype, device=own.device)
        return F.binary_cross_entropy_with_logits(own, batch.label.to(own.dtype), weight=batch.weight.to(own.dtype),
                                                  pos_weight=pos_weight)
    neg_rows, neg_cols = in_batch_negatives(batch.column, logits.shape[1], cfg.neg_ratio, batch.exclude, generator)
    scores = torch.cat([own, logits[neg_rows, neg_cols] + bias])
    labels = torch.cat([torch.ones_like(own), torch.zeros(len(neg_rows), device=logits.device)])
    return click_bce_loss(scores, labels, cfg.pos_weight)
