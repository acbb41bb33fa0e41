"""ServeConfig and arm specs: one typed config for the CLI and the Serve YAML; bad values name the field."""

import pytest

from recsys.policies import Arm, ArmError
from serving.config import ServeConfig, ServeConfigError


def test_arms_round_trip_through_yaml_args():
    cfg = ServeConfig(model="m", arms=("control=greedy@1", "explore=epsilon_greedy:epsilon=0.1@1"))
    again = ServeConfig.from_args(cfg.to_args())
    assert again.served_arms() == cfg.served_arms()
    yaml_style = ServeConfig.from_args({"model": "m", "arms": [{"name": "a", "policy": "softmax",
                                                                 "params": {"temperature": 0.5}}]})
    assert yaml_style.served_arms() == [Arm("softmax", {"temperature": 0.5}, name="a")]
    assert ServeConfig(model="m", policy="ucb1").user_config() == {
        "arms": [{"name": "ucb1", "policy": "ucb1", "params": {}, "weight": 1.0}]}


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: ServeConfig(model="m", arms=("a=softmax:temperature=hot",)),
         "ServeConfig.arms: arm 'a=softmax:temperature=hot': parameter 'temperature=hot' must be name=number"),
        (lambda: ServeConfig(model="m", arms=("explore=lints,scale=0.5",)),
         "parameters follow the policy after a colon; write 'explore=lints:scale=0.5'"),
        (lambda: ServeConfig.from_args({"model": "m", "arms": [{"name": "a", "policy": "greedy", "colour": 1}]}),
         "serving args: arms: arm .*give the keys name, policy, params, weight"),
        (lambda: ServeConfig(model="m", port=0), r"ServeConfig.port=0 must be >= 1"),
        (lambda: ServeConfig(model="m", port=70000), r"ServeConfig.port=70000 must be <= 65535"),
        (lambda: ServeConfig(model="m", reward_window_s=0), r"ServeConfig.reward_window_s=0 must be > 0"),
        (lambda: ServeConfig(model="m", score_timeout_s=0), r"ServeConfig.score_timeout_s=0 must be > 0"),
        (lambda: ServeConfig(model="m", score_attempts=0), r"ServeConfig.score_attempts=0 must be >= 1"),
        (lambda: ServeConfig(model="m", batch_wait_s=2), r"ServeConfig.batch_wait_s=2 must be in \[0, 1\]"),
        (lambda: ServeConfig(model="m", scorer_replicas=2), "scorer_max_replicas=1 is below scorer_replicas=2"),
        (lambda: ServeConfig(model="m", history_len=201), "history_len=201 must be <= 200"),
        (lambda: ServeConfig(model="m", arms=("a=greedy", "a=softmax")), r"arm names \['a', 'a'\] must be unique"),
        (lambda: ServeConfig.from_args({"model": "m", "colour": 1}), r"unknown keys \['colour'\]"),
        (lambda: ServeConfig(model="m", policy="bogus"), "arm 'bogus': policy 'bogus' is unknown; choose one of"),
        (lambda: ServeConfig(model="m", policy="no policy"), "ServeConfig.policy: arm 'no policy': policy 'no policy'"),
        (lambda: ServeConfig(model="m", arms=("a=greedy:epsilon=0.1",)), "arm 'a': policy 'greedy' has no parameter 'epsilon'"),
        (lambda: ServeConfig(model="m", arms=("a=epsilon_greedy:epsilon=2",)), r"arm 'a': epsilon=2 must be in \[0"),
        (lambda: ServeConfig(model="no/such/dir").check_paths(), "ServeConfig.model=no/such/dir: no serendip.json"),
    ],
)
def test_bad_config_names_the_field(make, match):
    with pytest.raises(ServeConfigError, match=match):
        make()


FLOOR_ZERO = (r"floor=0 lets a shown item log propensity 0 \(a Monte-Carlo estimate that missed it\), which the "
              r"impression log refuses; set floor > 0 \(the policies' default is 0.001\) or leave it out$")


@pytest.mark.parametrize(
    ("make", "arm"),
    [
        (lambda: ServeConfig(model="m", arms=("explore=thompson:floor=0@1",)), "explore"),  # serendip serve --arms
        (lambda: ServeConfig(model="m", arms=("control=greedy", "explore=softmax:temperature=0.1,floor=0.0")),
         "explore"),
        (lambda: ServeConfig(model="m", policy="thompson", policy_params={"floor": 0}), "thompson"),  # --policy-params
        (lambda: ServeConfig.from_args({"model": "m", "arms": [{"name": "tuned", "policy": "lints",  # Serve YAML args
                                                                 "params": {"scale": 0.1, "floor": 0}}]}), "tuned"),
        (lambda: Arm.from_value({"name": "live", "policy": "ucb1", "params": {"floor": 0.0}}).check_servable(),
         "live"),  # a live user_config: the bandit checks each arm before it logs the change
    ],
)
def test_a_served_arm_with_floor_zero_is_refused_naming_the_arm_and_the_fix(make, arm):
    with pytest.raises((ServeConfigError, ArmError), match=f"^(ServeConfig.arms: |serving args: arms: )?arm '{arm}': {FLOOR_ZERO}"):
        make()


def test_floor_zero_stays_valid_for_a_policy_that_is_not_served():
    from recsys.policies import make_policy

    assert make_policy("thompson", floor=0.0).floor == 0.0  # an off-policy target policy
    assert Arm("thompson", {"floor": 1e-4}, name="a").check_servable().floor == 1e-4
