"""The item tower: a BERT-family encoder over item text, mean-pooled and projected, plus an optional
learned item-ID vector (a hybrid tower) that cold items simply do not have.

Partial fine-tuning. Only the top ``train_layers`` encoder layers learn; the embeddings and the
layers below are frozen. Their output is deterministic per item, so it is computed once per catalog
(:meth:`ItemTower.frozen_states`) and a training step runs only the top layers for the items of the
batch. On 2 CPU cores this makes fine-tuning MiniLM-L6 practical (one layer costs ~1/6 of a full
pass); with ``train_layers`` equal to the depth, everything but the embeddings is fine-tuned.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.masking_utils import create_bidirectional_mask

from recsys.model.config import ModelConfigError, TwoTowerConfig


def mean_pool(states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of token states over the valid tokens (Reimers & Gurevych 2019, Sentence-BERT)."""
    weights = mask.to(states.dtype).unsqueeze(-1)
    return (states * weights).sum(1) / weights.sum(1).clamp_min(1.0)


class ItemTower(nn.Module):
    """Text encoder + projection (+ ID embedding); ``vectors`` maps pooled text to item vectors."""

    def __init__(self, encoder: nn.Module, config: TwoTowerConfig, n_ids: int) -> None:
        super().__init__()
        self.encoder = encoder
        depth = len(encoder.encoder.layer)
        if config.train_layers > depth:
            raise ModelConfigError(
                f"TwoTowerConfig.train_layers={config.train_layers}: the base model has only {depth} layers; "
                f"use 0..{depth}"
            )
        self.split = depth - config.train_layers
        # Plain tuples, not ModuleLists: the layers stay registered once, under ``encoder``.
        self._frozen = (encoder.embeddings, *encoder.encoder.layer[: self.split])
        self._trained = tuple(encoder.encoder.layer[self.split :])
        for module in self._frozen:
            module.requires_grad_(False)
        self.proj = nn.Linear(encoder.config.hidden_size, config.dim) if config.text_tower else None
        self.dim = config.dim
        self.ids = nn.Embedding(n_ids + 1, config.dim, padding_idx=0) if config.id_embeddings else None
        if self.ids is not None:
            nn.init.normal_(self.ids.weight, std=0.02)
            with torch.no_grad():
                self.ids.weight[0].zero_()
        self.id_dropout = config.id_dropout
        self.normalize = config.normalize

    @property
    def hidden_size(self) -> int:
        """Width of the encoder's token states."""
        return int(self.encoder.config.hidden_size)

    def _mask4d(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
        return create_bidirectional_mask(config=self.encoder.config, inputs_embeds=states, attention_mask=mask)

    @torch.no_grad()
    def frozen_states(self, input_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token states after the frozen layers (deterministic: the frozen part runs in eval mode).

        When nothing is fine-tuned this is already the pooled text feature (n, hidden).
        """
        modes = [module.training for module in self._frozen]
        for module in self._frozen:
            module.eval()
        states = self.encoder.embeddings(input_ids=input_ids)
        attn = self._mask4d(states, mask)
        for layer in self._frozen[1:]:
            states = layer(states, attn)
        for module, mode in zip(self._frozen, modes, strict=True):
            module.train(mode)
        return states if self._trained else mean_pool(states, mask)

    def pooled(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Pooled text features (n, hidden) from frozen states: runs the fine-tuned top layers."""
        if not self._trained:
            return states
        width = max(int(mask.sum(1).max()), 1)
        states, mask = states[:, :width], mask[:, :width]
        attn = self._mask4d(states, mask)
        for layer in self._trained:
            states = layer(states, attn)
        return mean_pool(states, mask)

    def text_vectors(self, pooled: torch.Tensor) -> torch.Tensor:
        """Projection of pooled text into the score space, before the ID part and normalisation
        (zeros when the tower reads no text)."""
        if self.proj is None:
            return pooled.new_zeros(len(pooled), self.dim)
        return self.proj(pooled)

    def vectors(self, pooled: torch.Tensor, id_rows: torch.Tensor | None = None) -> torch.Tensor:
        """Item vectors: projected text + ID vector (row 0 = unknown item = zero), normalised if set.

        In training mode an item's ID vector is hidden with probability ``id_dropout``.
        """
        vecs = self.text_vectors(pooled)
        if self.ids is not None and id_rows is not None:
            id_vecs = self.ids(id_rows)
            if self.training and self.id_dropout > 0:
                keep = torch.rand(id_rows.shape, device=id_vecs.device) >= self.id_dropout
                id_vecs = id_vecs * keep.unsqueeze(-1).to(id_vecs.dtype)
            vecs = vecs + id_vecs
        return nn.functional.normalize(vecs, dim=-1) if self.normalize else vecs
