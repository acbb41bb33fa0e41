"""The picked policy as a Serve ``user_config`` snippet, ready to paste into ``serving/config.yaml``.

The shape follows ``serving.config.ServeConfig.user_config()``: ``{"arms": [{name, policy, params,
weight}]}``. Tuning must not import serving (imports point down only), so the shape is written
here and a unit test checks it against ``serving.config``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from tuning.space import Arm


def user_config(arm: Arm, control: Arm | None = None) -> dict:
    """The bandit deployment's ``user_config`` serving ``arm`` (after an optional A/B control arm)."""
    arms = []
    if control is not None:
        arms.append(_arm_entry("control", control))
    arms.append(_arm_entry("tuned", arm))
    return {"arms": arms}


def arm_spec(arm: Arm, name: str = "tuned") -> str:
    """The same arm as a ``serendip serve --arms`` string: ``NAME=POLICY[,param=value...]``."""
    return f"{name}={arm.policy}" + "".join(f",{k}={v:.6g}" for k, v in arm.params.items())


def snippet(arm: Arm, model: Path | None = None) -> str:
    """YAML text: the ``user_config`` block plus, as comments, the equivalent CLI line."""
    cli = f"serendip serve --model {model or 'MODEL'} --arms {arm_spec(arm)}"
    head = (
        "# Serve user_config of the bandit deployment (serving/config.yaml, deployments: Bandit).\n"
        "# It applies live through reconfigure(); from the command line the same arm is:\n"
        f"#   {cli}\n"
    )
    return head + yaml.safe_dump({"user_config": user_config(arm)}, sort_keys=False)


def _arm_entry(name: str, arm: Arm) -> dict:
    """One arm mapping with plain floats, so yaml.safe_dump can write it."""
    return {"name": name, "policy": arm.policy, "params": {k: float(v) for k, v in arm.params.items()}, "weight": 1.0}
