"""The four ways a sweep picks its next trial: Optuna TPE (default), HyperOpt TPE, random, grid.

Optuna (Akiba et al. 2019) and HyperOpt (Bergstra et al. 2013) both implement the Tree-structured
Parzen Estimator (Bergstra et al. 2011); random and grid come from Tune's BasicVariantGenerator.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from ray.tune.search import BasicVariantGenerator, Searcher
from ray.tune.utils import flatten_dict

from tuning.space import SearchSpaceError

SearchKind = Literal["optuna", "hyperopt", "random", "grid"]


@dataclass
class SearchPlan:
    """What a Tuner needs from the search: the searcher, the param_space and the trial count."""

    searcher: Searcher | BasicVariantGenerator
    """Tune search algorithm."""
    param_space: dict
    """Tuner param_space ({} when the searcher defines the space itself)."""
    num_samples: int
    """Number of trials Tune runs."""
    notes: list[str] = field(default_factory=list)
    """What the report must say about this search (e.g. seed points it could not use)."""


def startup_trials(trials: int, requested: int = 0) -> int:
    """Random trials TPE runs before modelling: ``requested``, or a quarter of the budget (1..10)."""
    return requested if requested > 0 else max(1, min(10, trials // 4))


def plan_search(
    kind: SearchKind,
    *,
    metric: str,
    mode: str,
    trials: int,
    space: dict,
    grid: list[dict],
    points: list[dict] | None = None,
    optuna_space: Callable | None = None,
    seed: int = 0,
    n_startup: int = 0,
    n_fixed: int = 0,
) -> SearchPlan:
    """Build the search of a sweep.

    ``space`` is the Tune domain dict (random, HyperOpt, and Optuna without ``optuna_space``);
    ``grid`` the exhaustive list of configs (grid search runs all of them); ``points`` configs to
    evaluate first (e.g. each policy's defaults). ``optuna_space`` is a define-by-run function,
    which lets a conditional space (a policy's parameters only when it is chosen) reach TPE;
    ``n_fixed`` counts trials it fixes itself besides ``points`` (baselines).
    """
    points = list(points or [])
    if kind == "grid":
        if len(grid) > trials:
            raise SearchSpaceError(
                f"grid search has {len(grid)} points but --trials is {trials}; "
                f"raise --trials to {len(grid)} or search fewer parameters / lower their grid counts"
            )
        # The points override the domains of ``space``, which must hold every key they set.
        return SearchPlan(BasicVariantGenerator(points_to_evaluate=grid), space, len(grid))
    fixed = len(points) + n_fixed
    if fixed and fixed >= trials:
        raise SearchSpaceError(
            f"{fixed} seed trials (baselines and policy defaults) use up all --trials {trials}; "
            f"raise --trials above {fixed} or pass --no-seed-defaults"
        )
    startup = startup_trials(trials, n_startup)
    if kind == "optuna":
        import optuna
        from ray.tune.search.optuna import OptunaSearch

        # The exploration space is conditional (a policy's parameters exist only when it is drawn):
        # multivariate TPE with group=True models each policy's parameters jointly instead of each
        # alone, and constant_liar keeps the trials that run at once from proposing the same point.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=startup, multivariate=True, group=True,
                                                 constant_liar=True)
        # Optuna enqueues points by flat parameter name ("policy/param"), as define-by-run names them.
        flat = [flatten_dict(p, delimiter="/") for p in points]
        searcher = OptunaSearch(space=optuna_space, metric=metric, mode=mode,
                                points_to_evaluate=flat or None, sampler=sampler)
        return SearchPlan(searcher, {} if optuna_space else space, trials)
    if kind == "hyperopt":
        from ray.tune.search.hyperopt import HyperOptSearch

        # Ray's HyperOptSearch with hyperopt 0.3 fails (KeyError in tpe.suggest) once seeded points
        # are in its history, so HyperOpt starts from its own random trials instead.
        searcher = HyperOptSearch(metric=metric, mode=mode, n_initial_points=startup, random_state_seed=seed)
        notes = ["HyperOpt does not evaluate the seed points (policy defaults) first"] if points else []
        return SearchPlan(searcher, space, trials, notes)
    if kind == "random":
        return SearchPlan(BasicVariantGenerator(points_to_evaluate=points or None, random_state=seed), space, trials)
    raise SearchSpaceError(f"--search {kind!r}: choose optuna, hyperopt, random or grid")

