"""A/B assignment: a user keeps their arm across processes, and arms get the share their weights say."""

import subprocess
import sys

import numpy as np
import pytest

from serving.experiments import assign_arm, user_bucket


def test_arms_are_stable_across_processes_and_follow_weights():
    code = "from serving.experiments import assign_arm; print([assign_arm(u, [1, 3]) for u in range(50)])"
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert other == str([assign_arm(u, [1, 3]) for u in range(50)])
    share = np.mean([assign_arm(u, [1, 3]) for u in range(20_000)])
    assert share == pytest.approx(0.75, abs=0.01)
    assert 0.0 <= user_bucket(-(2**63)) < 1.0
