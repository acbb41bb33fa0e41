"""Exploration policies with propensities (pure numpy, no Ray): one ``select`` then ``update`` interface.

The serving bandit actor and the tuning sweeps use these same classes. See ``base`` for the
data types and what a propensity means, ``propensity`` for how each is computed.
"""

from recsys.policies.arm import Arm, ArmError
from recsys.policies.base import Context, Feedback, Policy, Slate
from recsys.policies.epsilon import EpsilonGreedy
from recsys.policies.features import linear_policy_features
from recsys.policies.greedy import Greedy, Static
from recsys.policies.linear import LinearPosterior, LinTS, LinUCB
from recsys.policies.position import examination_weights
from recsys.policies.registry import POLICIES, make_policy
from recsys.policies.softmax import Softmax
from recsys.policies.state import load_state, read_state, save_state
from recsys.policies.thompson import Thompson
from recsys.policies.ucb import UCB1

__all__ = [
    "POLICIES",
    "Arm",
    "ArmError",
    "Context",
    "EpsilonGreedy",
    "Feedback",
    "Greedy",
    "LinTS",
    "LinUCB",
    "LinearPosterior",
    "Policy",
    "Slate",
    "Softmax",
    "Static",
    "Thompson",
    "UCB1",
    "examination_weights",
    "linear_policy_features",
    "load_state",
    "make_policy",
    "read_state",
    "save_state",
]
