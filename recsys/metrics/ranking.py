"""Top-K ranking metrics under full ranking: every catalog item is a candidate, the user's already
seen items are masked, and the user's held-out items are the positives.

Definitions follow RecBole 1.2 (Zhao et al. 2021), so figures are comparable with its benchmarks:
Recall@K = hits / |positives|; HR@K = 1 if any hit; MRR@K = 1 / rank of the first hit (0 if none
in the top K); NDCG@K = DCG / IDCG with binary gains, IDCG over min(|positives|, K) slots
(Järvelin & Kekäläinen 2002). Everything is vectorized per chunk of users.
"""

from __future__ import annotations

import numpy as np
import torch

METRICS = ("recall", "ndcg", "hit", "mrr")


def _as_tensor(scores) -> torch.Tensor:
    t = scores if torch.is_tensor(scores) else torch.from_numpy(np.array(scores))
    return t.float() if not t.is_floating_point() else t


def rank_chunk(
    scores,
    seen: tuple[np.ndarray, np.ndarray],
    positives: tuple[np.ndarray, np.ndarray],
    ks: tuple[int, ...] = (10, 20),
) -> dict[str, np.ndarray]:
    """Per-user metrics for one chunk of users.

    scores (b, n) over the whole catalog; ``seen`` and ``positives`` are (user row, item column)
    index pairs. Seen items are masked unless they are also positives. Users without positives
    get NaN. Returns {"ndcg@10": (b,), ...}.
    """
    s = _as_tensor(scores).detach().cpu().clone()
    b, n = s.shape
    pos = torch.zeros(b, n, dtype=torch.bool)
    pos[torch.as_tensor(positives[0], dtype=torch.long), torch.as_tensor(positives[1], dtype=torch.long)] = True
    masked = torch.zeros(b, n, dtype=torch.bool)
    masked[torch.as_tensor(seen[0], dtype=torch.long), torch.as_tensor(seen[1], dtype=torch.long)] = True
    s[masked & ~pos] = -torch.inf
    k_max = min(max(ks), n)
    top = s.topk(k_max, dim=1).indices
    hits = pos.gather(1, top).to(torch.float64)
    n_pos = pos.sum(1).to(torch.float64)
    discount = 1.0 / torch.log2(torch.arange(k_max, dtype=torch.float64) + 2.0)
    ideal = torch.cumsum(discount, 0)
    first = torch.where(hits.any(1), hits.argmax(1), k_max)
    out: dict[str, np.ndarray] = {}
    for k in ks:
        kk = min(k, k_max)
        h = hits[:, :kk]
        n_hit = h.sum(1)
        idcg = ideal[(n_pos.clamp(1, kk) - 1).long()]
        nan = torch.full_like(n_pos, float("nan"))
        has = n_pos > 0
        out[f"recall@{k}"] = torch.where(has, n_hit / n_pos.clamp_min(1), nan).numpy()
        out[f"hit@{k}"] = torch.where(has, (n_hit > 0).double(), nan).numpy()
        out[f"ndcg@{k}"] = torch.where(has, (h * discount[:kk]).sum(1) / idcg, nan).numpy()
        mrr = torch.where(first < kk, 1.0 / (first.double() + 1.0), torch.zeros_like(n_pos))
        out[f"mrr@{k}"] = torch.where(has, mrr, nan).numpy()
    return out


def full_ranking(
    score_users,
    user_ids: np.ndarray,
    seen: tuple[np.ndarray, np.ndarray],
    positives: tuple[np.ndarray, np.ndarray],
    ks: tuple[int, ...] = (10, 20),
    chunk: int = 1024,
) -> dict[str, float]:
    """Mean metrics over users, scoring ``chunk`` users at a time.

    ``score_users(user_ids[lo:hi]) -> (b, n)`` scores every catalog column; ``seen``/``positives``
    are (user position in ``user_ids``, item column) pairs. Users without positives are skipped.
    """
    sums: dict[str, float] = {}
    counted = 0
    seen_u, seen_c = np.asarray(seen[0]), np.asarray(seen[1])
    pos_u, pos_c = np.asarray(positives[0]), np.asarray(positives[1])
    seen_order, pos_order = np.argsort(seen_u, kind="stable"), np.argsort(pos_u, kind="stable")
    seen_u, seen_c, pos_u, pos_c = seen_u[seen_order], seen_c[seen_order], pos_u[pos_order], pos_c[pos_order]
    for lo in range(0, len(user_ids), chunk):
        hi = min(lo + chunk, len(user_ids))
        a, b = np.searchsorted(seen_u, [lo, hi])
        c, d = np.searchsorted(pos_u, [lo, hi])
        per_user = rank_chunk(
            score_users(user_ids[lo:hi]), (seen_u[a:b] - lo, seen_c[a:b]), (pos_u[c:d] - lo, pos_c[c:d]), ks
        )
        valid = ~np.isnan(next(iter(per_user.values())))
        counted += int(valid.sum())
        for name, values in per_user.items():
            sums[name] = sums.get(name, 0.0) + float(values[valid].sum())
    result = {name: total / max(counted, 1) for name, total in sums.items()}
    result["users"] = counted
    return result
