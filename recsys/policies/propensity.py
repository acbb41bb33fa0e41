"""Propensities: P(item i at position j) for each way a policy can rank a slate.

Exact where a closed form exists:
- greedy (ties keep the lower index); a ranking with random tie-breaking (UCB1, LinUCB): uniform
  within each tie group;
- per-position epsilon-greedy: a small dynamic programme over "how many better items are gone";
- Plackett–Luce (softmax) positions 0 and 1, and the exact probability of any realized prefix.
Otherwise a seeded Monte-Carlo estimate from sampled score rows:
- where every item's score is drawn independently (Thompson's Gamma appeals, Plackett–Luce's
  Gumbel perturbations), a Rao-Blackwellised (conditional Monte-Carlo) estimate: each row fixes the
  *other* items' scores and the item's own CDF gives the exact chance of landing in the slot, so the
  estimate is unbiased, strictly positive and far less noisy than counting;
- where scores are correlated (LinTS's shared weight draw), the frequency over sampled rows,
  the shown row among them (see ``LinTS``).
"""

from __future__ import annotations

from collections.abc import Callable

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
    """(draws, n) perturbed logits whose descending order is a Plackett–Luce sample (Gumbel-top-k).

    A standard Gumbel is -log E with E ~ Exp(1); numpy's ziggurat exponential makes that about 3x
    faster than ``rng.gumbel``.
    """
    perturbed = np.log(rng.standard_exponential(size=(draws, logits.shape[0])))
    np.subtract(logits[None, :], perturbed, out=perturbed)
    return perturbed


def gumbel_cdf(perturbed: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """P(logit + Gumbel <= x) = exp(-exp(logit - x)) for each x of ``perturbed`` (+inf gives 1, -inf 0)."""
    with np.errstate(over="ignore"):
        return np.exp(-np.exp(logits - perturbed))


# ---- Monte-Carlo from sampled score rows -----------------------------------------------------


def others_order_statistics(samples: np.ndarray, items: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """(rows, m): in each row, the ``ranks[a]``-th largest value among all columns but ``items[a]``.

    Rank 0 is +inf and a rank past the last other column is -inf, so slot j of item i lies between
    its others' ranks j and j + 1. One sort per row serves every item: the others' r-th largest is
    the row's r-th largest unless the item's own value is among the row's top r, then the (r+1)-th.
    """
    rows, n = samples.shape
    depth = int(ranks.max()) + 1
    ranked = np.full((rows, depth + 1), -np.inf)
    ranked[:, 0] = np.inf
    take = min(n, depth)
    ranked[:, 1:take + 1] = np.sort(samples, axis=1)[:, ::-1][:, :take]
    own = samples[:, items]
    here, next_down = ranked[:, ranks], ranked[:, ranks + 1]
    return np.where(own < here, here, next_down)


def conditional_slot_probabilities(samples: np.ndarray, cdf: Callable[[np.ndarray, np.ndarray], np.ndarray],
                                   items: np.ndarray, slots: np.ndarray) -> np.ndarray:
    """Rao-Blackwellised P(``items[a]`` ranks exactly ``slots[a]``-th), 0 = highest, for independent scores.

    Conditional Monte-Carlo (Ross, "Simulation", 5th ed., sec. 9.4; the Rao-Blackwell theorem):
    given the other items' scores in a row, with o_(j) their j-th largest (o_(0) = +inf), item i
    lands at slot j exactly when o_(j+1) < s_i < o_(j), which has probability
    F_i(o_(j)) - F_i(o_(j+1)) under i's own score CDF ``cdf(x, items)``. Averaged over rows this is
    unbiased, positive wherever the slot is reachable, and its variance is at most the counting
    estimator's (it is that estimator's conditional expectation). Rows must be independent draws.
    """
    upper = others_order_statistics(samples, items, slots)
    lower = others_order_statistics(samples, items, slots + 1)
    return np.maximum(cdf(upper, items) - cdf(lower, items), 0.0).mean(axis=0)


def conditional_marginals(samples: np.ndarray, cdf: Callable[[np.ndarray, np.ndarray], np.ndarray],
                          k: int) -> np.ndarray:
    """(n, k) Rao-Blackwellised P(i at j) for every candidate, each column scaled to sum to one.

    The cells are the estimator of ``conditional_slot_probabilities``; a column's raw sum is one
    only in expectation, and off-policy evaluation needs distributions, so each column is divided
    by its sum (a ratio estimator: consistent, and off the raw cell by the column sum's Monte-Carlo
    error, a fraction of a percent at 100 draws).
    """
    rows, n = samples.shape
    items = np.repeat(np.arange(n), k + 1)
    ranks = np.tile(np.arange(k + 1), n)
    below = cdf(others_order_statistics(samples, items, ranks), items).reshape(rows, n, k + 1)
    cells = np.maximum(below[:, :, :-1] - below[:, :, 1:], 0.0).mean(axis=0)
    return cells / cells.sum(axis=0, keepdims=True)


def slot_frequencies(samples: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """Fraction of sampled score rows in which ``idx[j]`` ranks exactly j-th (0 = highest).

    ``idx[j]`` ranks j-th in a row exactly when the row's j-th largest value is its own value
    (continuous samples do not tie), so one sort per row replaces all pairwise comparisons.
    """
    rows, n = samples.shape
    jth_largest = np.sort(samples, axis=1)[:, ::-1][:, : idx.shape[0]]
    return np.add.reduce(jth_largest == samples.take(idx, axis=1), axis=0) / rows


def sampled_marginals(samples: np.ndarray, k: int) -> np.ndarray:
    """(n, k) fraction of sampled score rows that rank item i at position j."""
    draws, n = samples.shape
    tops = np.argsort(-samples, axis=1, kind="stable")[:, :k]
    cells = tops * k + np.arange(k)[None, :]
    return np.bincount(cells.ravel(), minlength=n * k).reshape(n, k) / draws
