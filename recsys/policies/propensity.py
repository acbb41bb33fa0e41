"""Propensities: P(item i at position j) for each way a policy can rank a slate.

Exact where a closed form exists:
- greedy (ties keep the lower index); a ranking with random tie-breaking (UCB1, LinUCB): uniform
  within each tie group;
- per-position epsilon-greedy: a small dynamic programme over "how many better items are gone";
- Plackett–Luce (softmax) positions 0 and 1, and the exact probability of any realized prefix.
Otherwise a seeded Monte-Carlo estimate from sampled score rows (Thompson sampling, LinTS, and
Plackett–Luce positions >= 2, whose exact marginals sum over exponentially many prefixes).
"""

from __future__ import annotations

import numpy as np

# ---- rankings with random tie-breaking -------------------------------------------------------


def tie_ranking(values: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """Top-k indices by ``values`` (largest first), ties broken uniformly at random."""
    return np.lexsort((rng.random(values.shape[0]), -values))[:k]


def tie_aware_choice(values: np.ndarray, k: int, rng: np.random.Generator,
                     forced: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(slate, exact propensities, exact prefix) of ``tie_ranking`` for the slate shown.

    The slate shown is ``forced`` when given (the floor fired), else the ranking's own draw.
    Without ties among the top k + 1 values the ranking is deterministic: a fast path.
    """
    n = values.shape[0]
    top = np.argsort(-values, kind="stable")[: min(k + 1, n)]
    ranked = values[top]
    if (ranked[:-1] > ranked[1:]).all():
        idx = top[:k] if forced is None else forced
        hit = (idx == top[:k]).astype(np.float64)
        return idx, hit, np.cumprod(hit)
    idx = tie_ranking(values, k, rng) if forced is None else forced
    return idx, tie_marginals(values, k)[idx, np.arange(k)], tie_prefix(values, idx)


def tie_marginals(values: np.ndarray, k: int) -> np.ndarray:
    """(n, k) exact P(i at j) for ``tie_ranking``: 1 / |tie group| over the group's ranks."""
    ranked = -np.sort(-values)
    members = values[:, None] == ranked[None, :k]
    return members / members.sum(axis=0, keepdims=True)


def tie_prefix(values: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Exact P(``tie_ranking`` starts with ``idx[:j+1]``) for every j."""
    k = idx.shape[0]
    ranked = -np.sort(-values)[:k]
    in_group = values[idx] == ranked
    group_size = (values[:, None] == ranked[None, :]).sum(axis=0)
    # members of position j's tie group already placed at positions < j
    same = ranked[:, None] == ranked[None, :]
    placed_before = np.tril(same, k=-1).sum(axis=1)
    conditional = np.where(in_group, 1.0 / np.maximum(group_size - placed_before, 1), 0.0)
    return np.cumprod(conditional)


# ---- per-position epsilon-greedy -------------------------------------------------------------


def epsilon_greedy_marginals(rank: np.ndarray, n: int, epsilon: float, k: int) -> np.ndarray:
    """(len(rank), k) exact P(i at j) for items of greedy ``rank`` (0 = best) among n candidates,
    when each position shows, with prob. 1-epsilon, the best remaining item and otherwise a
    uniformly random remaining one.

    For item i of rank r, the state after t positions is c = how many of the r better items are
    already shown (i not yet shown); i is the best remaining exactly when c == r.
    """
    r = rank[:, None].astype(np.float64)
    c = np.arange(k + 1, dtype=np.float64)[None, :]
    below, at = c < r, c == r
    state = np.zeros((rank.shape[0], k + 1))
    state[:, 0] = 1.0
    out = np.empty((rank.shape[0], k))
    for t in range(k):
        m = n - t
        pick = np.where(at, 1.0 - epsilon + epsilon / m, np.where(below, epsilon / m, 0.0))
        out[:, t] = (state * pick).sum(axis=1)
        up = np.where(below, 1.0 - epsilon + epsilon * (r - c) / m, 0.0)
        stay = np.where(below, epsilon * (m - (r - c) - 1.0) / m, np.where(at, epsilon * (m - 1.0) / m, 0.0))
        moved = state * up
        state = state * stay
        state[:, 1:] += moved[:, :-1]
    return out


def epsilon_greedy_prefix(order: np.ndarray, idx: np.ndarray, epsilon: float) -> np.ndarray:
    """Exact P(the per-position epsilon-greedy slate starts with ``idx[:j+1]``); ``order`` = best first."""
    n, k = order.shape[0], idx.shape[0]
    shown = np.zeros(n, dtype=bool)
    rank_of = np.empty(n, dtype=np.int64)
    rank_of[order] = np.arange(n)
    conditional = np.empty(k)
    for j in range(k):
        best = order[np.argmin(shown[order])]
        conditional[j] = epsilon / (n - j) + (1.0 - epsilon) * (idx[j] == best)
        shown[idx[j]] = True
    return np.cumprod(conditional)


# ---- Plackett–Luce (softmax sampling without replacement) ------------------------------------


def softmax(logits: np.ndarray) -> np.ndarray:
    """Numerically stable softmax of a 1-D array."""
    w = np.exp(logits - logits.max())
    return w / w.sum()


def _rest(p: np.ndarray) -> np.ndarray:
    """1 - p_i for every i, summed from the others so a dominant item keeps its precision."""
    rest = 1.0 - p
    top = int(np.argmax(p))
    rest[top] = np.delete(p, top).sum()
    return rest


def plackett_luce_first_two(logits: np.ndarray) -> np.ndarray:
    """(n, 2) exact P(i at position 0) and P(i at position 1) under Plackett–Luce (Plackett 1975).

    P(i at 1) = sum_{h != i} p_h p_i / (1 - p_h) = p_i (S - p_i / (1 - p_i)), S = sum_h p_h / (1 - p_h).
    """
    p = softmax(logits)
    if p.shape[0] == 1:
        return np.stack([p, np.zeros(1)], axis=1)
    rest = _rest(p)
    ratio = np.divide(p, rest, out=np.zeros_like(p), where=rest > 0)
    second = p * (ratio.sum() - ratio)
    return np.stack([p, second], axis=1)


def plackett_luce_prefix(logits: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Exact P(a Plackett–Luce ranking starts with ``idx[:j+1]``) for every j.

    Each step picks item i among the remaining R with prob w_i / sum_R w; the remaining mass is
    summed from the unpicked tail (never by subtraction), so it keeps full precision.
    """
    w = np.exp(logits - logits.max())
    chosen = w[idx]
    remaining = np.delete(w, idx).sum() + np.cumsum(chosen[::-1])[::-1]
    return np.cumprod(chosen / remaining)


def gumbel_scores(logits: np.ndarray, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, n) perturbed logits whose descending order is a Plackett–Luce sample (Gumbel-top-k)."""
    return logits[None, :] + rng.gumbel(size=(draws, logits.shape[0]))


# ---- Monte-Carlo from sampled score rows -----------------------------------------------------


def slot_frequencies(samples: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Fraction of sampled score rows in which ``idx[j]`` ranks exactly j-th (0 = highest).

    ``idx[j]`` ranks j-th in a row exactly when the row's j-th largest value is its own value
    (continuous samples do not tie), so one sort per row replaces all pairwise comparisons.
    """
    k = idx.shape[0]
    jth_largest = np.sort(samples, axis=1)[:, ::-1][:, :k]
    return np.count_nonzero(jth_largest == samples[:, idx], axis=0) / samples.shape[0]


def sampled_marginals(samples: np.ndarray, k: int) -> np.ndarray:
    """(n, k) fraction of sampled score rows that rank item i at position j."""
    draws, n = samples.shape
    tops = np.argsort(-samples, axis=1, kind="stable")[:, :k]
    cells = tops * k + np.arange(k)[None, :]
    return np.bincount(cells.ravel(), minlength=n * k).reshape(n, k) / draws
