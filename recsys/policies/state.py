"""Save and load a policy's learned state: arrays in one safetensors file, the header as JSON metadata.

No pickle: a snapshot is plain tensors plus a versioned JSON header naming the policy and its
parameters, so any reader (another Python, Rust, a notebook) can inspect it safely.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

from recsys.policies.base import Policy
from recsys.policies.registry import make_policy

HEADER_KEY = "serendip.policy"
"""Metadata key holding the JSON header inside the safetensors file."""


def save_state(policy: Policy, path: str | Path) -> Path:
    """Write ``policy.state_dict()`` to ``path`` (a ``.safetensors`` file), atomically."""
    return write_state(*policy.state_dict(), path)


def copy_state(policy: Policy) -> tuple[dict, dict]:
    """``policy.state_dict()`` with its arrays copied: what ``write_state`` may write later, in another
    thread, while the policy goes on learning."""
    arrays, header = policy.state_dict()
    return {name: np.array(a, copy=True) for name, a in arrays.items()}, json.loads(json.dumps(header))


def write_state(arrays: dict, header: dict, path: str | Path) -> Path:
    """Write a policy's (arrays, header) to ``path`` (a ``.safetensors`` file), atomically."""
    path = Path(path)
    if path.suffix != ".safetensors":
        raise ValueError(f"{path}: policy state is saved as .safetensors; name the file *.safetensors")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file(arrays, str(tmp), metadata={HEADER_KEY: json.dumps(header, sort_keys=True)})
    tmp.replace(path)
    return path


def read_state(path: str | Path) -> tuple[dict, dict]:
    """The (arrays, header) stored at ``path``, without building a policy."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no policy state here; save one with save_state")
    with safe_open(str(path), framework="np") as f:
        metadata = f.metadata() or {}
        if HEADER_KEY not in metadata:
            raise ValueError(f"{path}: no {HEADER_KEY!r} header; this file was not written by save_state")
        arrays = {name: f.get_tensor(name) for name in f.keys()}
    return arrays, json.loads(metadata[HEADER_KEY])


def load_state(path: str | Path) -> Policy:
    """The policy saved at ``path``: built from the header's name and parameters, state restored."""
    arrays, header = read_state(path)
    policy = make_policy(header["policy"], **header["params"])
    policy.load_state_dict(arrays, header)
    return policy
