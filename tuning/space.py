"""Search spaces of the two sweeps: training hyperparameters and exploration parameters.

A space is a typed dataclass of :class:`Param` ranges with documented defaults. It maps onto Ray
Tune's domains (``tune.loguniform``, ``tune.choice``, ...) for random, Optuna and HyperOpt search,
and onto an explicit list of points for grid search. An empty space is refused here, before any
trial starts.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, fields

import numpy as np
from ray import tune

from recsys.policies import Arm


class SearchSpaceError(ValueError):
    """A search space that cannot be searched: empty, inconsistent or too large."""


@dataclass(frozen=True)
class Param:
    """One searchable value: a (log-)uniform range, an integer range, or a list of choices."""

    low: float = 0.0
    """Lower end of the range (ignored when ``choices`` is set)."""
    high: float = 0.0
    """Upper end of the range, inclusive for integers (ignored when ``choices`` is set)."""
    log: bool = False
    """Sample on a log scale (``tune.loguniform`` / ``tune.lograndint``); needs ``low > 0``."""
    integer: bool = False
    """Sample whole numbers (``tune.randint`` / ``tune.lograndint``)."""
    choices: tuple[float, ...] = ()
    """Explicit values (``tune.choice``); when set, the range fields are ignored."""
    grid: int = 3
    """Number of points this parameter contributes to a grid search."""

    def __post_init__(self) -> None:
        if self.grid < 1:
            raise SearchSpaceError(f"Param.grid={self.grid}: a grid needs at least 1 point; set grid >= 1")
        if self.choices:
            return
        if not (math.isfinite(self.low) and math.isfinite(self.high)) or self.low > self.high:
            raise SearchSpaceError(
                f"Param(low={self.low}, high={self.high}): need finite low <= high; swap or fix the bounds"
            )
        if self.log and self.low <= 0:
            raise SearchSpaceError(
                f"Param(low={self.low}, log=True): a log scale needs low > 0; raise low or set log=False"
            )

    def domain(self):
        """The Ray Tune domain this parameter samples from."""
        if self.choices:
            return tune.choice(list(self.choices))
        if self.low == self.high:
            return int(self.low) if self.integer else float(self.low)
        if self.integer:
            low, high = int(self.low), int(self.high) + 1  # randint's upper bound is exclusive
            return tune.lograndint(low, high) if self.log else tune.randint(low, high)
        return tune.loguniform(self.low, self.high) if self.log else tune.uniform(self.low, self.high)

    def grid_points(self) -> list[float]:
        """``grid`` evenly spaced values (geometric when ``log``), or all the choices."""
        if self.choices:
            return list(self.choices)
        if self.low == self.high or self.grid == 1:
            points = [math.sqrt(self.low * self.high) if self.log else (self.low + self.high) / 2]
        elif self.log:
            points = np.geomspace(self.low, self.high, self.grid).tolist()
        else:
            points = np.linspace(self.low, self.high, self.grid).tolist()
        if self.integer:
            return sorted({int(round(p)) for p in points})
        return [float(p) for p in points]

    def suggest(self, trial, name: str):
        """Draw this parameter from an Optuna trial (define-by-run search)."""
        if self.choices:
            return trial.suggest_categorical(name, list(self.choices))
        if self.low == self.high:
            return int(self.low) if self.integer else float(self.low)
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, self.low, self.high, log=self.log)


def _searched(space, names: tuple[str, ...], where: str) -> dict[str, Param]:
    """The Params of ``space`` named in ``names``; unknown names raise, naming the valid ones."""
    params = {f.name: getattr(space, f.name) for f in fields(space) if isinstance(getattr(space, f.name), Param)}
    unknown = [n for n in names if n not in params]
    if unknown:
        raise SearchSpaceError(
            f"{where}: unknown parameter(s) {unknown}; choose from {sorted(params)}"
        )
    return {n: params[n] for n in names}


@dataclass
class HparamSpace:
    """The training hyperparameters a sweep searches; names match ``training.TrainConfig`` fields."""

    search: tuple[str, ...] = ("lr", "batch_size", "epochs", "warmup", "weight_decay", "temperature", "history_len", "neg_ratio")
    """Parameters to search; every other TrainConfig field keeps the value of the sweep's base config."""
    lr: Param = Param(3e-4, 1e-2, log=True)
    """Learning rate of the towers (TrainConfig default 2e-3)."""
    bert_lr: Param = Param(1e-5, 2e-4, log=True)
    """Learning rate of the fine-tuned BERT layers (default 5e-5)."""
    batch_size: Param = Param(choices=(64, 128, 256))
    """Interactions per step and worker; the in-batch negatives (default 256)."""
    epochs: Param = Param(1, 3, integer=True)
    """Passes over the training split; ASHA may stop a trial sooner (default 5)."""
    max_steps: Param = Param(50, 500, log=True, integer=True)
    """Cap on optimizer steps (search it instead of ``epochs`` for a step budget)."""
    warmup: Param = Param(0.0, 0.2)
    """Share of steps spent warming the learning rate up (default 0.05)."""
    weight_decay: Param = Param(1e-4, 1e-1, log=True)
    """AdamW weight decay (default 0.01)."""
    temperature: Param = Param(0.02, 0.2, log=True)
    """Score temperature: score = user . item / temperature (default 0.05)."""
    history_len: Param = Param(choices=(10, 20, 50))
    """Most recent history items the user tower reads (default 50)."""
    neg_ratio: Param = Param(1, 8, integer=True)
    """BCE negatives per positive when no impression log has real non-clicks (default 4)."""
    pos_weight: Param = Param(1.0, 20.0, log=True)
    """BCE weight of a click against a non-click (default 1; alternative to ``neg_ratio``)."""

    def __post_init__(self) -> None:
        self.search = tuple(self.search)
        if not self.search:
            raise SearchSpaceError(
                "hparam space is empty: HparamSpace.search names no parameter; "
                "name at least one, e.g. --space.search lr temperature"
            )
        _searched(self, self.search, "HparamSpace.search")

    def params(self) -> dict[str, Param]:
        """The searched parameters by name."""
        return _searched(self, self.search, "HparamSpace.search")

    def tune_space(self) -> dict:
        """The Ray Tune param_space (domains keyed by TrainConfig field)."""
        return {name: p.domain() for name, p in self.params().items()}

    def clip(self, values: dict) -> dict:
        """``values`` of the searched parameters, moved into their ranges (to seed the base config)."""
        return clip_into(self.params(), values)

    def grid(self) -> list[dict]:
        """Every point of the exhaustive grid over the searched parameters."""
        params = self.params()
        combos = itertools.product(*(p.grid_points() for p in params.values()))
        return [dict(zip(params, combo, strict=True)) for combo in combos]


