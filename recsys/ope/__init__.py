"""Off-policy evaluation (Ray-free): estimate a target policy's value from logged impressions.

Estimators (``estimators.py``): replay, IPS, SNIPS, DM, DR and SNDR, position-wise, with clipping,
a bootstrap interval and the weights' effective sample size. DM, DR and SNDR read a cross-fitted
reward model (``reward_model.py``). ``evaluate_log`` runs them on an impressions table and
``evaluate`` is the ``serendip evaluate`` command.
"""

from recsys.ope.estimators import ESTIMATORS, Estimate, RewardPredictions, estimate
from recsys.ope.log_evaluation import evaluate_log
from recsys.ope.propensity import effective_sample_size, importance_weights
from recsys.ope.reward_model import RewardModelConfig, cross_fit
from recsys.ope.targets import TargetPolicy, build_target, marginal_action_dist

__all__ = [
    "ESTIMATORS",
    "Estimate",
    "RewardModelConfig",
    "RewardPredictions",
    "TargetPolicy",
    "build_target",
    "cross_fit",
    "effective_sample_size",
    "estimate",
    "evaluate_log",
    "importance_weights",
    "marginal_action_dist",
]
