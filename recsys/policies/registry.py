"""Every policy by name, so configs, the CLI, the Serve YAML and the sweeps can name one."""

from __future__ import annotations

import dataclasses
from typing import Any

from recsys.policies.base import Policy
from recsys.policies.epsilon import EpsilonGreedy
from recsys.policies.greedy import Greedy, Static
from recsys.policies.linear import LinTS, LinUCB
from recsys.policies.softmax import Softmax
from recsys.policies.thompson import Thompson
from recsys.policies.ucb import UCB1

POLICIES: dict[str, type[Policy]] = {
    cls.name: cls for cls in (Static, Greedy, EpsilonGreedy, Softmax, UCB1, Thompson, LinUCB, LinTS)
}
"""Policy classes by their ``name``."""


def make_policy(name: str, **params: Any) -> Policy:
    """Build the policy called ``name`` with its parameters (validated by the policy itself)."""
    if name not in POLICIES:
        raise ValueError(f"policy {name!r} is unknown; choose one of {', '.join(sorted(POLICIES))}")
    cls = POLICIES[name]
    known = [f.name for f in dataclasses.fields(cls) if f.init]
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise ValueError(f"policy {name!r} has no parameter {unknown[0]!r}; its parameters are {', '.join(known)}")
    return cls(**params)
