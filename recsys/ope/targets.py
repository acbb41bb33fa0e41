"""Candidate target policies as probabilities on a logged table's rows.

A target is what every estimator reads: ``action_dist`` (n_rows, n_items), the target's
P(item at the row's position | the row's context), and ``propensity`` (n_rows,), its probability of
the logged item there. Besides "logged" and "uniform", any ``recsys.policies`` policy can be a
target; it ranks the candidates by the logit of the cross-fitted reward model, with that model's
click probability as its prior.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import logit

from recsys.ope.propensity import check_action_dist, logged_action_probability

BUILT_IN = ("logged", "uniform")


@dataclass(frozen=True)
class TargetPolicy:
    """A candidate policy's probabilities on a log's rows."""

    name: str
    """How the policy was asked for, an arm spec such as 'softmax:temperature=0.5'."""
    action_dist: np.ndarray
    """(n, n_items): P(item at the row's position | row context) under the policy."""
    propensity: np.ndarray
    """(n,): the policy's probability of each row's logged item at its logged position."""


def marginal_action_dist(
    actions: np.ndarray, positions: np.ndarray, propensity: np.ndarray, n_items: int, n_positions: int
) -> np.ndarray:
    """(n_items, n_positions) context-free P(item at position) of a logger, read off its own log.

    For each (item, position) the harmonic mean of the logged propensities is consistent for the
    logger's marginal probability: E[1{A=a}] / E[1{A=a} / pi(a|x)] = E_x[pi(a|x)] / 1. Each column is
    renormalized to sum to 1; a cell never logged gets 0.
    """
    cell = actions * n_positions + positions
    count = np.bincount(cell, minlength=n_items * n_positions)
    inverse = np.bincount(cell, weights=1.0 / propensity, minlength=n_items * n_positions)
    marginal = np.divide(count, inverse, out=np.zeros(count.shape), where=inverse > 0)
    marginal = marginal.reshape(n_items, n_positions)
    return marginal / marginal.sum(axis=0, keepdims=True)


def logged_target(actions, positions, propensity, n_items: int) -> TargetPolicy:
    """The logging policy itself: its own propensities (weights of 1), and for DM its marginal."""
    marginal = marginal_action_dist(actions, positions, propensity, n_items, int(positions.max()) + 1)
    return TargetPolicy("logged", marginal[:, positions].T, np.asarray(propensity, dtype=np.float64))


def uniform_target(actions, n_items: int) -> TargetPolicy:
    """Every candidate equally likely at every position: 1 / n_items."""
    n = np.asarray(actions).shape[0]
    return TargetPolicy("uniform", np.full((n, n_items), 1.0 / n_items), np.full(n, 1.0 / n_items))


def policy_target(
    spec: str,
    q_hat: np.ndarray,
    actions,
    positions,
    n_positions: int,
    item_ids: np.ndarray | None = None,
    seed: int = 0,
) -> TargetPolicy:
    """A ``recsys.policies`` policy, named by an arm spec (``softmax:temperature=0.5``), ranking by logit(q_hat).

    Rows with equal predictions share one ``action_distribution`` call (OBD's contexts repeat).
    """
    from recsys.policies import Arm, Context

    policy = Arm.parse(spec).build()
    q = np.clip(np.asarray(q_hat, dtype=np.float64), 1e-6, 1 - 1e-6)
    ids = np.arange(q.shape[1]) if item_ids is None else np.asarray(item_ids)
    contexts, row_context = np.unique(q, axis=0, return_inverse=True)
    slot_dist = np.empty((contexts.shape[0], q.shape[1], n_positions))
    for c, row in enumerate(contexts):
        ctx = Context(item_ids=ids, scores=logit(row), prior=row)
        slot_dist[c] = policy.action_distribution(ctx, n_positions, np.random.default_rng(seed + c))
    dist = slot_dist[row_context.reshape(-1), :, np.asarray(positions)]
    return TargetPolicy(spec, dist, logged_action_probability(dist, np.asarray(actions)))


def build_target(
    spec: str,
    *,
    q_hat: np.ndarray | None,
    actions,
    positions,
    propensity,
    n_items: int,
    item_ids: np.ndarray | None = None,
    seed: int = 0,
) -> TargetPolicy:
    """The target named by ``spec``: 'logged', 'uniform', or a recsys.policies arm spec (``POLICY[:param=value,...]``)."""
    actions, positions = np.asarray(actions), np.asarray(positions)
    if spec == "logged":
        target = logged_target(actions, positions, propensity, n_items)
    elif spec == "uniform":
        target = uniform_target(actions, n_items)
    else:
        if q_hat is None:
            raise ValueError(
                f"policy {spec!r} ranks by the reward model; pass q_hat (see recsys.ope.reward_model)"
            )
        target = policy_target(spec, q_hat, actions, positions, int(positions.max()) + 1, item_ids, seed)
    check_action_dist(target.action_dist, actions.shape[0], f"policy {spec!r} action_dist")
    return target
