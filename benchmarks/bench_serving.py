"""Serving throughput and latency of the Serve graph, against Serve's own floor and a cross-encoder server.

    python benchmarks/bench_serving.py            # 10k items, full sweep (~10 min on 2 CPUs)
    python benchmarks/bench_serving.py --quick    # 1k items, short sweep (smoke check)

One process starts a local Ray (2 CPUs, loopback) and deploys, one after the other and under the
same load, three apps:

- **serendip**: the real graph (ingress -> batched scorer -> bandit with WAL) with MiniLM-L6 on a
  simulated shop. The two-tower model is *untrained*: for throughput only the shapes matter;
- **floor**: the same three deployments, same batching and CPUs, doing no work (Serve's own cost);
- **crossenc**: a seed-style server that scores every one of ``retrieve_n`` candidates per request
  with a ``BertForSequenceClassification`` cross-encoder (MiniLM, untrained head).

Load comes from a SEPARATE process (``drive`` mode of this file: httpx async over loopback),
closed-loop at each concurrency of the sweep (bounded in requests and seconds); the peak rate is
the best of the sweep. Latency is then measured open-loop at half our peak rate, for our graph and
for the floor (the floor's p99 at that rate is the least these three Serve hops allow). The int8 query
encoder is timed in-process against fp32 on the same queries. Last line: one JSON object.
"""

# No ``from __future__ import annotations``: FastAPI must see the request model on the methods below.
import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


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

        async def one(i: int) -> None:
            nonlocal errors
            t0 = time.perf_counter()
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
                tasks.append(asyncio.create_task(one(i)))
            await asyncio.gather(*tasks)
        elapsed = time.perf_counter() - start
    ms = np.asarray(latencies) * 1000
    return {
        "concurrency": concurrency, "rate": rate, "ok": len(latencies), "errors": errors, "seconds": elapsed,
        "rps": len(latencies) / elapsed if elapsed else 0.0,
        "p50_ms": float(np.percentile(ms, 50)) if len(ms) else None,
        "p99_ms": float(np.percentile(ms, 99)) if len(ms) else None,
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
    names = ["view", "click", "cart", "purchase"]
    bodies = []
    for u, r, e, m in zip(users, rows, events, mask, strict=True):
        bodies.append({"user_id": int(u), "history": [int(x) for x in ids[r[m]]],
                       "history_events": [names[int(x)] for x in e[m]], "k": k})
    return model_dir, cache, bodies


# ---- the two baselines ----------------------------------------------------------------------------------
def floor_app(num_cpus: dict[str, float], max_batch_size: int, batch_wait_s: float):
    """The same three-deployment graph, same batching and CPUs, doing no work."""
    from fastapi import FastAPI
    from ray import serve

    from serving.api import RecommendRequest

    api = FastAPI()
    reply = {"impression_id": "0.0.x", "policy": "floor", "model_version": "floor",
             "items": [{"item_id": i, "position": i, "score": 0.0, "propensity": 1.0, "explored": False}
                       for i in range(10)]}

    @serve.deployment(max_ongoing_requests=2 * max_batch_size, ray_actor_options={"num_cpus": num_cpus["scorer"]})
    class FloorScorer:
        async def score(self, request: dict, version: int) -> dict:
            return await self.batch(request, version)

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_s)
        async def batch(self, requests: list[dict], versions: list[int]) -> list[dict]:
            return [{} for _ in requests]

    @serve.deployment(max_ongoing_requests=256, ray_actor_options={"num_cpus": num_cpus["bandit"]})
    class FloorBandit:
        async def select(self, user_id: int, candidates: dict, k: int) -> dict:
            return {**reply, "catalog_version": 0}

    @serve.deployment(max_ongoing_requests=128, ray_actor_options={"num_cpus": num_cpus["ingress"]})
    @serve.ingress(api)
    class FloorIngress:
        def __init__(self, scorer, bandit):
            self.scorer, self.bandit = scorer, bandit

        @api.post("/recommend")
        async def recommend(self, body: RecommendRequest) -> dict:
            candidates = await self.scorer.score.remote(body.model_dump(), 0)  # awaited here, as the real ingress does
            result = await self.bandit.select.remote(body.user_id, candidates, body.k)
            result.pop("catalog_version")
            return result

    return FloorIngress.bind(FloorScorer.bind(), FloorBandit.bind())


