"""Serving throughput and latency of the Serve graph in Serve's default and fast modes, against Serve's own
floor in the same mode and a cross-encoder server.

    python benchmarks/bench_serving.py            # 10k items, both modes (~10 min on 2 CPUs)
    python benchmarks/bench_serving.py --quick    # 1k items, short runs (smoke check)

One process tree. This process prepares the shop, the (cached) model and the request bodies, times
the int8 query encoder, then runs one child process per **mode**, each with a fresh local Ray (2 CPUs,
loopback HTTP) started after its environment is set, since Serve reads these at import:

- **default**: Serve's defaults (Python HTTP proxy; user code on a separate event loop thread);
- **fast**: ``RAY_SERVE_ENABLE_HA_PROXY=1`` + ``RAY_SERVE_THROUGHPUT_OPTIMIZED=1`` (HAProxy sends
  requests straight to the ingress replicas; user code runs on each replica's main event loop).
  HAProxy's files, stats and metrics ports are private to the run.

In each mode a child deploys, one after the other and under the same load:

- **serendip**: the real graph (ingress -> batched scorer -> bandit with WAL) with MiniLM-L6 on a
  simulated shop. The two-tower model is *untrained*: for throughput only the shapes matter;
- **floor**: the same three deployments, same batching and CPUs, doing no work (Serve's own cost);
- **crossenc** (default mode only): a seed-style server that scores every one of ``retrieve_n``
  candidates per request with a ``BertForSequenceClassification`` cross-encoder (MiniLM, untrained head).

Load comes from a SEPARATE process (``drive`` mode of this file: httpx async over loopback): closed
loops at each concurrency (bounded in requests and seconds; the peak is the best), then open loops at
fixed offered rates (25, 50, 100 rps; each request's latency counts from when it was due, so a
stalled server cannot hide its queue). CPU per request is the CPU seconds of the app's replica
processes (``ray::ServeReplica:...``) over the peak closed-loop run. In the fast mode the child lists
every listening socket of its process tree. Last line: one JSON object; the headline figures are
the fast mode's (``mode``), with the default mode's beside them.
"""

# No ``from __future__ import annotations``: FastAPI must see the request model on the methods below.
import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RATES = (25.0, 50.0, 100.0)
"""Offered open-loop rates (requests per second)."""


# ---- load generator (runs in its own process) -----------------------------------------------------
async def _drive(url: str, bodies: list[dict], concurrency: int, max_requests: int, max_seconds: float,
                 rate: float | None) -> dict:
    import httpx

    limits = httpx.Limits(max_connections=concurrency + 8, max_keepalive_connections=concurrency + 8)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as client:
        for body in bodies[: min(len(bodies), 2 * concurrency)]:  # warm-up, not counted
            await client.post("/recommend", json=body)
        latencies: list[float] = []
        errors = 0
        first_error: list[str] = []
        counter = iter(range(max_requests))
        start = time.perf_counter()
        deadline = start + max_seconds

        async def one(i: int, due: float | None = None) -> None:
            nonlocal errors
            t0 = time.perf_counter() if due is None else due  # open loop: from when it was due
            try:
                r = await client.post("/recommend", json=bodies[i % len(bodies)])
                ok = r.status_code == 200
                if not ok and not first_error:
                    first_error.append(f"{r.status_code}: {r.text[:200]}")
            except httpx.HTTPError as err:
                ok = False
                if not first_error:
                    first_error.append(repr(err))
            if ok:
                latencies.append(time.perf_counter() - t0)
            else:
                errors += 1

        async def closed_loop_worker() -> None:
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                await one(i)

        if rate is None:
            await asyncio.gather(*(closed_loop_worker() for _ in range(concurrency)))
        else:  # open loop: requests leave on a fixed schedule whatever the replies do
            tasks = []
            for i in range(max_requests):
                due = start + i / rate
                if due > deadline:
                    break
                await asyncio.sleep(max(0.0, due - time.perf_counter()))
                tasks.append(asyncio.create_task(one(i, due)))
            await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {
        "concurrency": concurrency, "rate": rate, "ok": len(latencies), "errors": errors, "seconds": elapsed,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
        "max_ms": float(ms.max()) if len(ms) else None,
        "first_error": first_error[0] if first_error else None,
    }


def drive_main(argv: list[str]) -> None:
    """``drive URL BODIES.json CONCURRENCY MAX_REQUESTS MAX_SECONDS [RATE]``: print one JSON result."""
    url, bodies_path, concurrency, max_requests, max_seconds, *rate = argv
    bodies = json.loads(Path(bodies_path).read_text())
    result = asyncio.run(_drive(url, bodies, int(concurrency), int(max_requests), float(max_seconds),
                                float(rate[0]) if rate else None))
    print(json.dumps(result))


