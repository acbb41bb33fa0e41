"""The online objective: a policy's cumulative regret in the simulated shop, over several seeds.

Each seed replays the policy with ``recsys.replay.run_replay`` on a fresh copy of the saved world.
The seeds fix the shoppers, candidates, injected products and click draws independently of the
policy (common random numbers), so every trial of a sweep faces the same traffic and differences
between trials are the policies', not the dice's. The world has latent interests, satiation and
products injected mid-run, so over-exploitation costs regret there.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recsys.policies import Arm
from tuning.objective import Objective, ObjectiveInputError, mean_interval

CURVE_POINTS = 50
"""Points of the regret-over-time curve a trial reports."""


@functools.lru_cache(maxsize=2)
def model_observers(model_dir: str):
    """``recsys.model_observer.ModelObservers`` of ``model_dir``, loaded once per process: Tune reuses a
    trial's actor for the next trial, which then skips loading the model and embedding the catalog."""
    from recsys.model_observer import ModelObservers

    return ModelObservers(model_dir)


@dataclass
class OnlineConfig:
    """How the online objective replays each trial's policy in the simulator."""

    seeds: int = 3
    """Replays per trial; seed s draws the same traffic and clicks in every trial."""
    first_seed: int = 0
    """Seed of the first replay (the benchmark re-scores picks on unseen seeds with it)."""
    rounds: int = 100
    """Rounds per replay; the policy learns after each."""
    batch: int = 20
    """Shopper visits per round."""
    k: int = 10
    """Slate size."""
    candidates: int = 100
    """Random candidate products per visit."""
    inject: int = 50
    """Products injected a third of the way in (cold start); 0 injects none."""
    n_draws: int = 10
    """Monte-Carlo draws of sampling policies' propensities (regret does not read them)."""

    def __post_init__(self) -> None:
        for name in ("seeds", "rounds", "batch", "k", "candidates", "n_draws"):
            if getattr(self, name) < 1:
                raise ObjectiveInputError(f"--online.{name.replace('_', '-')}={getattr(self, name)}: must be >= 1")
        if self.k > self.candidates:
            raise ObjectiveInputError(f"--online.k={self.k} exceeds --online.candidates={self.candidates}")
        if self.inject < 0:
            raise ObjectiveInputError(f"--online.inject={self.inject}: must be >= 0")


@dataclass
class SimulatorObjective(Objective):
    """Mean cumulative regret (against the world's oracle) of a replay over seeds; lower is better."""

    world: Path
    """``serendip simulate`` output folder, or its world/ subfolder."""
    model: Path | None = None
    """Trained model: policies then rank by its scores and prior (else the world's own text-model prior)."""
    cfg: OnlineConfig = field(default_factory=OnlineConfig)
    """Replay settings."""

    metric = "regret"
    mode = "min"
    reward_label = "expected clicks per visit (simulator)"

    @property
    def world_dir(self) -> Path:
        """The folder World.load reads."""
        world = Path(self.world)
        return world / "world" if (world / "world").is_dir() else world

    def describe(self) -> str:
        """What the sweep optimizes."""
        scorer = f"model {self.model}" if self.model else "the world's text-model prior"
        c = self.cfg
        return (f"online: cumulative regret in {self.world_dir} over {c.seeds} seeds x {c.rounds} rounds x "
                f"{c.batch} visits, k={c.k} of {c.candidates}, {c.inject} products injected; scores from {scorer}")

    def check(self, policies: tuple[str, ...] = ()) -> None:
        """Load the world (and the model) once, so that a bad folder fails before any trial."""
        from recsys.simulator import World

        if not self.world_dir.is_dir():
            raise ObjectiveInputError(f"--world {self.world}: no such folder; write one with `serendip simulate --out DIR`")
        try:
            world = World.load(self.world_dir)
        except Exception as err:  # any load failure is the same user error: a bad --world
            raise ObjectiveInputError(
                f"--world {self.world_dir} does not load as a simulated world ({type(err).__name__}: {err}); "
                "pass the folder `serendip simulate --out DIR` wrote (or its world/ subfolder)"
            ) from err
        if self.cfg.candidates > world.n_items:
            raise ObjectiveInputError(f"--online.candidates={self.cfg.candidates} exceeds the world's {world.n_items} items")
        if self.cfg.batch > world.n_users:
            raise ObjectiveInputError(f"--online.batch={self.cfg.batch} exceeds the world's {world.n_users} users")
        if self.model is not None:
            from tuning.offline_objective import check_model

            check_model(self.model)

    def replay(self, arm: Arm, seed: int):
        """One replay of ``arm`` on a fresh copy of the world: a ``recsys.replay.ReplayResult``."""
        from recsys.policies import POLICIES, make_policy
        from recsys.replay import run_replay, world_model
        from recsys.simulator import World

        world = World.load(self.world_dir)
        fields = {f for f in POLICIES[arm.policy].__dataclass_fields__}
        extra = {"n_draws": self.cfg.n_draws} if "n_draws" in fields and "n_draws" not in arm.params else {}
        policy = make_policy(arm.policy, **arm.params, **extra)
        observe = world_model if self.model is None else self._observer(world)
        c = self.cfg
        return run_replay(world, policy, c.rounds, c.batch, seed, k=c.k, n_candidates=c.candidates,
                          inject_n=c.inject, observe=observe)

    def _observer(self, world):
        """The model-backed observer for one replay (the model and catalog vectors cached in this process)."""
        return model_observers(str(Path(self.model).resolve()))(world)

    def evaluate(self, arm: Arm) -> dict:
        """Replay the arm on every seed: mean regret and reward with 95% t-intervals, and the regret curve."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1):  # one trial per CPU: no BLAS threads fighting over it
            results = [self.replay(arm, self.cfg.first_seed + s) for s in range(self.cfg.seeds)]
        visits = self.cfg.rounds * self.cfg.batch
        regret, regret_low, regret_high = mean_interval([r.cumulative_regret for r in results])
        reward, reward_low, reward_high = mean_interval([r.expected_clicks.sum() / visits for r in results])
        curves = np.stack([np.cumsum(r.regret) for r in results])
        at = np.unique(np.linspace(0, self.cfg.rounds - 1, min(CURVE_POINTS, self.cfg.rounds)).round().astype(int))
        return {
            "regret": regret, "regret_low": regret_low, "regret_high": regret_high,
            "reward": reward, "reward_low": reward_low, "reward_high": reward_high,
            "cold_ctr": float(np.nanmean([r.cold_ctr for r in results])) if self.cfg.inject else float("nan"),
            "explored_share": float(np.mean([r.explored_share for r in results])),
            "curve_rounds": (at + 1).tolist(), "regret_curve": curves[:, at].mean(0).tolist(),
            "regret_curve_low": curves[:, at].min(0).tolist(), "regret_curve_high": curves[:, at].max(0).tolist(),
        }
