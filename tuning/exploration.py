"""``serendip tune exploration``: search policies and their exploration rates with Ray Tune.

Each trial is a plain function trainable holding one CPU (so two run at once on two CPUs). It
builds one policy from ``recsys.policies`` and scores it with the objective: a simulator replay
over several seeds (``--world``) or an off-policy estimate on a logged impression file (``--log``).
At the end: ``report.md`` with the ranked table, failed trials, two plots, and the serving snippet.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path

from ray import tune

from tuning import ray_cluster
from tuning.exploration_report import ExplorationOutcome, write_outputs
from tuning.objective import Objective, ObjectiveInputError
from tuning.offline_objective import NEEDS_FEATURES, LogObjective, OfflineConfig
from tuning.online_objective import OnlineConfig, SimulatorObjective
from tuning.progress import TrialLines
from tuning.searchers import SearchKind, SearchPlan, plan_search
from tuning.space import ALL_POLICIES, ExplorationSpace, OptunaExploration, SearchSpaceError, trial_arm
from tuning.trials import (
    SweepInterrupted,
    check_experiment_dir,
    fit_tuner,
)
from tuning.usage import Concurrency


@dataclass
class ExplorationSweepConfig:
    """Search policies and exploration parameters, scored online (simulator) or offline (a log)."""

    out: Path
    """Output folder: report.md, plots/, serving.yaml, pick.json, trials.csv, and Tune's run in tune/."""
    world: Path | None = None
    """Simulated shop (``serendip simulate --out`` folder, or its world/ subfolder): online objective."""
    log: Path | None = None
    """Impression log (parquet/csv, impressions schema, with propensities): offline objective."""
    model: Path | None = None
    """Trained model directory; policies then rank by its scores (optional with --world)."""
    policies: tuple[str, ...] | None = None
    """Policies to compare (names in recsys.policies.POLICIES); default: all that apply (no linear ones on a --log)."""
    trials: int = 24
    """Trials in the sweep (grid search runs its whole grid and needs at least that many)."""
    search: SearchKind = "optuna"
    """Search algorithm: optuna (TPE, default), hyperopt (TPE), random, or grid."""
    seed_defaults: bool = True
    """Evaluate each policy at its own default parameters first (optuna, random)."""
    startup_trials: int = 0
    """Random trials before TPE models the space (0 = a quarter of --trials, 1..10)."""
    space: ExplorationSpace = field(default_factory=ExplorationSpace)
    """Ranges of the exploration parameters."""
    online: OnlineConfig = field(default_factory=OnlineConfig)
    """Simulator replay settings (--world)."""
    offline: OfflineConfig = field(default_factory=OfflineConfig)
    """Off-policy estimate settings (--log)."""
    cpus_per_trial: float = 1.0
    """CPUs each trial reserves; 1 runs two trials at once on a 2-CPU machine."""
    address: str | None = None
    """Ray cluster address (None = start a local loopback-only Ray)."""
    name: str = "exploration"
    """Tune experiment name under OUT/tune."""
    resume: bool = False
    """Continue an interrupted sweep in OUT/tune/NAME (Tuner.restore)."""
    seed: int = 0
    """Seed of the search algorithm."""

    def __post_init__(self) -> None:
        self.out = Path(self.out)
        if (self.world is None) == (self.log is None):
            raise ObjectiveInputError("pass exactly one of --world DIR (online objective) or --log FILE (offline objective)")
        if self.policies is None:
            self.policies = ALL_POLICIES if self.world is not None else tuple(p for p in ALL_POLICIES if p not in NEEDS_FEATURES)
        self.policies = tuple(self.policies)
        if self.trials < 1:
            raise SearchSpaceError(f"--trials={self.trials}: must be >= 1")
        if not self.cpus_per_trial > 0:
            raise SearchSpaceError(f"--cpus-per-trial={self.cpus_per_trial}: must be > 0")
        self.space.check(self.policies)

    @property
    def experiment_dir(self) -> Path:
        """Where Tune keeps this sweep's state (restorable with --resume)."""
        return (self.out / "tune" / self.name).resolve()

    def objective(self) -> Objective:
        """The objective this config asks for."""
        if self.world is not None:
            return SimulatorObjective(Path(self.world), self.model, self.online)
        return LogObjective(Path(self.log), self.model, self.offline)


def exploration_trial(config: dict, objective: Objective) -> None:
    """Tune function trainable: build the arm's policy, score it, report once."""
    tune.report(objective.evaluate(trial_arm(config)))


