"""An arm: a policy with concrete exploration parameters, and where it is served, its name and traffic share.

The serving A/B split, the exploration sweep and off-policy evaluation all name arms the same way,
in one string form that :meth:`Arm.parse` reads and :meth:`Arm.spec` writes::

    [NAME=]POLICY[:param=value,...][@WEIGHT]        e.g.  explore=epsilon_greedy:epsilon=0.1@0.5

``serendip serve --arms``, ``serendip evaluate --policy/--arm`` and ``serendip tune exploration
--offline.arm`` take it; a YAML ``arms:`` list writes the same four fields as a mapping
(:meth:`Arm.from_value`). A name left out is the policy's name, a weight left out is 1.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from recsys.policies.base import Policy
from recsys.policies.registry import make_policy

FORM = "[NAME=]POLICY[:param=value,...][@WEIGHT], e.g. explore=epsilon_greedy:epsilon=0.1@0.5"


class ArmError(ValueError):
    """An arm that cannot be read or served; the message names the arm and the fix."""


def _number(value: Any) -> int | float:
    """A parameter as int when integral (counts such as n_draws), else float; numpy scalars become Python's."""
    number = float(value)
    return int(number) if number.is_integer() else number


def _token(text: str) -> bool:
    """Whether ``text`` is a non-empty run of letters, digits, '-' and '_' (names and policies)."""
    return bool(text) and text.replace("_", "").replace("-", "").isalnum()


@dataclass(frozen=True)
class Arm:
    """One policy with its exploration parameters; served, also its arm name and share of users."""

    policy: str
    """A name in ``recsys.policies.POLICIES`` (or an off-policy target such as ``logged``)."""
    params: dict[str, float] = field(default_factory=dict)
    """Exploration parameters passed to ``make_policy`` (e.g. epsilon=0.1)."""
    name: str = ""
    """Arm name in /experiments and the impression log's ``policy`` column; empty = the policy's name."""
    weight: float = 1.0
    """Relative share of users routed to this arm (by a stable hash of user_id)."""

    def __post_init__(self) -> None:
        name = self.name or self.policy
        if not _token(self.policy):
            raise ArmError(f"arm {name!r}: policy {self.policy!r} must be non-empty letters, digits, '-' or '_'")
        if not _token(name):
            raise ArmError(f"arm name {name!r} must be non-empty letters, digits, '-' or '_'")
        if not (math.isfinite(self.weight) and self.weight > 0):
            raise ArmError(f"arm {name!r}: weight {self.weight} must be a positive number")
        try:
            params = {str(k): _number(v) for k, v in dict(self.params).items()}
        except (TypeError, ValueError):
            raise ArmError(f"arm {name!r}: parameters {self.params!r} must be numbers") from None
        object.__setattr__(self, "name", name)
        object.__setattr__(self, "params", params)
        object.__setattr__(self, "weight", _number(self.weight))

    @classmethod
    def parse(cls, spec: str) -> Arm:
        """Read ``[NAME=]POLICY[:param=value,...][@WEIGHT]``."""
        head, _, weight = spec.strip().partition("@")
        if "," in head.partition(":")[0]:  # NAME=POLICY,param=value: an older form of serve --arms
            fixed = head.replace(",", ":", 1) + (f"@{weight}" if weight else "")
            raise ArmError(f"arm {spec!r}: parameters follow the policy after a colon; write {fixed!r}")
        named = "=" in head.partition(":")[0]
        name, _, rest = head.partition("=") if named else ("", "", head)
        policy, _, pairs = rest.partition(":")
        params: dict[str, float] = {}
        for pair in filter(None, pairs.split(",")):
            key, _, value = pair.partition("=")
            try:
                number = float(value)  # float("") fails too: no '=' or no value
            except ValueError:
                number = math.nan
            if not key.strip() or math.isnan(number):
                raise ArmError(f"arm {spec!r}: parameter {pair!r} must be name=number; write {FORM}")
            params[key.strip()] = number
        try:
            w = float(weight) if weight else 1.0
        except ValueError:
            raise ArmError(f"arm {spec!r}: weight {weight!r} must be a number; write {FORM}") from None
        if not policy.strip():
            raise ArmError(f"arm {spec!r} names no policy; write {FORM}")
        return cls(policy.strip(), params, name.strip(), w)

    @classmethod
    def from_value(cls, value: Arm | str | dict[str, Any]) -> Arm:
        """An Arm, a spec string or a YAML mapping ``{name, policy, params, weight}``."""
        if isinstance(value, Arm):
            return value
        if isinstance(value, str):
            return cls.parse(value)
        try:
            return cls(**value)
        except TypeError as err:
            raise ArmError(f"arm {value!r}: {err}; give the keys name, policy, params, weight") from None

    def spec(self, digits: int | None = None, served: bool = True) -> str:
        """The string :meth:`parse` reads back; ``digits`` rounds the parameters for display, and
        ``served=False`` leaves out the name and weight (the policy alone, as an off-policy target)."""
        params = ",".join(f"{k}={_text(v, digits)}" for k, v in self.params.items())
        text = self.policy + (f":{params}" if params else "")
        if served and self.name != self.policy:
            text = f"{self.name}={text}"
        if served and self.weight != 1:
            text += f"@{_text(self.weight, digits)}"
        return text

    def label(self) -> str:
        """The policy and its parameters to 3 significant digits, for tables and reports."""
        return self.spec(digits=3, served=False)

    def as_mapping(self) -> dict[str, Any]:
        """``{name, policy, params, weight}`` with plain numbers: a YAML ``arms:`` entry, a WAL record."""
        return {"name": self.name, "policy": self.policy, "params": dict(self.params), "weight": self.weight}

    def build(self) -> Policy:
        """The policy object (``make_policy``), validated by the policy itself."""
        return make_policy(self.policy, **self.params)

    def check_servable(self) -> Policy:
        """The policy, or an ArmError naming the fix when this arm cannot be served."""
        if self.params.get("floor") == 0:  # an off-policy target may have floor 0; a served arm may not
            raise ArmError(
                f"arm {self.name!r}: floor=0 lets a shown item log propensity 0 (a Monte-Carlo estimate that missed "
                "it), which the impression log refuses; set floor > 0 (the policies' default is 0.001) or leave it out"
            )
        try:
            return self.build()
        except (ValueError, TypeError) as err:
            raise ArmError(f"arm {self.name!r}: {err}") from None


def _text(value: float, digits: int | None) -> str:
    """A number as written in a spec: exact (shortest round trip) unless ``digits`` rounds it."""
    if digits is not None:
        return f"{value:.{digits}g}"
    return str(value)