def crossenc_app(items_path: str, candidates: int, num_cpus: float):
    """A seed-style server: BERT reads (history, candidate) pairs for every candidate of every request."""
    from fastapi import FastAPI
    from ray import serve

    from serving.api import RecommendRequest

    api = FastAPI()

    @serve.deployment(max_ongoing_requests=8, ray_actor_options={"num_cpus": num_cpus})
    @serve.ingress(api)
    class CrossEncoder:
        def __init__(self):
            import pandas as pd
            import torch
            from transformers import AutoTokenizer, BertForSequenceClassification

            from recsys.model import default_base_path
            from recsys.text import render_items

            torch.set_num_threads(2)  # the whole 2-CPU machine: the baseline gets every chance
            base = str(default_base_path())
            self.tokenizer = AutoTokenizer.from_pretrained(base)
            self.model = BertForSequenceClassification.from_pretrained(
                base, num_labels=1, use_safetensors=True, trust_remote_code=False).eval()
            items = pd.read_parquet(items_path)
            self.ids = items["item_id"].to_numpy()
            self.text = dict(zip(self.ids.tolist(), render_items(items), strict=True))
            self.rng = np.random.default_rng(0)

        @api.post("/recommend")
        def recommend(self, body: RecommendRequest) -> dict:
            import torch

            history = " ; ".join(self.text.get(i, "") for i in body.history[:10])
            cands = self.rng.choice(self.ids, size=candidates, replace=False)
            batch = self.tokenizer([history] * len(cands), [self.text[int(i)] for i in cands], truncation=True,
                                   max_length=128, padding=True, return_tensors="pt")
            with torch.no_grad():
                logits = self.model(**batch).logits[:, 0].numpy()
            top = np.argsort(-logits)[: body.k]
            return {"impression_id": None, "policy": "crossenc", "model_version": "crossenc",
                    "items": [{"item_id": int(cands[i]), "position": p, "score": float(logits[i]), "propensity": 1.0,
                               "explored": False} for p, i in enumerate(top)]}

    return CrossEncoder.bind()


# ---- the run ------------------------------------------------------------------------------------------------
def sweep(name: str, url: str, bodies: Path, levels: list[int], max_requests: int, max_seconds: float) -> list[dict]:
    """Closed-loop runs at each concurrency; prints one line per level."""
    results = []
    for c in levels:
        r = drive(url, bodies, c, max_requests, max_seconds)
        print(f"{name:9s} c={c:3d} rps={r['rps']:8.1f} p50={r['p50_ms']}ms p99={r['p99_ms']}ms errors={r['errors']}",
              flush=True)
        results.append(r)
    return results


