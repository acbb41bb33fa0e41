"""recsys.policies.Arm: the one arm type and string form that serving, tuning and off-policy evaluation share."""

import numpy as np
import pytest

from recsys.policies import Arm, ArmError, Thompson


@pytest.mark.parametrize(
    ("spec", "arm"),
    [
        ("explore=epsilon_greedy:epsilon=0.1,n_draws=50@0.5",
         Arm("epsilon_greedy", {"epsilon": 0.1, "n_draws": 50}, name="explore", weight=0.5)),
        ("softmax:temperature=0.5", Arm("softmax", {"temperature": 0.5})),
        ("greedy", Arm("greedy")),
        ("control=greedy", Arm("greedy", name="control")),
        ("picked=lints:scale=1e-05@1.4142135623730951", Arm("lints", {"scale": 1e-5}, "picked", 2 ** 0.5)),
    ],
)
def test_a_spec_parses_to_the_arm_and_the_arm_writes_it_back(spec, arm):
    assert Arm.parse(spec) == arm
    assert arm.spec() == spec
    assert Arm.parse(arm.spec()) == arm


def test_names_weights_and_numbers_are_normalized_on_construction():
    arm = Arm("thompson", {"n_draws": np.int64(50), "prior_strength": np.float64(20.0), "floor": 0.005})
    assert arm.name == "thompson" and arm.weight == 1
    assert arm.params == {"n_draws": 50, "prior_strength": 20, "floor": 0.005}
    assert all(type(v) in (int, float) for v in arm.params.values())  # YAML- and JSON-safe
    assert isinstance(arm.build(), Thompson)


def test_the_policy_spec_label_and_mapping_are_views_of_the_same_arm():
    arm = Arm("softmax", {"temperature": 0.123456}, name="explore", weight=2)
    assert arm.spec(served=False) == "softmax:temperature=0.123456"
    assert arm.label() == "softmax:temperature=0.123"
    assert arm.as_mapping() == {"name": "explore", "policy": "softmax", "params": {"temperature": 0.123456},
                                "weight": 2}
    assert Arm.from_value(arm.as_mapping()) == arm == Arm.from_value(arm.spec()) == Arm.from_value(arm)


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: Arm.parse("explore=lints,scale=0.5"),
         "arm 'explore=lints,scale=0.5': parameters follow the policy after a colon; write 'explore=lints:scale=0.5'"),
        (lambda: Arm.parse("softmax,temperature=0.5"),
         "arm 'softmax,temperature=0.5': parameters follow the policy after a colon; write 'softmax:temperature=0.5'"),
        (lambda: Arm.parse("a=softmax:temperature"), "arm 'a=softmax:temperature': parameter 'temperature' must be "
                                                     "name=number; write [NAME=]POLICY[:param=value,...][@WEIGHT]"),
        (lambda: Arm.parse("a=softmax:temperature=hot"), "parameter 'temperature=hot' must be name=number"),
        (lambda: Arm.parse("a=softmax:=1"), "parameter '=1' must be name=number"),
        (lambda: Arm.parse("a=softmax@heavy"), "arm 'a=softmax@heavy': weight 'heavy' must be a number"),
        (lambda: Arm.parse(":temperature=1"), "arm ':temperature=1' names no policy"),
        (lambda: Arm("greedy", name="a b"), "arm name 'a b' must be non-empty letters, digits, '-' or '_'"),
        (lambda: Arm("no policy"), "arm 'no policy': policy 'no policy' must be non-empty letters"),
        (lambda: Arm("greedy", name="a", weight=0), "arm 'a': weight 0 must be a positive number"),
        (lambda: Arm("greedy", {"epsilon": "lots"}), "arm 'greedy': parameters {'epsilon': 'lots'} must be numbers"),
        (lambda: Arm.from_value({"name": "a", "policy": "greedy", "colour": 1}),
         "give the keys name, policy, params, weight"),
        (lambda: Arm("bogus").check_servable(), "arm 'bogus': policy 'bogus' is unknown; choose one of"),
        (lambda: Arm("greedy", {"epsilon": 0.1}, name="a").check_servable(),
         "arm 'a': policy 'greedy' has no parameter 'epsilon'"),
        (lambda: Arm("thompson", {"floor": 0}, name="a").check_servable(), "arm 'a': floor=0 lets a shown item"),
    ],
)
def test_a_bad_arm_is_refused_naming_it_and_the_fix(make, message):
    with pytest.raises(ArmError) as caught:
        make()
    assert message in str(caught.value)