EXPLORATION_PARAMS: dict[str, tuple[str, ...]] = {
    "static": (),
    "greedy": (),
    "epsilon_greedy": ("epsilon", "floor"),
    "softmax": ("temperature", "floor"),
    "ucb1": ("c", "prior_strength", "floor"),
    "thompson": ("prior_strength", "floor"),
    "linucb": ("alpha", "ridge", "floor"),
    "lints": ("scale", "ridge", "floor"),
}
"""Each policy's exploration parameters (its ``recsys.policies`` field names), the plotted one first.

The two baselines have none; a sweep runs each once at its defaults: ``static`` ranks by the model
alone and never learns (what learning adds), ``greedy`` learns and exploits without exploring (the
reference every exploring policy must beat).
"""

BASELINES: tuple[str, ...] = tuple(p for p, params in EXPLORATION_PARAMS.items() if not params)
"""The parameter-free policies: static, greedy."""

ALL_POLICIES: tuple[str, ...] = tuple(EXPLORATION_PARAMS)
"""Every policy an exploration sweep can compare, the two baselines first."""


@dataclass
class ExplorationSpace:
    """Exploration parameters and their ranges; each policy samples only its own (EXPLORATION_PARAMS).

    A name shared by two policies (``prior_strength``, ``ridge``, ``floor``) has one range for both.
    Seed trials start each policy at its own defaults, moved into the range where they lie outside.
    """

    search: tuple[str, ...] = ("epsilon", "temperature", "c", "alpha", "prior_strength", "scale", "ridge", "floor")
    """Parameters to search; the others keep each policy's own default."""
    epsilon: Param = Param(0.01, 0.5, log=True, grid=4)
    """epsilon_greedy: share of slots filled at random (policy default 0.1)."""
    temperature: Param = Param(0.02, 1.0, log=True, grid=4)
    """softmax: temperature over the log-odds of the learned click estimate (policy default 1.0). A page's
    log-odds spread by a few tenths (a std of 0.29 under the quick demo's model, 0.47 under the full
    demo's), so 0.02 is near-greedy and 1 near-uniform."""
    c: Param = Param(0.005, 2.0, log=True, grid=4)
    """ucb1: scale of the confidence bonus (policy default 1.0)."""
    alpha: Param = Param(0.01, 2.0, log=True, grid=4)
    """linucb: width of the confidence bonus (policy default 1.0)."""
    prior_strength: Param = Param(0.5, 100.0, log=True, grid=4)
    """thompson, ucb1: pseudo-views the model prior is worth, i.e. trust in it (defaults 10; ucb1 0 = none, seeded at 0.5)."""
    scale: Param = Param(0.01, 2.0, log=True, grid=4)
    """lints: posterior noise scale v (policy default 0.5)."""
    ridge: Param = Param(0.1, 10.0, log=True, grid=2)
    """linucb and lints: prior precision of the linear weights, the linear prior's strength (default 1.0)."""
    floor: Param = Param(1e-4, 1e-2, log=True, grid=2)
    """Every exploring policy: uniform-mixing propensity floor (policy default 1e-3)."""

    def __post_init__(self) -> None:
        self.search = tuple(self.search)
        _searched(self, self.search, "ExplorationSpace.search")

    def check(self, policies: tuple[str, ...]) -> None:
        """Refuse unknown policies and a space in which no given policy has a parameter to search."""
        unknown = [p for p in policies if p not in EXPLORATION_PARAMS]
        if unknown:
            raise SearchSpaceError(f"policies: unknown policy {unknown}; choose from {list(ALL_POLICIES)}")
        if not policies:
            raise SearchSpaceError("exploration space is empty: no policy given; pass --policies, e.g. epsilon_greedy thompson")
        if not any(self.params(p) for p in policies):
            raise SearchSpaceError(
                f"exploration space is empty: policies {list(policies)} have no searched parameter "
                f"among {list(self.search)}; add a policy with one (e.g. epsilon_greedy) or widen --space.search"
            )

    def searchable(self, policies: tuple[str, ...]) -> tuple[str, ...]:
        """The policies with at least one searched parameter (the others are fixed baselines)."""
        return tuple(p for p in policies if self.params(p))

    def params(self, policy: str) -> dict[str, Param]:
        """The searched parameters of one policy, in the order of EXPLORATION_PARAMS."""
        names = tuple(n for n in EXPLORATION_PARAMS[policy] if n in self.search)
        return _searched(self, names, f"ExplorationSpace[{policy}]")

    def tune_space(self, policies: tuple[str, ...]) -> dict:
        """Nested Tune param_space: ``{"policy": choice, policy: {param: domain}}``."""
        space: dict = {"policy": tune.choice(list(policies))}
        for policy in policies:
            space[policy] = {name: p.domain() for name, p in self.params(policy).items()}
        return space

    def optuna_space(self, trial, policies: tuple[str, ...]) -> None:
        """Define-by-run space for Optuna: a policy's parameters are drawn only when it is chosen."""
        policy = trial.suggest_categorical("policy", list(policies))
        for name, p in self.params(policy).items():
            p.suggest(trial, f"{policy}/{name}")


    def grid(self, policies: tuple[str, ...]) -> list[dict]:
        """Every (policy, parameter) point of the exhaustive grid, as trial configs."""
        points = []
        for policy in policies:
            params = self.params(policy)
            for combo in itertools.product(*(p.grid_points() for p in params.values())):
                points.append({"policy": policy, policy: dict(zip(params, combo, strict=True))})
        return points

    def clip(self, policy: str, values: dict) -> dict:
        """``values`` of ``policy``'s searched parameters, moved into their ranges (for seeding)."""
        return clip_into(self.params(policy), values)