def quantization_figures(model_dir: Path, bodies: list[dict], n: int) -> dict:
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1k items, two concurrency levels, short runs")
    parser.add_argument("--items", type=int, default=None, help="catalog size (default 10000, quick 1000)")
    parser.add_argument("--cache", type=Path, default=ROOT / "runs" / "bench-serving",
                        help="where the shop and the embedded catalog are cached between runs")
    args = parser.parse_args(argv)
    n_items = args.items or (1000 if args.quick else 10_000)
    levels = [1, 8] if args.quick else [1, 4, 8, 16, 32]
    max_requests, max_seconds = (150, 8.0) if args.quick else (3000, 20.0)
    retrieve_n, k = (50, 10) if args.quick else (200, 10)
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

    import ray
    from ray import serve

    from recsys.data import write_table
    from serving.app import graph
    from serving.config import ServeConfig

    args.cache.mkdir(parents=True, exist_ok=True)
    model_dir, _, bodies = prepare(args.cache, n_items, n_users=2000, k=k)
    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    bodies_path = work / "bodies.json"
    bodies_path.write_text(json.dumps(bodies))
    from recsys.simulator import World, WorldConfig

    items_path = work / "items.parquet"
    write_table(World.create(WorldConfig(users=2000, items=n_items, seed=0)).items, items_path, "items")
    quant = quantization_figures(model_dir, bodies, 16 if args.quick else 64)
    print("quantization:", json.dumps(quant), flush=True)

    cpus = {"ingress": 0.25, "scorer": 0.5, "bandit": 0.25}
    cfg = ServeConfig(model=model_dir, state_dir=work / "state", policy="thompson", retrieve_n=retrieve_n,
                      reward_window_s=60.0, ingress_num_cpus=cpus["ingress"], scorer_num_cpus=cpus["scorer"],
                      bandit_num_cpus=cpus["bandit"], app_name="bench")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    port = 8000 + os.getpid() % 1000
    serve.start(http_options={"host": "127.0.0.1", "port": port})
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.perf_counter()
        serve.run(graph(cfg), name="bench", route_prefix="/")
        print(f"serendip deployed in {time.perf_counter() - t0:.0f} s", flush=True)
        ours = sweep("serendip", url, bodies_path, levels, max_requests, max_seconds)
        peak = max(ours, key=lambda r: r["rps"])
        half = drive(url, bodies_path, 4 * peak["concurrency"], max_requests, max_seconds, rate=peak["rps"] / 2)
        print(f"half peak rate {peak['rps'] / 2:.1f}/s: p50={half['p50_ms']:.1f}ms p99={half['p99_ms']:.1f}ms",
              flush=True)
        serve.delete("bench")
        serve.run(floor_app(cpus, cfg.max_batch_size, cfg.batch_wait_s), name="floor", route_prefix="/")
        floor = sweep("floor", url, bodies_path, levels, max_requests, max_seconds)
        # Serve's own latency at the same open-loop rate: the least any graph of these hops can do here.
        floor_half = drive(url, bodies_path, 4 * peak["concurrency"], max_requests, max_seconds, rate=peak["rps"] / 2)
        print(f"floor at {peak['rps'] / 2:.1f}/s: p50={floor_half['p50_ms']:.1f}ms p99={floor_half['p99_ms']:.1f}ms",
              flush=True)
        serve.delete("floor")
        serve.run(crossenc_app(str(items_path), retrieve_n, num_cpus=1.5), name="crossenc", route_prefix="/")
        crossenc = sweep("crossenc", url, bodies_path, [1, 2], 40 if not args.quick else 6, 60.0 if not args.quick else 20.0)
        serve.delete("crossenc")
    finally:
        serve.shutdown()
        ray.shutdown()
    rps, floor_rps = peak["rps"], max(r["rps"] for r in floor)
    crossenc_rps = max(r["rps"] for r in crossenc)
    result = {
        "rps": rps, "p50_ms": half["p50_ms"], "p99_ms": half["p99_ms"], "half_peak_rate": peak["rps"] / 2,
        "floor_rps": floor_rps, "ratio_vs_floor": rps / floor_rps if floor_rps else None,
        "floor_p50_ms_at_half_peak": floor_half["p50_ms"], "floor_p99_ms_at_half_peak": floor_half["p99_ms"],
        "crossenc_rps": crossenc_rps, "ratio_vs_crossenc": rps / crossenc_rps if crossenc_rps else None,
        **quant, "items": n_items, "retrieve_n": retrieve_n, "k": k, "peak_concurrency": peak["concurrency"],
        "errors": sum(r["errors"] for r in ours + floor + crossenc) + half["errors"] + floor_half["errors"],
        "sweep": {"serendip": ours, "floor": floor, "crossenc": crossenc},
        "model": "untrained two-tower on MiniLM-L6 (throughput only)", "quick": args.quick,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "drive":
        drive_main(sys.argv[2:])
    else:
        main()
