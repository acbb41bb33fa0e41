"""``serendip tune hparams``: search the training hyperparameters with Ray Tune, ASHA and TPE.

A Train V2 ``TorchTrainer`` (Ray 2.60's default) is not a Tune trainable: handing a Trainer to a
``Tuner`` is the deprecated V1 integration. So each trial is a Tune function that builds and
``.fit()``s one, named after the trial id (a resumed trial resumes its Train run from the latest
checkpoint), and forwards every epoch's metrics with ``TuneReportCallback``. The trial itself holds
only the custom ``TRAIN_DRIVER`` resource; its Train workers hold the CPUs. The best trial's best
checkpoint is exported as a normal model directory.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from ray import tune
from ray.tune.integration.ray_train import TuneReportCallback
from ray.tune.schedulers import ASHAScheduler

from training.config import TrainConfig
from training.prepare import Prepared, prepare
from training.trainer import build_trainer, check_cluster
from tuning import ray_cluster
from tuning.hparams_report import HparamOutcome, write_outputs
from tuning.progress import TrialLines
from tuning.searchers import SearchKind, plan_search
from tuning.space import HparamSpace, SearchSpaceError
from tuning.trials import (
    SweepInterrupted,
    check_experiment_dir,
    fit_tuner,
)
from tuning.usage import Concurrency

METRIC = "val_ndcg10"
"""What every trial reports per epoch and the sweep maximizes."""


@dataclass
class HparamSweepConfig:
    """Search learning rate, batch size, epochs, warm-up, weight decay, temperature, history and negatives."""

    data: Path
    """Shop folder with items and events tables (as for ``serendip train``)."""
    out: Path
    """Output folder: model/ (the best trial's model), report.md, plots/, best.json, trials.csv, tune/ (Tune and Train runs)."""
    trials: int = 8
    """Trials in the sweep (grid search runs its whole grid and needs at least that many)."""
    search: SearchKind = "optuna"
    """Search algorithm: optuna (TPE, default), hyperopt (TPE), random, or grid."""
    scheduler: Literal["asha", "none"] = "asha"
    """ASHA stops poor trials after an epoch or two (Li et al. 2020); none runs every trial to the end."""
    workers_per_trial: int = 1
    """Ray Train workers of each trial."""
    cpus_per_worker: float = 1.0
    """CPUs each Train worker reserves; trials run at once = cluster CPUs / (workers x this)."""
    max_concurrent_trials: int = 0
    """Cap on trials run at once (0 = as many as the CPUs fit); a lower cap leaves CPUs free for data reads."""
    seed_base: bool = True
    """Evaluate the base training config (moved into the space) as the first trial."""
    startup_trials: int = 0
    """Random trials before TPE models the space (0 = a quarter of --trials, 1..10)."""
    space: HparamSpace = field(default_factory=HparamSpace)
    """Ranges of the searched hyperparameters."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Base training config: every field the space does not search (base model, dim, ...)."""
    address: str | None = None
    """Ray cluster address (None = start a local loopback-only Ray)."""
    name: str = "hparams"
    """Tune experiment name under OUT/tune."""
    resume: bool = False
    """Continue an interrupted sweep in OUT/tune/NAME (Tuner.restore)."""
    seed: int = 0
    """Seed of the search algorithm."""

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        if self.trials < 1:
            raise SearchSpaceError(f"--trials={self.trials}: must be >= 1")
        if self.workers_per_trial < 1:
            raise SearchSpaceError(f"--workers-per-trial={self.workers_per_trial}: must be >= 1")
        if self.max_concurrent_trials < 0:
            raise SearchSpaceError(f"--max-concurrent-trials={self.max_concurrent_trials}: must be >= 0 (0 = as many as fit)")
        unknown = [n for n in self.space.search if n not in {f.name for f in dataclasses.fields(TrainConfig)}]
        if unknown:
            raise SearchSpaceError(f"--space.search: {unknown} are not TrainConfig fields; rename them")
        self.train = dataclasses.replace(
            self.train, data=self.data, out=self.out / "model", workers=self.workers_per_trial,
            cpus_per_worker=self.cpus_per_worker, storage_path=str(self.train_storage), name="sweep",
        )

    @property
    def experiment_dir(self) -> Path:
        """Where Tune keeps this sweep's state (restorable with --resume)."""
        return (self.out / "tune" / self.name).resolve()

    @property
    def train_storage(self) -> Path:
        """Where the trials' Train runs keep their checkpoints (one run per trial id)."""
        return (self.out / "tune" / f"{self.name}-train").resolve()

    @property
    def max_epochs(self) -> int:
        """The most epochs any trial may run (ASHA's max_t)."""
        if "epochs" in self.space.search:
            p = self.space.epochs
            return int(max(p.choices) if p.choices else p.high)
        return self.train.epochs


def hparam_trial(config: dict, base: dict, prepared: Prepared, storage: str) -> None:
    """Tune function trainable: fit one TorchTrainer with the sampled hyperparameters.

    The Train run is named after the trial id, so a restored trial resumes its checkpoints.
    """
    cfg = TrainConfig.from_dict({**base, **config})
    trial_id = tune.get_context().get_trial_id()
    trainer = build_trainer(cfg, callbacks=[TuneReportCallback()], name=f"trial-{trial_id}",
                            storage_path=storage, prepared=prepared)
    result = trainer.fit()
    if result.error:
        raise result.error


def check_inputs(cfg: HparamSweepConfig) -> Prepared:
    """Every input problem before a trial starts: base model and data (before Ray starts), then the fit
    of a trial's workers on the cluster."""
    from recsys.model import check_base

    check_base(cfg.train.base)
    prepared = prepare(cfg.train)
    ray_cluster.connect(cfg.address)
    check_cluster(cfg.train)
    return prepared


def build_tuner(cfg: HparamSweepConfig, prepared: Prepared, callbacks=()) -> tuple[tune.Tuner, int, list[str]]:
    """A new Tuner for the sweep, or the restored one with --resume; the trial count; notes for the report."""
    base = cfg.train.to_dict()
    storage = str(cfg.train_storage)
    trainable = tune.with_resources(
        tune.with_parameters(hparam_trial, base=base, prepared=prepared, storage=storage),
        ray_cluster.trial_driver_resources(),
    )
    exp_dir = cfg.experiment_dir
    points = [cfg.space.clip(base)] if cfg.seed_base else None
    plan = plan_search(cfg.search, metric=METRIC, mode="max", trials=cfg.trials, space=cfg.space.tune_space(),
                       grid=cfg.space.grid(), points=points, seed=cfg.seed, n_startup=cfg.startup_trials)
    if cfg.resume:
        tuner = tune.Tuner.restore(str(exp_dir), trainable=trainable, resume_unfinished=True)
        return tuner, plan.num_samples, ["resumed with Tuner.restore"]
    scheduler = None
    if cfg.scheduler == "asha":
        scheduler = ASHAScheduler(time_attr="training_iteration", max_t=cfg.max_epochs, grace_period=1,
                                  reduction_factor=2)
    slots = ray_cluster.concurrent_slots(cfg.workers_per_trial * cfg.cpus_per_worker)
    slots = min(slots, cfg.max_concurrent_trials) if cfg.max_concurrent_trials else slots
    tuner = tune.Tuner(
        trainable,
        param_space=plan.param_space,
        tune_config=tune.TuneConfig(metric=METRIC, mode="max", search_alg=plan.searcher, scheduler=scheduler,
                                    num_samples=plan.num_samples, max_concurrent_trials=slots),
        run_config=tune.RunConfig(name=cfg.name, storage_path=str(exp_dir.parent), callbacks=list(callbacks),
                                  failure_config=tune.FailureConfig(max_failures=0)),
    )
    return tuner, plan.num_samples, plan.notes


def run_hparam_sweep(cfg: HparamSweepConfig, callbacks=()) -> HparamOutcome:
    """Check the inputs, run the sweep, export the best model, and write report.md."""
    check_experiment_dir(cfg.experiment_dir, cfg.resume)
    prepared = check_inputs(cfg)
    concurrency = Concurrency()
    tuner, expected, notes = build_tuner(cfg, prepared, [concurrency, TrialLines(METRIC), *callbacks])
    records, seconds, usage = fit_tuner(tuner, concurrency, expected, cfg.experiment_dir, METRIC,
                                        "training.train_loop must report it every epoch")
    return write_outputs(cfg, records, seconds, usage, notes)


def tune_hparams(cfg: HparamSweepConfig) -> int:
    """CLI entry: run the sweep and print where the best model and the report are."""
    print(f"[tune] config: {json.dumps(dataclasses.asdict(cfg), default=str)}", flush=True)
    try:
        outcome = run_hparam_sweep(cfg)
    except SweepInterrupted as err:
        print(f"[tune] {err}")
        return 130
    print(f"[tune] report: {outcome.report}")
    print(f"[tune] best model: {outcome.model_dir}  (serve it: serendip serve --model {outcome.model_dir})")
    print(json.dumps({"model_dir": str(outcome.model_dir), METRIC: outcome.best_value,
                      "params": outcome.best_params, "seconds": round(outcome.seconds, 1)},
                     default=str))
    return 0
