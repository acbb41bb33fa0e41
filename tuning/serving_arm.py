"""The picked policy as a Serve ``user_config`` snippet, ready to paste into ``serving/config.yaml``.

The arm is a ``recsys.policies.Arm``, the type the bandit's ``user_config`` arms are read back into,
so its mapping and its ``serendip serve --arms`` string are the ones serving reads.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import yaml

from recsys.policies import Arm


def user_config(arm: Arm, control: Arm | None = None) -> dict:
    """The bandit deployment's ``user_config`` serving ``arm`` as "tuned" (after an optional "control" arm)."""
    arms = [] if control is None else [replace(control, name="control", weight=1)]
    arms.append(replace(arm, name="tuned", weight=1))
    return {"arms": [a.as_mapping() for a in arms]}


def snippet(arm: Arm, model: Path | None = None) -> str:
    """YAML text: the ``user_config`` block plus, as comments, the equivalent CLI line."""
    cli = f"serendip serve --model {model or 'MODEL'} --arms {replace(arm, name='tuned').spec()}"
    head = (
        "# Serve user_config of the bandit deployment (serving/config.yaml, deployments: Bandit).\n"
        "# It applies live through reconfigure(); from the command line the same arm is:\n"
        f"#   {cli}\n"
    )
    return head + yaml.safe_dump({"user_config": user_config(arm)}, sort_keys=False)
