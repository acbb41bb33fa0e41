"""How fast the embedded shop is made and written: 100k users x 50k items, about 5M events, target < 60 s.

It times the whole of ``serendip simulate`` (create the world, log its history, write
items.parquet, events.parquet and the world) and, in the same process, two references:
- the I/O floor: writing the same events columns straight to Parquet with pyarrow, unvalidated;
- the online environment: world.step on batches of 256 shoppers x 10 slots, and oracle slates.
Peak memory is reported too, since the dense 100k x 50k attraction matrix (5e9 floats) is never built.

    python benchmarks/bench_simulator.py            # the full-size claim
    python benchmarks/bench_simulator.py --quick    # a small smoke run

The last line printed is one JSON object (users, items, events, seconds, events_per_s, ...).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from recsys.cpu_time import cpu_snapshot, cpu_used
from recsys.data import write_table
from recsys.simulator import World, WorldConfig

TARGET_SECONDS = 60.0


def io_floor(events, path: Path) -> float:
    """Seconds to write the same events columns to Parquet with pyarrow directly (no casts, no checks)."""
    table = pa.Table.from_pandas(events, preserve_index=False)
    started = time.perf_counter()
    pq.write_table(table, path)
    return time.perf_counter() - started


def online_rates(world: World, batch: int = 256, k: int = 10, rounds: int = 5) -> dict[str, float]:
    """Steps per second and oracle slates per second on the made world (a copy of its state is not needed)."""
    rng = np.random.default_rng(0)
    users = [rng.integers(0, world.n_users, batch) for _ in range(rounds)]
    slates = [rng.integers(0, world.n_items, (batch, k)) for _ in range(rounds)]
    started = time.perf_counter()
    for u, s in zip(users, slates, strict=True):
        world.step(u, s, rng)
    step_s = (time.perf_counter() - started) / rounds
    started = time.perf_counter()
    world.oracle_slates(users[0], k)
    oracle_s = time.perf_counter() - started
    return {"step_batches_per_s": round(1 / step_s, 1), "step_batch": batch,
            "oracle_users_per_s": round(batch / oracle_s, 1)}


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--quick", action="store_true", help="a 5k x 2k smoke run")
    args = parser.parse_args(argv)
    if args.quick:
        args.users, args.items = 5_000, 2_000
    cfg = WorldConfig(users=args.users, items=args.items, days=args.days, seed=args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        t0 = time.perf_counter()
        world = World.create(cfg)
        t1 = time.perf_counter()
        events = world.generate_events()
        t2 = time.perf_counter()
        write_table(world.items, out / "items.parquet", "items")
        write_table(events, out / "events.parquet", "events")
        world.save(out / "world")
        t3 = time.perf_counter()
        floor = io_floor(events, out / "floor.parquet")
        size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file() and f.name != "floor.parquet") / 2**20
    seconds = t3 - t0
    result = {
        "users": cfg.users,
        "items": cfg.items,
        "events": len(events),
        "seconds": round(seconds, 2),
        "events_per_s": round(len(events) / seconds),
        "create_seconds": round(t1 - t0, 2),
        "log_seconds": round(t2 - t1, 2),
        "write_seconds": round(t3 - t2, 2),
        "write_floor_seconds": round(floor, 2),
        "target_seconds": TARGET_SECONDS,
        "seconds_over_target": round(seconds / TARGET_SECONDS, 3),
        "written_mb": round(size_mb, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "cpu_seconds": round(cpu_used({}, cpu_snapshot()), 2),  # since this process started
        **online_rates(world),
    }
    print(json.dumps(result))
    sys.stdout.flush()
    return result


if __name__ == "__main__":
    main()
