"""Invalid input gives a ValueError that names the parameter and the fix, exactly."""

from __future__ import annotations

import re

import numpy as np
import pytest

from recsys.policies import Context, Feedback, examination_weights, load_state, make_policy, save_state

IDS, SCORES = np.arange(4), np.array([0.1, 0.4, 0.2, 0.3])


def ctx(**over) -> Context:
    return Context(**{"item_ids": IDS, "scores": SCORES, **over})


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (lambda: make_policy("epsilon_greedy", epsilon=-0.1),
         "epsilon=-0.1 must be in [0.0, 1.0]; pass a value in that range"),
        (lambda: make_policy("epsilon_greedy", epsilon=float("nan")),
         "epsilon=nan must be in [0.0, 1.0]; pass a value in that range"),
        (lambda: make_policy("softmax", temperature=0.0),
         "temperature=0.0 must be in (0.0, inf); pass a value in that range"),
        (lambda: make_policy("greedy", floor=1.0), "floor=1.0 must be in [0.0, 1.0); pass a value in that range"),
        (lambda: make_policy("thompson", prior_strength=-1.0),
         "prior_strength=-1.0 must be in (0.0, inf); pass a value in that range"),
        (lambda: make_policy("lints", n_draws=0), "n_draws=0 must be in [1, 1000000]; pass a value in that range"),
        (lambda: make_policy("linucb", ridge=0.0), "ridge=0.0 must be in (0.0, inf); pass a value in that range"),
        (lambda: make_policy("ucb1", c=-2.0), "c=-2.0 must be in [0.0, inf); pass a value in that range"),
        (lambda: make_policy("greedy", examination=(1.0, 0.0)),
         "examination=(1.0, 0.0) must be non-empty with values in (0, 1]; estimate them with examination_weights"),
        (lambda: make_policy("bandit9000"),
         "policy 'bandit9000' is unknown; choose one of epsilon_greedy, greedy, lints, linucb, softmax, static, thompson, ucb1"),
        (lambda: make_policy("softmax", epsilon=0.1),
         "policy 'softmax' has no parameter 'epsilon'; its parameters are floor, examination, prior_strength, temperature, n_draws"),
        (lambda: ctx(scores=[0.1, np.nan, 0.2, 0.3]),
         "Context.scores: NaN or inf at candidate 1; pass finite numbers"),
        (lambda: ctx(scores=[0.1, 0.2]), "Context.scores: expected shape (4,), got shape (2,); pass one value per item"),
        (lambda: ctx(item_ids=[1, 2, 2, 3]), "Context.item_ids: duplicate item ids; pass each candidate once"),
        (lambda: ctx(item_ids=[], scores=[]), "Context.item_ids: no candidates; pass at least one item"),
        (lambda: ctx(features=np.ones((3, 2))),
         "Context.features: expected shape (4, d), got (3, 2); pass one feature row per candidate"),
        (lambda: ctx(prior=[0.1, 0.2, 1.5, 0.0]), "Context.prior: 1.5 at candidate 2 is not in [0, 1]; pass probabilities"),
        (lambda: Feedback([1, 2], [1.0, 1.2]), "Feedback.rewards: 1.2 at row 1 is not in [0, 1]; pass probabilities"),
        (lambda: Feedback([1, 2], [-0.5, 1.0]), "Feedback.rewards: -0.5 at row 0 is not in [0, 1]; pass probabilities"),
        (lambda: Feedback([1, 2], [1.0]), "Feedback.rewards: expected shape (2,), got shape (1,); pass one value per item"),
        (lambda: Feedback([1, 2], [1.0, 0.0], positions=[0, -1]),
         "Feedback.positions: -1 at row 1 is negative; positions count from 0"),
        (lambda: Feedback([1, 2], [1.0, 0.0], features=np.ones((2, 3, 1))),
         "Feedback.features: expected shape (2, d), got (2, 3, 1); pass one feature row per row"),
        (lambda: make_policy("greedy").select(ctx(), 5, np.random.default_rng(0)),
         "k=5 must be between 1 and the 4 candidates; ask for fewer items or pass more candidates"),
        (lambda: make_policy("thompson").select(ctx(), 0, np.random.default_rng(0)),
         "k=0 must be between 1 and the 4 candidates; ask for fewer items or pass more candidates"),
        (lambda: make_policy("lints").select(ctx(), 2, np.random.default_rng(0)),
         "Context.features: lints needs per-item features; build them with linear_policy_features"),
        (lambda: make_policy("linucb").update(Feedback([1], [1.0])),
         "Feedback.features: linucb needs per-item features; build them with linear_policy_features"),
        (lambda: make_policy("thompson", examination=(1.0, 0.5)).update(Feedback([1], [1.0], positions=[2])),
         "Feedback.positions: position 2 has no examination weight (only 2 given); estimate weights for every shown position"),
        (lambda: examination_weights([0, 2], [1.0, 0.0], [5, 6]),
         "examination_weights: position 1 never appears in the log; pass impressions for every position up to the largest"),
        (lambda: examination_weights([0, 1], [1.0, 2.0], [5, 6]), "examination_weights: click 2.0 at row 1 is not in [0, 1]"),
    ],
)
def test_invalid_input_names_the_parameter(build, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        build()


def test_linear_feature_width_cannot_change():
    policy = make_policy("linucb")
    policy.update(Feedback([1], [1.0], features=np.ones((1, 3))))
    message = ("Context.features: 2 feature columns, but this posterior has 3; "
               "use the same feature builder for every context and feedback")
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        policy.select(ctx(features=np.ones((4, 2))), 2, np.random.default_rng(0))


def test_state_files_are_checked(tmp_path):
    with pytest.raises(ValueError, match=re.escape("bandit.npy: policy state is saved as .safetensors")):
        save_state(make_policy("greedy"), tmp_path / "bandit.npy")
    with pytest.raises(FileNotFoundError, match="no policy state here; save one with save_state"):
        load_state(tmp_path / "missing.safetensors")
    arrays, header = make_policy("ucb1").state_dict()
    with pytest.raises(ValueError, match=re.escape("state header: policy 'ucb1' cannot load into 'thompson'")):
        make_policy("thompson").load_state_dict(arrays, header)
    with pytest.raises(ValueError, match=re.escape("state header: version 0 is not 1")):
        make_policy("ucb1").load_state_dict(arrays, {**header, "version": 0})