@dataclass
class OptunaExploration:
    """Optuna's define-by-run function of an exploration sweep, with its seed trials.

    Trials ``0 .. n_seeded-1`` are the enqueued seed points (policy defaults: TPE learns from them);
    the next ``len(baselines)`` trials run each baseline (a policy with nothing to search, e.g.
    greedy) once, as constants outside TPE's model; every later trial samples a searchable policy.
    Optuna numbers trials in the order they are asked, and enqueued ones are asked first.
    """

    space: ExplorationSpace
    """The parameter ranges."""
    searchable: tuple[str, ...]
    """Policies TPE chooses among."""
    n_seeded: int = 0
    """Enqueued seed trials that come first."""
    baselines: tuple[str, ...] = ()
    """Policies run exactly once, right after the seed trials."""

    def __call__(self, trial) -> dict | None:
        """Suggest this trial's parameters; return constants (a baseline's policy) when not sampled."""
        slot = trial.number - self.n_seeded
        if 0 <= slot < len(self.baselines):
            return {"policy": self.baselines[slot]}
        self.space.optuna_space(trial, self.searchable)
        return None


def trial_arm(config: dict) -> Arm:
    """The arm of a trial config (``{"policy": name, name: {param: value}}``), parameters in name order."""
    policy = config["policy"]
    return Arm(policy, dict(sorted((config.get(policy) or {}).items())))


def clip_into(params: dict[str, Param], values: dict) -> dict:
    """The named ``values`` moved into their Param: clipped to the range, or the nearest choice."""
    out = {}
    for name, p in params.items():
        if name not in values:
            continue
        v = values[name]
        if p.choices:
            out[name] = min(p.choices, key=lambda c: abs(c - v))
        else:
            clipped = min(max(v, p.low), p.high)
            out[name] = int(round(clipped)) if p.integer else float(clipped)
    return out

