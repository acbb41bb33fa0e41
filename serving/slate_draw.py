"""One slate drawn by an arm's policy, and the pending impression it becomes once logged.

``BanditState.draw`` reads the state and calls ``draw_slate`` (the CPU part of a /recommend: the
policy's draws and propensities), which may run in a worker thread; ``BanditState.log_slate`` then
logs ``pending_impression(drawn, ...)`` on the event loop. Ray-free.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recsys.policies import Arm, Context, Policy, Slate, make_policy
from recsys.policies.linear import LinearPolicy
from serving.messages import FeaturesNeeded
from serving.pending import DecisionContext, PendingImpression


def fresh_copy(policy: Policy) -> Policy:
    """The same policy and parameters with nothing learned (a linear posterior back at its prior)."""
    return make_policy(policy.name, **policy.params())


@dataclass
class SlateDraw:
    """A slate drawn for one user and not yet logged."""

    user_id: int
    arm: Arm
    ctx: Context | None
    """The candidates less the user's purchases; None with ``slate`` when nothing is left to show."""
    slate: Slate | None
    features: np.ndarray | None
    """The candidates' features when the arm learns from them (a linear policy on the current model)."""
    model_version: str
    """The model that scored the candidates."""
    user_vector: np.ndarray | None
    """The user tower's output they were scored with."""


def draw_slate(user_id: int, arm: Arm, policy: Policy, ctx: Context | None, k: int, model_version: str,
               stale: bool, rng: np.random.Generator, user_vector: np.ndarray | None = None) -> SlateDraw:
    """``policy`` picks ``k`` of ``ctx`` for the user; ``stale`` = the candidates come from a model other
    than the one the linear posteriors belong to. Raises ``FeaturesNeeded`` for a linear policy given no
    features. Changes nothing but ``rng`` and the policy's caches."""
    k = 0 if ctx is None else min(int(k), len(ctx.item_ids))
    if k == 0:
        return SlateDraw(int(user_id), arm, None, None, None, model_version, user_vector)
    linear = isinstance(policy, LinearPolicy)
    if linear and ctx.features is None:
        raise FeaturesNeeded(f"arm {arm.name!r} ({arm.policy}) reads features; score the candidates with them")
    if linear and stale:
        # A scorer replica still on the previous model (a rollout in progress): its features live in
        # another space, so rank them with the prior alone and learn nothing from the answer.
        policy = fresh_copy(policy)
    slate = policy.select(ctx, k, rng)
    # Only linear policies learn from features; the others' pending impressions stay small.
    features = ctx.features if linear and not stale else None
    return SlateDraw(int(user_id), arm, ctx, slate, features, model_version, user_vector)


def pending_impression(drawn: SlateDraw, serial: int, issued_ms: int) -> PendingImpression:
    """The impression a drawn (non-empty) slate becomes, with its decision context; rows checked."""
    ctx, slate = drawn.ctx, drawn.slate
    idx = np.asarray(slate.indices)
    imp = PendingImpression(
        serial=serial, issued_ms=issued_ms, user_id=drawn.user_id, arm=drawn.arm.name, policy=drawn.arm.policy,
        item_ids=np.asarray(slate.item_ids, dtype=np.int64),
        propensities=np.asarray(slate.propensities, dtype=np.float64),
        scores=np.asarray(slate.scores, dtype=np.float64), explored=np.asarray(slate.explored, dtype=bool),
        features=None if drawn.features is None else np.asarray(drawn.features)[idx],
        prior=None if ctx.prior is None else np.asarray(ctx.prior)[idx],
        rewards=np.full(len(idx), np.nan),
        context=DecisionContext(ctx.item_ids, ctx.scores, ctx.prior, drawn.user_vector, drawn.model_version),
    )
    imp.check_rows()  # the impression log would refuse them at flush time: refuse them before logging
    return imp


def slate_items(imp: PendingImpression) -> list[dict]:
    """The /recommend rows of an impression: ``{item_id, position, score, propensity, explored}``."""
    return [
        {"item_id": int(i), "position": p, "score": float(s), "propensity": float(q), "explored": bool(e)}
        for p, (i, s, q, e) in enumerate(zip(imp.item_ids, imp.scores, imp.propensities, imp.explored, strict=True))
    ]
