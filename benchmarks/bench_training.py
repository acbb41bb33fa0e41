"""What Ray Train costs: the same MiniLM fine-tuning, same data, same steps, under Ray Train
(1 worker) and in a plain single-process PyTorch loop; then with 2 workers; and how far it is from
the hardware limit (model FLOPs utilization against a matmul peak measured in this process).

Both runs execute the same ``training.loop.train_loop``: the plain one through a local session
(no Ray at all), the Ray one inside ``TorchTrainer``. Samples/s count training steps only (the
per-epoch validation and the one-off catalog encoding are excluded from both alike).

    python benchmarks/bench_training.py            # full: 200 steps of batch 64, top 2 layers fine-tuned
    python benchmarks/bench_training.py --quick    # smoke: 10 steps

The plain loop and the 1-worker Ray run alternate ``--repeats`` times (default 3), each plain run
with no Ray on the machine; the figures are medians (single pairs gave 0.80x to 1.01x on one quiet
day on the 2-core machine, so one pair decides nothing).

Last line: one JSON object with ray_samples_per_s, plain_samples_per_s, ratio (of the medians;
target >= 0.90), plain_runs and ray_runs (every repeat), ray2_samples_per_s (2 workers),
flops_per_sample, peak_gflops, mfu_plain and mfu_ray, and ray_background_cpu_share: the share of
the machine's CPU time Ray's other processes (GCS, raylet, dashboard, Train controller,
placement-group cleaner, preemption watcher, Ray Data actors) took during the 1-worker run, and
ray_background_top: the largest of those processes, each with its share. On 2 cores the worker's
two OpenMP threads wait at every barrier for whichever of them lost its core to those processes,
so the loss is larger than the share.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from collections import Counter
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# Ray starts its workers 15 nice levels below the driver; the plain loop runs in the driver. Equal
# priority keeps the comparison about Ray Train's own cost on a machine that also runs other work.
os.environ.setdefault("RAY_worker_niceness", "0")

import numpy as np  # noqa: E402
import ray  # noqa: E402
import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from recsys.data import write_table  # noqa: E402
from recsys.model import TwoTower  # noqa: E402
from recsys.simulator import World, WorldConfig  # noqa: E402
from training.batches import TextCache, batch_loss, make_batch  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.loop import train_loop  # noqa: E402
from training.prepare import prepare  # noqa: E402
from training.run_data import RunData  # noqa: E402
from training.session import LocalSession  # noqa: E402
from training.trainer import build_trainer, connect  # noqa: E402


def matmul_peak_gflops(threads: int, size: int = 2048, repeats: int = 10) -> float:
    """Best-of FLOP/s of a float32 square matmul on this machine with ``threads`` threads (GFLOP/s)."""
    torch.set_num_threads(threads)
    a, b = torch.randn(size, size), torch.randn(size, size)
    a @ b
    best = 0.0
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = max(best, 2 * size**3 / (time.perf_counter() - started))
    return best / 1e9


def flops_per_sample(cfg: TrainConfig, prepared_uri: str) -> float:
    """FLOPs of one training step (forward + backward) divided by its batch size, counted by torch."""
    data = RunData.load(prepared_uri)
    torch.manual_seed(cfg.seed)
    core = TwoTower.from_base(cfg.model_config(), item_ids=data.train_item_ids).train()
    cache = TextCache.build(core, data)
    examples = LocalSession(".", f"{prepared_uri}/examples.parquet").examples()
    frame = examples.sample(cfg.batch_size, random_state=cfg.seed)
    batch = make_batch(frame, data, cfg, np.random.default_rng(0), torch.device("cpu"))
    counter = FlopCounterMode(display=False)
    with counter:
        loss, _ = batch_loss(core, core, batch, cache, data, cfg, torch.autocast("cpu", enabled=False),
                             torch.Generator().manual_seed(0))
        loss.backward()
    return counter.get_total_flops() / len(batch)


def process_cpu_seconds() -> dict[int, tuple[str, float]]:
    """CPU seconds (user + system) of every process on this machine, by pid, with its command line.

    Read from /proc (Linux); {} elsewhere. The Ray run's diff of two snapshots shows how much of the
    machine Ray's own processes (GCS, raylet, dashboard, Train controller, Data actors) took while
    the worker trained: on a 2-core machine that is the main cost of Ray Train.
    """
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    found = {}
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        found[int(entry.name)] = (command, (int(fields[11]) + int(fields[12])) / tick)
    return found


def background_cpu(before: dict, after: dict) -> dict[str, float]:
    """CPU seconds that Ray processes other than the Train workers (and this driver) used between two
    snapshots, by process name (``ray::TrainController``, ``gcs_server``, ...; summed over pids).
    Every Ray process on the machine counts, so run the benchmark with no other Ray up."""
    def is_ray(command: str) -> bool:  # actors and idle workers ("ray::X"), or a binary/script under ray/
        return command.startswith("ray::") or "/ray/" in command

    def name(command: str) -> str:
        head = command.split()[0] if command.split() else "?"
        if head.startswith("ray::"):
            return head
        script = next((part for part in command.split()[1:] if part.endswith(".py")), head)
        return Path(script).name

    used: Counter[str] = Counter()
    for pid, (command, seconds) in after.items():
        if is_ray(command) and "RayTrainWorker" not in command and pid != os.getpid():
            used[name(command)] += seconds - before.get(pid, ("", 0.0))[1]
    return dict(used)


def steady_rate(history: list[dict]) -> float:
    """Training samples/s over all epochs (steps only)."""
    seconds = sum(m["train_seconds"] for m in history)
    samples = sum(m["samples_per_s"] * m["train_seconds"] for m in history)
    return samples / max(seconds, 1e-9)


def main(argv: list[str] | None = None) -> int:
    """Run plain, Ray 1-worker and Ray 2-worker trainings and print the JSON summary last."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--train-layers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=None,
                        help="plain/Ray 1-worker pairs, alternating; medians are reported (default 3, quick 1)")
    args = parser.parse_args(argv)
    steps = args.steps or (10 if args.quick else 200)
    args.repeats = args.repeats or (1 if args.quick else 3)
    cpus = os.cpu_count() or 1
    with tempfile.TemporaryDirectory(prefix="serendip-bench-train-") as tmp:
        work = Path(tmp)
        world = World.create(WorldConfig(users=400 if args.quick else 2000, items=200 if args.quick else 500,
                                         days=20, seed=0))
        write_table(world.items, work / "shop" / "items.parquet", "items")
        write_table(world.generate_events(), work / "shop" / "events.parquet", "events")
        common = dict(data=work / "shop", storage_path=str(work / "runs"), epochs=1, max_steps=steps,
                      batch_size=args.batch_size, train_layers=args.train_layers, eval_users=100, patience=0,
                      log_every=max(steps // 5, 1), warmup=0.0)
        plain_cfg = TrainConfig(out=work / "plain", name="plain", threads=cpus, **common)
        prepared = prepare(plain_cfg)
        loop_config = {**plain_cfg.to_dict(), "prepared": prepared.uri, "fingerprint": prepared.fingerprint}

        def ray_run(workers: int, tag: str) -> tuple[float, float, dict[str, float]]:
            """(samples/s, wall seconds, background CPU seconds by process) of one Ray Train run."""
            cfg = TrainConfig(out=work / tag, name=tag, workers=workers, cpus_per_worker=cpus / workers, **common)
            trainer = build_trainer(cfg)
            before, started = process_cpu_seconds(), time.perf_counter()
            result = trainer.fit()
            wall = time.perf_counter() - started
            if result.error:
                raise result.error
            return steady_rate(result.return_value["history"]), wall, background_cpu(before, process_cpu_seconds())

        # Plain and Ray runs alternate, each plain run with no Ray on the machine at all, so that a
        # slow spell of the machine hits both sides; the ratio is that of the medians.
        plain_rates, plain_walls, ray_rates, ray_walls, ray_used = [], [], [], [], []
        for r in range(args.repeats):
            started = time.perf_counter()
            plain = train_loop(loop_config, LocalSession(work / "runs" / f"plain{r}", prepared.path("examples.parquet")))
            plain_walls.append(time.perf_counter() - started)
            plain_rates.append(steady_rate(plain["history"]))
            connect()
            rate, wall, used = ray_run(1, f"ray1-{r}")
            ray_rates.append(rate)
            ray_walls.append(wall)
            ray_used.append(used)
            print(f"[bench] repeat {r}: plain {plain_rates[-1]:.1f} samples/s, ray {rate:.1f} samples/s", flush=True)
            if r < args.repeats - 1:
                ray.shutdown()
        rate2, wall2, used2 = ray_run(2, "ray2")
        median = int(np.argsort(ray_rates)[len(ray_rates) // 2])  # the median Ray run, for its CPU figures
        rates = {1: float(np.median(ray_rates)), 2: rate2}
        walls = {1: ray_walls[median], 2: wall2}
        shares = {1: sum(ray_used[median].values()) / (walls[1] * cpus), 2: sum(used2.values()) / (wall2 * cpus)}
        top = {k: round(v / (walls[1] * cpus), 4) for k, v in sorted(ray_used[median].items(), key=lambda kv: -kv[1])[:6]}
        plain_wall = float(np.median(plain_walls))

        peak = matmul_peak_gflops(cpus)
        per_sample = flops_per_sample(plain_cfg, prepared.uri)
    plain_rate = float(np.median(plain_rates))
    summary = {
        "ray_samples_per_s": round(rates[1], 2),
        "plain_samples_per_s": round(plain_rate, 2),
        "ratio": round(rates[1] / plain_rate, 3),
        "ray2_samples_per_s": round(rates[2], 2),
        "ray2_ratio": round(rates[2] / plain_rate, 3),
        "flops_per_sample": round(per_sample),
        "peak_gflops": round(peak, 1),
        "mfu_plain": round(per_sample * plain_rate / (peak * 1e9), 4),
        "mfu_ray": round(per_sample * rates[1] / (peak * 1e9), 4),
        # Share of the machine's CPU time that Ray's other processes used during each Ray run.
        "ray_background_cpu_share": round(shares[1], 4),
        "ray2_background_cpu_share": round(shares[2], 4),
        # The largest of those processes, each as its share of the machine during the 1-worker run.
        "ray_background_top": top,
        "plain_wall_s": round(plain_wall, 1),
        "ray_wall_s": round(walls[1], 1),
        "plain_runs": [round(x, 2) for x in plain_rates],
        "ray_runs": [round(x, 2) for x in ray_rates],
        "ray2_wall_s": round(walls[2], 1),
        "steps": steps,
        "batch_size": args.batch_size,
        "train_layers": args.train_layers,
        "cpus": cpus,
        "quick": args.quick,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