def drive(url: str, bodies_path: Path, concurrency: int, max_requests: int, max_seconds: float,
          rate: float | None = None) -> dict:
    """Run the load generator in a separate process and return its result."""
    cmd = [sys.executable, __file__, "drive", url, str(bodies_path), str(concurrency), str(max_requests),
           str(max_seconds)] + ([str(rate)] if rate else [])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=max_seconds + 300, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- the shop, the model and the request bodies -------------------------------------------------------
def prepare(cache: Path, n_items: int, n_users: int, k: int) -> tuple[Path, Path, list[dict]]:
    """A simulated shop, an untrained MiniLM two-tower with its item table (cached), request bodies."""
    from recsys.model import TwoTower, TwoTowerConfig
    from recsys.simulator import World, WorldConfig

    world = World.create(WorldConfig(users=n_users, items=n_items, seed=0))
    items = world.items
    model_dir = cache / f"model-{n_items}"
    if not (model_dir / "item_table.safetensors").exists():
        t0 = time.perf_counter()
        model = TwoTower.from_base(TwoTowerConfig(id_embeddings=False)).eval()
        model.save_pretrained(model_dir, item_table=model.item_table(items, batch_size=128))
        print(f"embedded {n_items} items with MiniLM in {time.perf_counter() - t0:.0f} s", flush=True)
    users = np.arange(min(n_users, 1000))
    rows, events, mask = world.histories(users, 50)
    ids = world.item_ids
    from recsys.data.schemas import EVENT_TYPES

    bodies = []
    for u, r, e, m in zip(users, rows, events, mask, strict=True):
        bodies.append({"user_id": int(u), "history": [int(x) for x in ids[r[m]]],
                       "history_events": [EVENT_TYPES[int(x)] for x in e[m]], "k": k})
    return model_dir, cache, bodies


