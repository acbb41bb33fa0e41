"""A/B arms: which user gets which policy.

Assignment hashes the user id with BLAKE2b (``hashlib``; Python's ``hash()`` is salted per process)
into [0, 1) and cuts that interval by the arms' weights, so a user keeps their arm across
replicas and restarts. How the arms compare is ``recsys.metrics.ab``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np


def user_bucket(user_id: int, salt: str = "serendip-ab") -> float:
    """A stable number in [0, 1) for ``user_id``; the same on every machine and run."""
    digest = hashlib.blake2b(f"{salt}:{int(user_id)}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


def assign_arm(user_id: int, weights: Sequence[float]) -> int:
    """The index of the arm whose weight share covers the user's bucket."""
    edges = np.cumsum(np.asarray(weights, dtype=float))
    return int(min(np.searchsorted(edges / edges[-1], user_bucket(user_id), side="right"), len(edges) - 1))
