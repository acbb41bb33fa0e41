"""Training objectives of the two-tower model: pure functions of score tensors."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def log_popularity(counts: torch.Tensor, smoothing: float = 1.0) -> torch.Tensor:
    """log q(i): the log-probability that item i appears as an in-batch candidate (its share of positives)."""
    counts = counts.to(torch.float64) + smoothing
    return (counts / counts.sum()).log().to(torch.float32)


def sampled_softmax_loss(
    logits: torch.Tensor,
    targets: torch.Tensor,
    log_q: torch.Tensor,
    exclude: torch.Tensor | None = None,
) -> torch.Tensor:
    """Softmax cross-entropy over in-batch candidates with the logQ correction.

    Yi et al. 2019, "Sampling-Bias-Corrected Neural Modeling for Large Corpus Item
    Recommendations": in-batch negatives are drawn in proportion to popularity q(j), so each
    candidate's logit s(x, y_j) is replaced by s(x, y_j) - log q(j) before the softmax.

    logits (B, U) scores (already divided by the temperature); targets (B,) column of each row's
    positive; log_q (U,) per candidate; exclude (B, U) True where a candidate must not act as a
    negative for that row (an accidental hit: the user also interacted with it).
    """
    corrected = logits - log_q.unsqueeze(0)
    if exclude is not None:
        hit = F.one_hot(targets, logits.shape[1]).bool()
        corrected = corrected.masked_fill(exclude & ~hit, torch.finfo(corrected.dtype).min)
    return F.cross_entropy(corrected, targets)


def click_bce_loss(logits: torch.Tensor, labels: torch.Tensor, pos_weight: float = 1.0) -> torch.Tensor:
    """Binary cross-entropy on click (1) / no click (0) logits; ``pos_weight`` up-weights the rare clicks."""
    weight = torch.tensor(float(pos_weight), dtype=logits.dtype, device=logits.device)
    return F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype), pos_weight=weight)


def in_batch_negatives(
    targets: torch.Tensor,
    n_candidates: int,
    neg_ratio: int,
    exclude: torch.Tensor | None = None,
    generator: torch.Generator | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pick ``neg_ratio`` negative columns per row among the in-batch candidates, never the target.

    Returns (rows, columns) index tensors of the sampled negatives, for BCE where no impression
    log provides real non-clicks (the negative-sampling ratio handles the class imbalance).
    """
    batch = targets.shape[0]
    if n_candidates < 2 or neg_ratio < 1:
        empty = torch.zeros(0, dtype=torch.long, device=targets.device)
        return empty, empty
    noise = torch.rand(batch, n_candidates, generator=generator).to(targets.device)
    noise[torch.arange(batch, device=targets.device), targets] = -1.0
    if exclude is not None:
        noise = noise.masked_fill(exclude, -1.0)
    k = min(neg_ratio, n_candidates - 1)
    values, cols = noise.topk(k, dim=1)
    rows = torch.arange(batch, device=targets.device).unsqueeze(1).expand(-1, k)
    keep = values >= 0
    return rows[keep], cols[keep]
