"""The user tower: a small transformer over the *cached* item vectors of a user's recent history.

Each history token is the item's vector plus a learned embedding of what the user did (view, click,
cart, purchase) and of its recency rank (newest first). An optional search query, embedded by the
same BERT as the items, joins as one more token, and its vector is added to the output: a query
lives in the item space (the item tower's text path), so an untrained tower already retrieves what
the query says, and a trained one can weigh it against the history. A learned summary token reads them all, as in
BERT's [CLS]; the sequence model follows SASRec (Kang & McAuley 2018) without its causal mask,
because the history is a set ordered by recency, not a sequence to predict step by step. The
output adds the mean history token, as YouTube's candidate generator averages watched-video
embeddings (Covington et al. 2016), so an untrained tower already recommends similar items.
BERT never runs here, so a request costs this tower and one matrix product.
"""

from __future__ import annotations

import torch
from torch import nn

from recsys.model.config import TwoTowerConfig


class UserTower(nn.Module):
    """(history vectors, event types, mask[, query]) -> one user vector."""

    def __init__(self, config: TwoTowerConfig) -> None:
        super().__init__()
        d = config.dim
        self.query_type = config.n_event_types
        self.types = nn.Embedding(config.n_event_types + 1, d)
        self.positions = nn.Embedding(config.history_len + 1, d)
        self.summary = nn.Parameter(torch.zeros(1, 1, d))
        layer = nn.TransformerEncoderLayer(
            d, config.user_heads, dim_feedforward=2 * d, dropout=config.dropout,
            batch_first=True, norm_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, config.user_layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d)
        self.out = nn.Linear(d, d)
        self.drop = nn.Dropout(config.dropout)
        self.history_len = config.history_len
        self.normalize = config.normalize
        for table in (self.types, self.positions):
            nn.init.normal_(table.weight, std=0.02)

    def forward(
        self,
        history_vecs: torch.Tensor,
        history_events: torch.Tensor,
        mask: torch.Tensor,
        query_vecs: torch.Tensor | None = None,
        query_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """User vectors (B, d) from history (B, L, d), events (B, L) long, mask (B, L) True=valid.

        ``query_vecs`` (B, d) join as one more token; ``query_mask`` (B,) True marks the rows that have
        a query (None: every row), so a training batch mixes searches and plain recommendations. A
        masked query token is exactly an absent one: no attention reads it and the mean leaves it out.
        """
        batch, length = history_events.shape
        if length > self.history_len:
            history_vecs = history_vecs[:, : self.history_len]
            history_events = history_events[:, : self.history_len]
            mask = mask[:, : self.history_len]
            length = self.history_len
        positions = torch.arange(length, device=history_events.device)
        tokens = self.drop(history_vecs) + self.types(history_events.clamp(0, self.query_type - 1))
        tokens = tokens + self.positions(positions).unsqueeze(0)
        parts = [self.summary.expand(batch, 1, -1), tokens]
        valid = [torch.ones(batch, 1, dtype=torch.bool, device=mask.device), mask.bool()]
        if query_vecs is not None:
            query_type = torch.full((batch,), self.query_type, device=history_events.device)
            parts.append((query_vecs + self.types(query_type)).unsqueeze(1))
            has_query = torch.ones(batch, dtype=torch.bool, device=mask.device) if query_mask is None else query_mask
            valid.append(has_query.bool().view(batch, 1))
        hidden = self.encoder(torch.cat(parts, 1), src_key_padding_mask=~torch.cat(valid, 1))
        # The mean of the history vectors is a residual path: an item-to-item baseline from the first
        # step, which the attention layers then refine. The query vector is a second one, at full
        # weight: averaged in with up to history_len items, one query would barely move the user.
        weights = valid[1].to(hidden.dtype).unsqueeze(-1)
        mean = (tokens * weights).sum(1) / weights.sum(1).clamp_min(1.0)
        user = self.out(self.norm(hidden[:, 0])) + mean
        if query_vecs is not None:
            user = user + query_vecs * valid[2].to(hidden.dtype)
        return nn.functional.normalize(user, dim=-1) if self.normalize else user