# ---- one mode (a child process with its own Ray) ---------------------------------------------------------
def free_port() -> int:
    """A TCP port free on loopback now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def replica_pids(app: str) -> list[int]:
    """The processes of ``app``'s Serve replicas (Ray titles them ``ray::ServeReplica:<app>:<deployment>``)."""
    import psutil  # Ray's bundled copy, on sys.path once ray is imported

    pids = []
    for proc in psutil.process_iter(["cmdline"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if cmd.startswith(f"ray::ServeReplica:{app}:"):
            pids.append(proc.pid)
    return pids


def listeners() -> list[dict]:
    """Every listening TCP socket of this process tree (Ray, HAProxy, the replicas): address, port, process."""
    import psutil

    tree = {os.getpid()} | {p.pid for p in psutil.Process().children(recursive=True)}
    rows = []
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in tree:
            try:
                proc = psutil.Process(conn.pid)
                name = " ".join(proc.cmdline()[:1]).split("/")[-1][:60]
            except psutil.NoSuchProcess:
                name = "?"
            rows.append({"address": conn.laddr.ip, "port": conn.laddr.port, "pid": conn.pid, "process": name})
    return sorted(rows, key=lambda r: (r["process"], r["port"]))


def measure(name: str, url: str, bodies: Path, app: str, levels: list[int], max_requests: int,
            max_seconds: float, rate_seconds: float) -> dict:
    """Closed-loop sweep (CPU per request of the app's replicas at each level), then the fixed open-loop rates."""
    from recsys.cpu_time import cpu_snapshot, cpu_used

    pids = replica_pids(app)
    closed = []
    for c in levels:
        before = cpu_snapshot(pids)
        r = drive(url, bodies, c, max_requests, max_seconds)
        r["cpu_ms_per_request"] = cpu_used(before, cpu_snapshot(pids)) * 1000 / max(1, r["ok"])
        print(f"{name:9s} c={c:3d} rps={r['rps']:7.1f} p50={r['p50_ms']:.1f}ms p99={r['p99_ms']:.1f}ms "
              f"cpu={r['cpu_ms_per_request']:.1f}ms/req errors={r['errors']}", flush=True)
        closed.append(r)
    rates = {}
    for rate in RATES:
        r = drive(url, bodies, 64, int(rate * rate_seconds), rate_seconds, rate=rate)
        print(f"{name:9s} {rate:5.0f}/s offered: {r['rps']:6.1f}/s p50={r['p50_ms']:.1f}ms p99={r['p99_ms']:.1f}ms "
              f"errors={r['errors']}", flush=True)
        rates[f"{rate:g}"] = r
    peak = max(closed, key=lambda r: r["rps"])
    return {"rps": peak["rps"], "p50_ms": peak["p50_ms"], "p99_ms": peak["p99_ms"],
            "peak_concurrency": peak["concurrency"], "cpu_ms_per_request": peak["cpu_ms_per_request"],
            "p50_ms_at_rate": {k: v["p50_ms"] for k, v in rates.items()},
            "p99_ms_at_rate": {k: v["p99_ms"] for k, v in rates.items()},
            "errors": sum(r["errors"] for r in closed) + sum(r["errors"] for r in rates.values()),
            "closed_loop": closed, "open_loop": rates, "replicas": len(pids)}


def run_mode(spec: dict) -> dict:
    """One mode in this (child) process: a fresh local Ray, then serendip, the floor and (default mode) crossenc."""
    import ray
    from ray import serve
    from serving_baselines import crossenc_app, floor_app  # this script's folder

    from serving.app import graph
    from serving.config import ServeConfig
    from training.local_ray import init_ray

    work, cpus, quick = Path(spec["work"]), spec["cpus"], spec["quick"]
    cfg = ServeConfig(model=Path(spec["model_dir"]), state_dir=work / f"state-{spec['mode']}", policy="thompson",
                      retrieve_n=spec["retrieve_n"], reward_window_s=60.0, ingress_num_cpus=cpus["ingress"],
                      scorer_num_cpus=cpus["scorer"], bandit_num_cpus=cpus["bandit"], app_name="bench")
    levels = [1, 8] if quick else [1, 4, 16]
    budget = dict(max_requests=150 if quick else 3000, max_seconds=6.0 if quick else 12.0,
                  rate_seconds=4.0 if quick else 12.0)
    bodies = work / "bodies.json"
    init_ray(state_dir=work, num_cpus=2, include_dashboard=False, log_to_driver=False)  # mode_env drops RAY_ADDRESS
    port = free_port()
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    url = f"http://127.0.0.1:{port}"
    out: dict = {"mode": spec["mode"]}
    try:
        t0 = time.perf_counter()
        serve.run(graph(cfg), name="bench", route_prefix="/")
        print(f"[{spec['mode']}] serendip deployed in {time.perf_counter() - t0:.0f} s", flush=True)
        if spec["mode"] == "fast":
            out["listeners"] = listeners()
        out["serendip"] = measure("serendip", url, bodies, "bench", levels, **budget)
        with urllib.request.urlopen(f"{url}/stats", timeout=30) as reply:  # what each stage cost (per replica)
            out["serendip"]["stages_ms"] = json.loads(reply.read())["stages_ms"]
        serve.delete("bench")
        serve.run(floor_app(cpus, cfg.max_batch_size, cfg.batch_wait_s), name="floor", route_prefix="/")
        out["floor"] = measure("floor", url, bodies, "floor", levels, **budget)
        serve.delete("floor")
        if spec["crossenc"]:
            serve.run(crossenc_app(spec["items_path"], spec["retrieve_n"], num_cpus=1.5), name="crossenc",
                      route_prefix="/")
            out["crossenc"] = sweep("crossenc", url, bodies, [1, 2], 6 if quick else 30, 20.0 if quick else 45.0)
            serve.delete("crossenc")
    finally:
        serve.shutdown()
        ray.shutdown()
    return out


def sweep(name: str, url: str, bodies: Path, levels: list[int], max_requests: int, max_seconds: float) -> list[dict]:
    """Closed-loop runs at each concurrency; prints one line per level."""
    results = []
    for c in levels:
        r = drive(url, bodies, c, max_requests, max_seconds)
        print(f"{name:9s} c={c:3d} rps={r['rps']:8.1f} p50={r['p50_ms']}ms p99={r['p99_ms']}ms errors={r['errors']}",
              flush=True)
        results.append(r)
    return results


def mode_env(mode: str) -> dict[str, str]:
    """The child's environment: the mode's switches set or removed before its Ray starts, HAProxy's files and
    stats/metrics ports private to the run (``serving.ingress_mode``, as ``serendip serve`` does)."""
    from serving import ingress_mode

    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_SERVE_HAPROXY_") and k != "RAY_ADDRESS"}
    env.update(HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false")  # the child's init_ray turns token auth on
    for name, value in ingress_mode.ingress_env(mode, env).items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def spawn_mode(spec: dict, timeout_s: float) -> dict:
    """Run ``run_mode(spec)`` in a child process with the mode's environment; its last stdout line is the result."""
    work = Path(spec["work"])
    spec_path = work / f"mode-{spec['mode']}.json"
    spec_path.write_text(json.dumps(spec))
    proc = subprocess.Popen([sys.executable, __file__, "mode", str(spec_path)], env=mode_env(spec["mode"]),
                            stdout=subprocess.PIPE, text=True)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if not line.startswith("{"):
            print(line, end="", flush=True)
    if proc.wait(timeout=timeout_s) != 0:
        raise RuntimeError(f"mode {spec['mode']} failed (exit {proc.returncode}); see its output above")
    return json.loads(lines[-1])


def quantization_figures(model_dir: Path, n: int) -> dict:
    """int8 vs fp32 query encoder: speed-up and agreement, measured in this process."""
    import torch

    from recsys.model import TwoTower, load_item_table
    from serving.quantization import agreement, quantized_copy

    torch.set_num_threads(1)
    model = TwoTower.from_pretrained(model_dir)
    words = ["waterproof trail running shoe", "grey wool scarf for winter", "cheap steel water bottle",
             "leather wallet men's brown", "yoga mat non slip", "rain jacket women's lightweight"]
    queries = [words[i % len(words)] + f" size {i}" for i in range(n)]
    return agreement(model, quantized_copy(model), queries, load_item_table(model_dir).vectors, k=10, repeats=2)


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a and b else None


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k items, two concurrency levels, short runs")
    parser.add_argument("--items", type=int, default=None, help="catalog size (default 10000, quick 1000)")
    parser.add_argument("--modes", default="default,fast", help="comma-separated: default, fast")
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "bench-serving",
                        help="where the shop and the embedded catalog are cached between runs")
    args = parser.parse_args(argv)
    modes = args.modes.split(",")
    if not set(modes) <= {"default", "fast"}:
        parser.error(f"--modes {args.modes!r}: give default, fast or both")
    n_items = args.items or (1000 if args.quick else 10_000)
    retrieve_n, k = (50, 10) if args.quick else (200, 10)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    from recsys.data import write_table
    from recsys.simulator import World, WorldConfig

    args.cache.mkdir(parents=True, exist_ok=True)
    model_dir, _, bodies = prepare(args.cache, n_items, n_users=2000, k=k)
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    (work / "bodies.json").write_text(json.dumps(bodies))
    items_path = work / "items.parquet"
    write_table(World.create(WorldConfig(users=2000, items=n_items, seed=0)).items, items_path, "items")
    quant = quantization_figures(model_dir, 16 if args.quick else 64)
    print("quantization:", json.dumps(quant), flush=True)

    cpus = {"ingress": 0.25, "scorer": 0.5, "bandit": 0.25}
    runs = {}
    for mode in modes:
        spec = {"mode": mode, "work": str(work), "model_dir": str(model_dir), "items_path": str(items_path),
                "retrieve_n": retrieve_n, "cpus": cpus, "quick": args.quick, "crossenc": mode == modes[0]}
        runs[mode] = spawn_mode(spec, timeout_s=1800)
    head = runs.get("fast") or runs[modes[0]]
    default = runs.get("default", {})
    crossenc_rps = max(r["rps"] for run in runs.values() for r in run.get("crossenc", [])) if any(
        "crossenc" in run for run in runs.values()) else None
    ours, floor = head["serendip"], head["floor"]
    result = {
        "mode": head["mode"], "rps": ours["rps"], "p50_ms": ours["p50_ms"], "p99_ms": ours["p99_ms"],
        "p99_ms_at_50rps": ours["p99_ms_at_rate"]["50"], "floor_rps": floor["rps"],
        "ratio_vs_floor": ratio(ours["rps"], floor["rps"]),
        "floor_p99_ms_at_50rps": floor["p99_ms_at_rate"]["50"],
        "default_mode_rps": default.get("serendip", {}).get("rps"),
        "default_mode_p99_ms_at_50rps": default.get("serendip", {}).get("p99_ms_at_rate", {}).get("50"),
        "default_mode_floor_rps": default.get("floor", {}).get("rps"),
        "default_mode_ratio_vs_floor": ratio(default.get("serendip", {}).get("rps"), default.get("floor", {}).get("rps")),
        "crossenc_rps": crossenc_rps, "ratio_vs_crossenc": ratio(ours["rps"], crossenc_rps),
        "our_cpu_ms_per_request": ours["cpu_ms_per_request"], "floor_cpu_ms_per_request": floor["cpu_ms_per_request"],
        **quant, "items": n_items, "retrieve_n": retrieve_n, "k": k, "quick": args.quick,
        "errors": sum(run[app]["errors"] for run in runs.values() for app in ("serendip", "floor")),
        "stage_p50_ms": {stage: row["p50_ms"] for part in head["serendip"].get("stages_ms", {}).values()
                      for stage, row in part.items()},
        "modes": {mode: {app: {key: value for key, value in run[app].items() if key not in ("closed_loop", "open_loop")}
                         for app in ("serendip", "floor")} | {"listeners": run.get("listeners")}
                  for mode, run in runs.items()},
        "model": "untrained two-tower on MiniLM-L6 (throughput only)", "load_average": os.getloadavg(),
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "drive":
        drive_main(sys.argv[2:])
    elif len(sys.argv) > 1 and sys.argv[1] == "mode":
        print(json.dumps(run_mode(json.loads(Path(sys.argv[2]).read_text()))), flush=True)
    else:
        main()
