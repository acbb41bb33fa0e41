"""Items a user bought while being served are never recommended to them again (the shop's own
purchase history is excluded by the scorer, ``retrieval.PurchaseIndex``).

The bandit learns of a purchase from a ``purchase`` feedback event, on any slot and after any other
event on it (``feedback_events``), and keeps the pairs in its snapshots.
"""

from __future__ import annotations

import numpy as np

from recsys.policies import Context

MAX_PURCHASES_PER_USER = 1000
"""Purchases remembered per user: bounds the memory one user id can make the bandit hold."""


class PurchaseExclusion:
    """(user, item) pairs bought while serving."""

    def __init__(self) -> None:
        self._bought: dict[int, set[int]] = {}

    def __getitem__(self, user_id: int) -> set[int]:
        return self._bought.get(int(user_id), set())

    def add(self, user_id: int, item_id: int) -> None:
        """Remember one purchase (past ``MAX_PURCHASES_PER_USER`` for this user, it is not kept)."""
        bought = self._bought.setdefault(int(user_id), set())
        if len(bought) < MAX_PURCHASES_PER_USER:
            bought.add(int(item_id))

    def without_purchases(self, user_id: int, ctx: Context) -> Context | None:
        """``ctx`` less the items ``user_id`` bought; None when nothing is left."""
        bought = self._bought.get(int(user_id))
        if not bought:
            return ctx
        keep = ~np.isin(ctx.item_ids, np.fromiter(bought, dtype=np.int64))
        if keep.all():
            return ctx
        if not keep.any():
            return None
        return Context(
            item_ids=ctx.item_ids[keep], scores=ctx.scores[keep],
            features=None if ctx.features is None else ctx.features[keep],
            prior=None if ctx.prior is None else ctx.prior[keep],
        )

    def arrays(self) -> dict[str, np.ndarray]:
        """The pairs as two int64 arrays, for a snapshot."""
        pairs = [(u, i) for u, items in self._bought.items() for i in items]
        return {"purchase_users": np.array([p[0] for p in pairs], dtype=np.int64),
                "purchase_items": np.array([p[1] for p in pairs], dtype=np.int64)}

    def load(self, arrays: dict[str, np.ndarray]) -> None:
        """Inverse of :meth:`arrays`."""
        for user, item in zip(arrays["purchase_users"], arrays["purchase_items"], strict=True):
            self._bought.setdefault(int(user), set()).add(int(item))
