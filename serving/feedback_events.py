"""Feedback events on one shown item: idempotent per (impression, item, event), strongest reward wins.

A shopper's path through one slot is a sequence of events (view, click, cart, purchase), each sent
once and possibly more than once by a retrying client. Every distinct event is accepted once; a
repeat of the same event is a ``duplicate``. The slot's reward is the strongest reward seen so far
(``recsys.data.schemas.EVENT_REWARDS``); a raw ``reward`` (no event) is its own event, counted
once per slot.

How the policy learns a slot whose reward grows (the choice, documented): the first event teaches
the slot once, as one row, exactly as before; a later, stronger event teaches only the increment,
as a *correction row* that changes the reward of that row and adds no observation:

- per-item evidence (greedy, epsilon-greedy, softmax, UCB1, Thompson): clicks += r_new - r_old,
  views and expected clicks unchanged, so the item's evidence equals one row with reward r_new;
- linear posteriors (LinUCB, LinTS): b += theta (r_new - r_old) x with A unchanged, so the
  posterior equals the one that saw the row (theta x, theta r_new) once.

Either way the policy ends where it would be had the strongest event arrived first, and
``n_updates`` counts each slot once. A weaker event after a stronger one changes no reward.
"""

from __future__ import annotations

import numpy as np

from recsys.data.schemas import EVENT_TYPES
from recsys.policies import Feedback, Policy
from recsys.policies.evidence import PerItemPolicy
from recsys.policies.linear import LinearPolicy, LinearPosterior

EVENT_BITS: dict[str, int] = {name: 1 << i for i, name in enumerate((*EVENT_TYPES, "reward"))}
"""One bit per event kind in a slot's ``seen`` mask (a uint8); ``reward`` is a raw reward sent without an event."""


def event_bit(event: str | None) -> int:
    """The mask bit of ``event`` (None: a raw reward)."""
    return EVENT_BITS["reward" if event is None else event]


def upgraded(old: float, new: float) -> float:
    """The slot's reward after an event with reward ``new``: the strongest seen (``old`` NaN = none yet)."""
    return new if np.isnan(old) else max(old, new)


def correct_reward(policy: Policy, fb: Feedback, delta: float) -> None:
    """Raise the reward of one row ``fb`` the policy already learned by ``delta``, adding no observation."""
    if delta <= 0:
        return
    if isinstance(policy, PerItemPolicy):
        zeros = np.zeros(1)
        policy.evidence.add(fb.item_ids, np.array([delta]), zeros, zeros)
    elif isinstance(policy, LinearPolicy):
        theta = policy._examination_of(fb)  # the weight the original row was learned with
        post = policy.posterior
        policy.posterior = LinearPosterior(post.ridge, post.precision,
                                           post.target + fb.features.T @ (theta * delta))
    # static: learns nothing from rewards
