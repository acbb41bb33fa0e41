"""Search spaces: Tune domains, grids, and the errors an unusable space gives before any trial."""

from __future__ import annotations

import pytest
from ray.tune.search.sample import Categorical, Float, Integer

from tuning.space import (
    ALL_POLICIES,
    EXPLORATION_PARAMS,
    ExplorationSpace,
    HparamSpace,
    OptunaExploration,
    Param,
    SearchSpaceError,
    trial_arm,
)


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: Param(1.0, 0.5), r"Param\(low=1.0, high=0.5\): need finite low <= high; swap or fix the bounds"),
        (lambda: Param(0.0, 1.0, log=True), r"Param\(low=0.0, log=True\): a log scale needs low > 0"),
        (lambda: Param(0.1, 1.0, grid=0), r"Param.grid=0: a grid needs at least 1 point"),
        (lambda: Param(float("nan"), 1.0), r"need finite low <= high"),
        (lambda: HparamSpace(search=()), r"hparam space is empty: HparamSpace.search names no parameter"),
        (lambda: HparamSpace(search=("lr", "momentum")), r"HparamSpace.search: unknown parameter\(s\) \['momentum'\]"),
        (lambda: ExplorationSpace().check(()), r"exploration space is empty: no policy given"),
        (lambda: ExplorationSpace().check(("greedy",)),
         r"exploration space is empty: policies \['greedy'\] have no searched parameter"),
        (lambda: ExplorationSpace(search=("floor",)).check(("greedy",)),
         r"exploration space is empty: policies \['greedy'\] have no searched parameter among \['floor'\]"),
        (lambda: ExplorationSpace(search=("epsilon", "floor")).check(("greedy", "epsilon_greedy")), None),
        (lambda: ExplorationSpace(search=("temperature",)).check(("epsilon_greedy",)),
         r"exploration space is empty: policies \['epsilon_greedy'\] have no searched parameter among \['temperature'\]"),
        (lambda: ExplorationSpace().check(("bogus",)), r"policies: unknown policy \['bogus'\]"),
        (lambda: ExplorationSpace(search=("epsilon", "gamma")), r"ExplorationSpace.search: unknown parameter\(s\) \['gamma'\]"),
    ],
)
def test_unusable_spaces_are_refused_with_their_message(make, match):
    if match is None:  # the control row: a usable space passes
        make()
        return
    with pytest.raises(SearchSpaceError, match=match):
        make()


def test_params_map_onto_tune_domains():
    assert isinstance(Param(1e-4, 1e-2, log=True).domain(), Float)
    assert isinstance(Param(1, 8, integer=True).domain(), Integer)
    assert isinstance(Param(choices=(16, 32)).domain(), Categorical)
    assert Param(0.3, 0.3).domain() == 0.3
    ints = Param(1, 3, integer=True).domain()
    assert {ints.sample() for _ in range(200)} == {1, 2, 3}  # the upper bound is inclusive


def test_grid_points_are_geometric_on_a_log_scale_and_unique_for_integers():
    assert Param(0.01, 1.0, log=True, grid=3).grid_points() == pytest.approx([0.01, 0.1, 1.0])
    assert Param(0.0, 1.0, grid=3).grid_points() == pytest.approx([0.0, 0.5, 1.0])
    assert Param(1, 2, integer=True, grid=5).grid_points() == [1, 2]
    assert Param(choices=(16, 64)).grid_points() == [16, 64]


def test_hparam_grid_is_the_product_of_the_searched_parameters():
    space = HparamSpace(search=("lr", "batch_size"), lr=Param(1e-4, 1e-2, log=True, grid=2))
    grid = space.grid()
    assert len(grid) == 2 * 3
    assert set(space.tune_space()) == {"lr", "batch_size"}


def test_exploration_grid_gives_each_policy_only_its_own_parameters():
    space = ExplorationSpace(search=("epsilon", "prior_strength"))
    grid = space.grid(("greedy", "epsilon_greedy", "thompson"))
    assert grid[0] == {"policy": "greedy", "greedy": {}}  # the no-exploration reference: one point
    eps = [g for g in grid if g["policy"] == "epsilon_greedy"]
    assert len(eps) == space.epsilon.grid and all(set(g["epsilon_greedy"]) == {"epsilon"} for g in eps)
    assert len(grid) == 1 + space.epsilon.grid + space.prior_strength.grid
    arm = trial_arm(eps[0])
    assert (arm.policy, arm.params) == ("epsilon_greedy", {"epsilon": pytest.approx(0.01)})


def test_optuna_define_by_run_draws_only_the_chosen_policys_parameters():
    import optuna

    space = ExplorationSpace(search=("temperature",))
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    seen = set()
    for _ in range(12):
        trial = study.ask()
        space.optuna_space(trial, ("greedy", "softmax"))
        seen.add((trial.params["policy"], tuple(sorted(trial.params))))
        study.tell(trial, 0.0)
    assert seen == {("greedy", ("policy",)), ("softmax", ("policy", "softmax/temperature"))}


def test_optuna_runs_seed_points_then_each_baseline_once_then_samples():
    import optuna

    space = ExplorationSpace(search=("epsilon", "temperature"))
    define = OptunaExploration(space, ("epsilon_greedy", "softmax"), n_seeded=1, baselines=("greedy",))
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0, n_startup_trials=2))
    study.enqueue_trial({"policy": "epsilon_greedy", "epsilon_greedy/epsilon": 0.1})
    configs = []
    for _ in range(10):
        trial = study.ask()
        constants = define(trial) or {}
        configs.append({**trial.params, **constants})
        study.tell(trial, 1.0 if configs[-1]["policy"] == "greedy" else 0.5)
    assert configs[0] == {"policy": "epsilon_greedy", "epsilon_greedy/epsilon": 0.1}
    assert configs[1] == {"policy": "greedy"}
    assert all(c["policy"] in ("epsilon_greedy", "softmax") for c in configs[2:])  # greedy never again


def test_seed_values_are_clipped_into_the_searched_range():
    space = ExplorationSpace(search=("epsilon",))
    assert space.clip("epsilon_greedy", {"epsilon": 0.9, "floor": 0.5}) == {"epsilon": 0.5}
    hp = HparamSpace(search=("batch_size", "epochs", "lr"))
    assert hp.clip({"batch_size": 200, "epochs": 5, "lr": 2e-3, "dim": 64}) == {"batch_size": 256, "epochs": 3, "lr": 2e-3}


def test_the_default_space_searches_every_exploration_knob_of_every_exploring_policy():
    from recsys.policies import POLICIES, make_policy

    space = ExplorationSpace()
    assert {p: tuple(space.params(p)) for p in ALL_POLICIES} == EXPLORATION_PARAMS  # nothing left at a default
    assert space.params("ucb1").keys() == {"c", "prior_strength", "floor"}  # UCB1 searches its trust in the model prior
    assert space.params("thompson").keys() == {"prior_strength", "floor"}
    assert space.params("lints").keys() == {"scale", "ridge", "floor"}  # noise scale and the linear prior's strength
    for point in space.grid(ALL_POLICIES):  # every point is a real policy field with a valid value
        policy = point["policy"]
        assert make_policy(policy, **point[policy]).name == POLICIES[policy].name
