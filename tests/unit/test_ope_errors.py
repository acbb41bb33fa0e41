"""Every invalid input to recsys.ope raises a ValueError whose message names the row or parameter."""

from __future__ import annotations

import re

import numpy as np
import pytest

from recsys.ope.estimators import RewardPredictions, estimate
from recsys.ope.evaluate import EvaluateConfig
from recsys.ope.propensity import check_action_dist, logged_action_probability
from recsys.ope.reward_model import RewardModelConfig, cross_fit

R = [1.0, 0.0, 1.0, 0.0]
PB = [0.5, 0.5, 0.25, 0.25]
PE = [0.5, 0.2, 0.1, 0.9]
PRED = RewardPredictions(logged=[0.1, 0.2, 0.3, 0.4], target=[0.2, 0.2, 0.2, 0.2])
NAN = float("nan")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"logged_propensity": [0.5, 0.5, NAN, 0.25]},
            "logged_propensity row 2: nan is not in (0, 1]; every logged row needs the logging policy's "
            "probability of its item at its position (fix the logger or drop the row)",
        ),
        ({"logged_propensity": [0.5, 0.0, 0.25, 0.25]}, "logged_propensity row 1: 0.0 is not in (0, 1];"),
        ({"logged_propensity": [0.5, 0.5, 0.25, 1.5]}, "logged_propensity row 3: 1.5 is not in (0, 1];"),
        (
            {"target_propensity": [0.5, NAN, 0.1, 0.9]},
            "target_propensity row 1: nan is not in [0, 1]; pass the target policy's probability of the "
            "logged item at the logged position",
        ),
        ({"target_propensity": [0.5, 0.2, -0.1, 0.9]}, "target_propensity row 2: -0.1 is not in [0, 1]"),
        (
            {"rewards": [1.0, NAN, 0.0, 0.0]},
            "rewards row 1: nan is not finite; drop the row or fix its reward",
        ),
        ({"rewards": []}, "rewards is empty; an estimate needs at least one logged row"),
        (
            {"rewards": [[1.0, 0.0], [0.0, 1.0]]},
            "rewards has shape (2, 2); pass a 1-D array with one value per logged row",
        ),
        (
            {"target_propensity": [0.5, 0.2, 0.1]},
            "target_propensity has 3 rows but rewards has 4; pass one value per logged row",
        ),
        (
            {"logged_propensity": [0.5] * 5},
            "logged_propensity has 5 rows but rewards has 4; pass one value per logged row",
        ),
        ({"name": "ipw"}, "unknown estimator 'ipw'; choose one of replay, ips, snips, dm, dr, sndr"),
        (
            {"name": "dr", "reward_model_pred": None},
            "estimator 'dr' needs reward_model_pred; fit one with recsys.ope.reward_model.cross_fit",
        ),
        ({"clip": 0.0}, "clip=0.0 must be > 0 (the largest importance weight kept) or None"),
        (
            {"name": "replay"},
            "replay needs a uniform logging policy (one propensity per position); logged_propensity ranges "
            "from 0.25 to 0.5 at position 0; use 'ips' or 'snips' instead",
        ),
        ({"positions": [0, 1, -1, 0]}, "positions row 2: -1 is negative; positions count slots from 0"),
        (
            {"positions": [0, 1.5, 1, 0]},
            "positions row 1: 1.5 is not a whole number; positions count slots from 0",
        ),
        ({"positions": [0, 1]}, "positions has shape (2,); expected (4,), one 0-based slot per logged row"),
        ({"n_boot": -1}, "n_boot=-1 must be 0 (no interval) or at least 2; 1000 is a good default"),
        ({"n_boot": 1}, "n_boot=1 must be 0 (no interval) or at least 2; 1000 is a good default"),
        ({"alpha": 1.5}, "alpha=1.5 must be in (0, 1); 0.05 gives a 95% interval"),
        ({"clusters": [1, 2]}, "clusters has 2 rows but rewards has 4; pass one id per logged row"),
        (
            {"name": "dm", "reward_model_pred": RewardPredictions([0.1, 0.2], [0.1, 0.2])},
            "reward_model_pred has 2 rows but rewards has 4; predict for every logged row",
        ),
    ],
)
def test_estimate_rejects_bad_input_naming_it(kwargs, message):
    args = {
        "name": "ips",
        "rewards": R,
        "logged_propensity": PB,
        "target_propensity": PE,
        "reward_model_pred": PRED,
        "n_boot": 10,
    } | kwargs
    with pytest.raises(ValueError, match=re.escape(message)):
        estimate(**args)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: RewardPredictions([0.1, NAN], [0.1, 0.2]),
            "reward_model_pred.logged row 1: nan is not finite; refit the reward model",
        ),
        (
            lambda: RewardPredictions([0.1, 0.2], [0.1]),
            "reward_model_pred.target has 1 rows but rewards has 2; pass one value per logged row",
        ),
        (
            lambda: RewardPredictions.from_candidates(np.zeros((2, 3)), np.full((2, 4), 0.25), [0, 1]),
            "q_hat has shape (2, 3) but action_dist has (2, 4); pass one prediction per candidate",
        ),
        (
            lambda: RewardPredictions.from_candidates(np.zeros((2, 3, 2)), np.full((2, 3, 2), 1 / 3), [0, 1]),
            "q_hat is 3-D (n, n_actions, n_positions); pass positions to pick each row's slot",
        ),
        (
            lambda: RewardPredictions.from_candidates(
                np.zeros((2, 3, 2)), np.full((2, 3, 2), 1 / 3), [0, 1], [0, 2]
            ),
            "positions holds slot 2 but q_hat has 2 positions; pass one distribution per slot",
        ),
        (
            lambda: logged_action_probability(np.full((2, 3), 1 / 3), np.array([0, 3])),
            "actions row 1: 3 is not a column of action_dist (0..2)",
        ),
        (
            lambda: check_action_dist([[0.5, 0.4], [0.5, 0.5]], 2),
            "action_dist row 0: sums to 0.9 over actions; each row (and each position) must be a "
            "probability distribution over the candidate items",
        ),
        (
            lambda: check_action_dist([[0.5, 0.5]], 2),
            "action_dist has shape (1, 2); expected (2, n_actions) or (2, n_actions, n_positions)",
        ),
        (
            lambda: check_action_dist([[0.5, 0.5], [1.5, -0.5]], 2),
            "action_dist row 1: has a value outside [0, 1]; pass probabilities",
        ),
    ],
)
def test_array_helpers_reject_bad_input_naming_it(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()


FEATS = np.zeros((6, 3, 2))
ACTIONS = np.array([0, 1, 2, 0, 1, 2])
REWARDS = np.array([1.0, 0, 0, 1, 0, 0])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: RewardModelConfig(kind="forest"),
            "RewardModelConfig.kind='forest'; choose one of logistic, hgb",
        ),
        (lambda: RewardModelConfig(folds=1), "RewardModelConfig.folds=1 must be >= 2 for cross-fitting"),
        (lambda: RewardModelConfig(strength=0), "RewardModelConfig.strength=0 must be > 0"),
        (lambda: RewardModelConfig(threads=0), "RewardModelConfig.threads=0 must be >= 1 or None"),
        (
            lambda: cross_fit(FEATS[:, :, 0], ACTIONS, REWARDS),
            "candidate_features has shape (6, 3); expected (n_rows, n_actions, n_features)",
        ),
        (
            lambda: cross_fit(FEATS, ACTIONS, REWARDS[:5]),
            "rewards has shape (5,) and actions (6,) but candidate_features has 6 rows; pass one reward and one logged action per row",
        ),
        (
            lambda: cross_fit(FEATS, ACTIONS + 1, REWARDS),
            "actions must be integer columns of candidate_features in 0..2",
        ),
        (
            lambda: cross_fit(np.where(np.arange(6)[:, None, None] == 4, np.nan, FEATS), ACTIONS, REWARDS),
            "candidate_features row 4: holds NaN or inf; encode missing values first",
        ),
        (
            lambda: cross_fit(FEATS, ACTIONS, REWARDS * 2),
            "rewards row 0: 2.0 is not in [0, 1]; the reward model predicts a probability",
        ),
        (
            lambda: cross_fit(FEATS, ACTIONS, REWARDS, RewardModelConfig(folds=7)),
            "6 rows cannot be split into RewardModelConfig.folds=7 folds",
        ),
        (
            lambda: cross_fit(FEATS, ACTIONS, REWARDS, RewardModelConfig(categorical=(2,))),
            "RewardModelConfig.categorical names column 2 but the features have 2 columns",
        ),
        (
            lambda: EvaluateConfig(log="a.parquet", policy=("softmax:temperature",)),
            "EvaluateConfig.policy: arm 'softmax:temperature': parameter 'temperature' must be name=number",
        ),
        (
            lambda: EvaluateConfig(log="a.parquet", policy=("greedy",), arm=("explore=lints,scale=0.5",)),
            "EvaluateConfig.arm: arm 'explore=lints,scale=0.5': parameters follow the policy after a colon",
        ),
        (
            lambda: EvaluateConfig(),
            "EvaluateConfig: pass exactly one of --log (an impressions file) or --obd (an OBD folder)",
        ),
        (
            lambda: EvaluateConfig(log="a.parquet", estimators=("ipw",)),
            "EvaluateConfig.estimators: unknown ['ipw']; choose from replay, ips, snips, dm, dr, sndr",
        ),
        (
            lambda: EvaluateConfig(log="a.parquet", out="t.txt"),
            "EvaluateConfig.out=t.txt: name it .csv or .json",
        ),
        (
            lambda: EvaluateConfig(log="a.parquet", reward_model="forest"),
            "EvaluateConfig.reward_model='forest'; choose one of logistic, hgb",
        ),
    ],
)
def test_configs_and_reward_model_reject_bad_input_naming_it(call, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        call()