def seed_points(cfg: ExplorationSweepConfig) -> tuple[list[dict], list[dict]]:
    """(baselines, defaults): each policy without a searched parameter (e.g. greedy), run once; and,
    with ``seed_defaults``, each other policy at its own defaults (moved into the searched range)."""
    from recsys.policies import POLICIES

    baselines, defaults = [], []
    for policy in cfg.policies:
        params = {f.name: f.default for f in dataclasses.fields(POLICIES[policy]) if f.init}
        point = {"policy": policy, policy: cfg.space.clip(policy, params)}
        if not cfg.space.params(policy):
            baselines.append(point)
        elif cfg.seed_defaults:
            defaults.append(point)
    return baselines, defaults


def plan_exploration(cfg: ExplorationSweepConfig, objective: Objective) -> SearchPlan:
    """The search of an exploration sweep: baselines run once, the search samples the other policies.

    TPE would otherwise spend trials re-running a deterministic greedy that scores well. HyperOpt
    cannot take seed points (see searchers.py), so it samples every policy, baselines included.
    """
    baselines, defaults = seed_points(cfg)
    searchable = cfg.space.searchable(cfg.policies)
    common = {"metric": objective.metric, "mode": objective.mode, "trials": cfg.trials,
              "grid": cfg.space.grid(cfg.policies), "seed": cfg.seed, "n_startup": cfg.startup_trials}
    if cfg.search in ("hyperopt", "grid"):
        return plan_search(cfg.search, space=cfg.space.tune_space(cfg.policies), **common)
    if cfg.search == "optuna":
        define = OptunaExploration(cfg.space, searchable, len(defaults), tuple(b["policy"] for b in baselines))
        return plan_search("optuna", space={}, points=defaults, optuna_space=define,
                           n_fixed=len(baselines), **common)
    return plan_search(cfg.search, space=cfg.space.tune_space(searchable), points=baselines + defaults, **common)


def build_tuner(cfg: ExplorationSweepConfig, objective: Objective, callbacks=()) -> tuple[tune.Tuner, int, list[str]]:
    """A new Tuner for the sweep, or the restored one with --resume; the trial count; notes for the report."""
    trainable = tune.with_resources(tune.with_parameters(exploration_trial, objective=objective),
                                    {"cpu": cfg.cpus_per_trial})
    exp_dir = cfg.experiment_dir
    plan = plan_exploration(cfg, objective)
    if cfg.resume:
        tuner = tune.Tuner.restore(str(exp_dir), trainable=trainable, resume_unfinished=True)
        return tuner, plan.num_samples, ["resumed with Tuner.restore"]
    # reuse_actors: a new trial runs in a finished trial's actor; a fresh worker process per trial
    # left the CPUs idle for seconds between short trials.
    tuner = tune.Tuner(
        trainable,
        param_space=plan.param_space,
        tune_config=tune.TuneConfig(metric=objective.metric, mode=objective.mode, search_alg=plan.searcher,
                                    num_samples=plan.num_samples, reuse_actors=True,
                                    max_concurrent_trials=ray_cluster.concurrent_slots(cfg.cpus_per_trial)),
        run_config=tune.RunConfig(name=cfg.name, storage_path=str(exp_dir.parent), callbacks=list(callbacks),
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )
    return tuner, plan.num_samples, plan.notes


def run_exploration_sweep(cfg: ExplorationSweepConfig, callbacks=()) -> ExplorationOutcome:
    """Check the inputs, run the sweep on Ray Tune, and write report.md and its companions."""
    check_experiment_dir(cfg.experiment_dir, cfg.resume)
    objective = cfg.objective()
    objective.check(cfg.policies)
    ray_cluster.connect(cfg.address)
    concurrency = Concurrency()
    tuner, expected, notes = build_tuner(cfg, objective, [concurrency, TrialLines(objective.metric), *callbacks])
    records, seconds, usage = fit_tuner(tuner, concurrency, expected, cfg.experiment_dir, objective.metric,
                                        "the objective's evaluate() must return it")
    return write_outputs(cfg, objective, records, seconds, usage, notes)


def tune_exploration(cfg: ExplorationSweepConfig) -> int:
    """CLI entry: run the sweep, print the pick and where the report is; 0 on a pick, 2 without one,
    130 when interrupted (resume with --resume)."""
    try:
        outcome = run_exploration_sweep(cfg)
    except SweepInterrupted as err:
        print(f"[tune] {err}")
        return 130
    print(f"[tune] report: {outcome.report}")
    if outcome.pick is None:
        print(f"[tune] no pick: {outcome.no_pick_reason}")
        return 2
    print(f"[tune] pick: {outcome.pick.label()}  {outcome.metric}={outcome.pick_value:.5g}")
    print(json.dumps({"pick": outcome.pick.policy, "params": outcome.pick.params, outcome.metric: outcome.pick_value}))
    return 0
