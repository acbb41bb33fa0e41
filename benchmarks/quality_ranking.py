"""Ranking quality of the fine-tuned two-tower model, against popularity, EASE and RecBole's BPR.

Three runs, each trained with Ray Train (``training.fit``) and evaluated on the held-out test set
with full ranking (every item a candidate, the user's train and valid items masked):

1. the simulated shop, random 8:1:1 per user (positives: click, cart, purchase);
2. MovieLens-100k as RecBole 1.2.1 ships it, every rating a positive, random 8:1:1: the setting
   of RecBole's BPR (NDCG@10 0.2928, Recall@10 0.2466, Pop NDCG@10 0.1005 on this machine, on
   RecBole's own split). BPR with RecBole's defaults (``recsys.metrics.bpr``) is also trained here,
   in this process, on the very split the model is scored on: the same-split reference;
3. MovieLens-100k with 10% of the items held out of training entirely (cold items), ranking only
   those items: an ID-only model like BPR or EASE cannot score them at all; the text tower can.

EASE (``recsys.metrics.ease``: closed form, λ picked on validation among values around RecBole's
250) is fitted on every split the model is scored on, in seconds. ``--seeds 0 1 2`` repeats the
ml-100k run on three splits (the target is the mean of 3 seeds); EASE's mean over the three splits
from ``--seed`` on is always reported, because it costs seconds.

``--ablation`` adds a table (key ``ablation``): on ml-100k and the simulated shop, warm (random 8:1:1)
and cold splits, the item tower as text only, ID only or hybrid, the text fine-tuned 0, 2 or 6
layers deep. Each row trains at a reduced budget (``ABLATION``: steps and batch per depth, said in
the row), so rows compare designs, not the fully trained figures above.

    python benchmarks/bench_quality.py --task ranking           # the full run (CPU budget: 45 min)
    python benchmarks/bench_quality.py --task ranking --quick   # smoke run, a few minutes
    python benchmarks/bench_quality.py --task ranking --only ml100k --seeds 0 1 2   # the mean of 3 seeds
    python benchmarks/bench_quality.py --task ranking --only ablation   # the ablation table alone (~2 h at load 40)
    python benchmarks/bench_quality.py --task ranking --only ablation --ablation-data sim   # its simulated-shop half
    python benchmarks/bench_quality.py --task ranking --only ease --seed 0   # EASE alone, seconds, no Ray
    python benchmarks/bench_quality.py --task ranking --only ml100k --only cold --set negatives=catalog   # a design

The last line is one JSON object with sim_ndcg10, sim_pop_ndcg10, ml100k_ndcg10,
ml100k_pop_ndcg10, ml100k_cold_ndcg10 (plus recall, seconds and the settings used), for every
split its same-split EASE (<split>_ease_ndcg10, _ease_lambda; ml100k_ease250_ndcg10 at RecBole's
λ), ml100k_ease_ndcg10_mean3, ml100k_ndcg10_mean3 (with three seeds), for ml-100k the same-split
BPR (ml100k_bpr_ndcg10, ml100k_bpr_recall10, ml100k_beats_bpr_same_split), and ``ablation``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from recsys.cpu_time import cpu_snapshot  # noqa: E402
from recsys.data import fetch_ml100k, load_recbole, write_table  # noqa: E402
from recsys.metrics import evaluate_cold_items, evaluate_random_split  # noqa: E402
from recsys.metrics.bpr import BPRConfig, train_bpr  # noqa: E402
from recsys.metrics.ease import RECBOLE_LAMBDA, EASEConfig, train_ease  # noqa: E402
from recsys.model import TwoTower, load_item_table  # noqa: E402
from recsys.model.scoring import catalog_scorer  # noqa: E402
from recsys.simulator import World, WorldConfig  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.prepare import load_shop, split_positives  # noqa: E402
from training.trainer import connect, fit  # noqa: E402

BPR_NDCG10 = 0.2928
"""RecBole 1.2.1's own BPR on ml-100k with its default configuration and split (seed 2020), run on this machine."""

# Settings per run; --quick shrinks them. ml-100k: MiniLM frozen (train_layers=0: the movie titles carry
# little signal, the hybrid ID vectors carry most; the ablation measures how much), a small user tower,
# 20 epochs: about 15-32 min of 2-core CPU. The cold run hides ID vectors half the time (id_dropout) so
# the text path learns alone.
ML100K = {"train_layers": 0, "dim": 64, "user_layers": 1, "lr": 3e-3, "batch_size": 512, "history_len": 50}
FULL = {
    "sim": {"world": {"users": 3000, "items": 1000, "days": 30},
            "train": {"epochs": 4, "train_layers": 1, "dim": 64, "user_layers": 1, "lr": 3e-3, "patience": 2}},
    # dim 128: seed 0 scored 0.2963 in 1,894 s (64 tied BPR at 0.2928) at half the samples/s of 64.
    # No early stop (the best validation epoch is exported): validation NDCG@10 moves by +-0.005 from
    # epoch to epoch, and patience 3 stopped seed 1 after epoch 9 at 0.2600 against 0.2790 over all 20.
    # In-batch negatives (logQ-corrected), not the full catalog softmax (negatives=catalog): on seed 0 the
    # latter's validation NDCG@10 sat at 0.19-0.21 over epochs 1-4 (test 0.2329), far from EASE's 0.27.
    "ml100k": {"train": {**ML100K, "dim": 128, "epochs": 20, "patience": 0}, "bpr": BPRConfig()},
    "cold": {"train": {**ML100K, "epochs": 5, "id_dropout": 0.5, "patience": 2}},
}
QUICK = {
    "sim": {"world": {"users": 300, "items": 150, "days": 20},
            "train": {"epochs": 1, "train_layers": 0, "dim": 32, "user_layers": 1, "max_steps": 20}},
    "ml100k": {"train": {**ML100K, "epochs": 1, "max_steps": 20, "batch_size": 256, "eval_users": 200},
               "bpr": BPRConfig(epochs=3)},
    "cold": {"train": {**ML100K, "epochs": 1, "max_steps": 10, "batch_size": 256, "eval_users": 200}},
}

EASE250 = EASEConfig(lambdas=(RECBOLE_LAMBDA,))
"""EASE at RecBole's default λ alone."""

VARIANTS = {
    "hybrid": {},
    "text": {"id_embeddings": False},
    "id": {"text_tower": False, "id_dropout": 0.0, "train_layers": 0},
}
"""Item towers of the ablation: text + ID vectors, text alone, ID vectors alone (no text tower)."""

ABLATION = {
    "full": {
        "datasets": ("ml100k", "sim"),
        "rows": (("hybrid", 0), ("text", 0), ("text", 2), ("text", 6), ("id", 0)),
        "train": {**ML100K, "patience": 0, "batch_size": 256},
        "cold": {"id_dropout": 0.5},
        # Steps of 256 per depth. 30 steps for every row left every model below popularity on ml-100k.
        # A fine-tuned layer runs forward and backward over the batch's items every step (a 6-layer
        # step costs ~10x a frozen one on 2 cores), so deeper rows get fewer steps: half an ml-100k
        # epoch frozen, 60 steps at depth 2, 25 at depth 6 (ml-100k text-only: 268 CPU s). Each half of the
        # table (--ablation-data) took about 55 min of wall time at a load average of 20-45 on 2 cores.
        "depth": {0: {"epochs": 1, "max_steps": 150}, 2: {"epochs": 1, "max_steps": 60},
                  6: {"epochs": 1, "max_steps": 25}},
    },
    "quick": {
        "datasets": ("sim",),
        "rows": (("hybrid", 0), ("text", 0), ("text", 2), ("id", 0)),
        "train": {**ML100K, "dim": 32, "patience": 0, "batch_size": 128},
        "cold": {"id_dropout": 0.5},
        "depth": {0: {"epochs": 1, "max_steps": 10}, 2: {"epochs": 1, "max_steps": 5}},
    },
}
"""The ablation grid: which datasets and (variant, fine-tuned layers) rows, and each depth's budget."""


class SampledCPU:
    """CPU seconds of this process tree over a ``with`` block, from snapshots taken every ``every`` seconds.

    ``recsys.cpu_time.cpu_used`` compares two snapshots only, so a Ray Train worker that exits before
    the second one (every ``fit``'s worker) is lost whenever its parent's reaped-children time is not
    there to stand in for it: one ablation row of 25 six-layer steps read 37 CPU s. Here each process
    counts its own time up to its last sample (at most ``every`` seconds of it can be missed).
    """

    def __init__(self, every: float = 1.0) -> None:
        self.every, self.seconds = every, 0.0
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.wait(self.every):
            self._last.update(cpu_snapshot())

    def __enter__(self) -> SampledCPU:
        self._first = cpu_snapshot()
        self._last = dict(self._first)
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self._last.update(cpu_snapshot())
        self.seconds = sum(max(0.0, own - self._first.get(key, (0.0, 0.0))[0]) for key, (own, _) in self._last.items())


def train_and_test(data: Path, work: Path, name: str, protocol: str, args, seed: int, bpr: BPRConfig | None = None,
                   **overrides) -> dict:
    """Fine-tune on ``data`` with Ray Train, then evaluate the exported model on the test split, with
    EASE fitted on that split (and BPR trained on it when ``bpr`` is given)."""
    cfg = TrainConfig(data=data, out=work / f"model-{name}", storage_path=str(work / "runs"), name=name,
                      protocol=protocol, workers=args.workers, cpus_per_worker=args.cpus_per_worker,
                      seed=seed, log_every=100, **overrides)
    started = time.perf_counter()
    with SampledCPU() as cpu:
        result = fit(cfg)
        model, table = TwoTower.from_pretrained(result.model_dir), load_item_table(result.model_dir)
        _, events, _, _ = load_shop(data)
        split = split_positives(cfg, events)
        evaluate = evaluate_cold_items if protocol == "cold" else evaluate_random_split
        report = evaluate(catalog_scorer(model, table, split.train), split, table.item_ids, ks=(10, 20))
    seconds, cpu_s = time.perf_counter() - started, cpu.seconds
    print(f"[quality] {name}: model ndcg@10 {report['model']['ndcg@10']:.4f} recall@10 "
          f"{report['model']['recall@10']:.4f} | popularity ndcg@10 {report['popularity']['ndcg@10']:.4f} "
          f"recall@10 {report['popularity']['recall@10']:.4f} | {len(result.metrics)} epochs, {seconds:.0f} s, "
          f"{cpu_s:.0f} CPU s", flush=True)
    out = {"model": report["model"], "popularity": report["popularity"], "seconds": seconds, "cpu_s": cpu_s,
           "epochs": len(result.metrics), "best_epoch": result.best.get("epoch"),
           "steps": result.metrics[-1].get("step") if result.metrics else 0,
           "ease": same_split_ease(split, table.item_ids, protocol)}
    if bpr is not None:
        out["bpr"] = same_split_bpr(split, table.item_ids, bpr, seed)
    return out


def same_split_ease(split, item_ids, protocol: str = "random", cfg: EASEConfig | None = None) -> dict:
    """EASE fitted on the model's own split and catalog, λ picked on validation; scored by ``protocol``."""
    ease = train_ease(split, item_ids, cfg or EASEConfig())
    evaluate = evaluate_cold_items if protocol == "cold" else evaluate_random_split
    model = evaluate(ease.scorer, split, item_ids, ks=(10, 20))["model"]
    print(f"[quality] same-split EASE: ndcg@10 {model['ndcg@10']:.4f} recall@10 {model['recall@10']:.4f} | "
          f"λ {ease.lam:g} of {list(ease.valid_ndcg10)}, {ease.seconds:.1f} s", flush=True)
    return {**model, "lambda": ease.lam, "seconds": ease.seconds}


def same_split_bpr(split, item_ids, cfg: BPRConfig, seed: int) -> dict:
    """BPR with RecBole's defaults, trained and scored on the model's own split and catalog."""
    bpr = train_bpr(split, item_ids, dataclasses.replace(cfg, seed=seed))
    report = evaluate_random_split(bpr.scorer, split, item_ids, ks=(10, 20))
    model = report["model"]
    print(f"[quality] same-split BPR: ndcg@10 {model['ndcg@10']:.4f} recall@10 {model['recall@10']:.4f} | "
          f"best epoch {bpr.best_epoch} of {bpr.epochs}, {bpr.seconds:.0f} s", flush=True)
    return {**model, "popularity": report["popularity"], "best_epoch": bpr.best_epoch, "epochs": bpr.epochs,
            "seconds": bpr.seconds}


def ml100k_split(data: Path, seed: int, protocol: str = "random"):
    """The split a ml-100k run of ``seed`` trains and is scored on, and the catalog's ids."""
    items, events, _, _ = load_shop(data)
    cfg = TrainConfig(data=data, out=data / "unused", protocol=protocol, seed=seed)
    return split_positives(cfg, events), items["item_id"].to_numpy(np.int64)


def ease_means(data: Path, first_seed: int, done: dict[int, float]) -> dict:
    """EASE on the three ml-100k splits of seeds first_seed.. first_seed+2 (reusing those in ``done``)."""
    scores = dict(done)
    for seed in range(first_seed, first_seed + 3):
        if seed not in scores:
            scores[seed] = same_split_ease(*ml100k_split(data, seed))["ndcg@10"]
    return {"ml100k_ease_ndcg10_seeds": {s: round(scores[s], 4) for s in sorted(scores)},
            "ml100k_ease_ndcg10_mean3": round(float(np.mean([scores[s] for s in range(first_seed, first_seed + 3)])), 4)}


def reference_only(args, plan: dict, part: str) -> int:
    """``--only bpr`` (the same-split BPR of ``--seed``) or ``--only ease`` (EASE on seeds), no Ray."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="serendip-quality-") as tmp:
        data = ml100k_data(Path(tmp), args.cache_dir)
        split, item_ids = ml100k_split(data, args.seed)
        summary = {"quick": args.quick, "seed": args.seed}
        if part == "bpr":
            bpr = same_split_bpr(split, item_ids, plan["ml100k"]["bpr"], args.seed)
            summary.update(bpr_ndcg10=BPR_NDCG10, ml100k_bpr_ndcg10=round(bpr["ndcg@10"], 4),
                           ml100k_bpr_recall10=round(bpr["recall@10"], 4), ml100k_bpr_best_epoch=bpr["best_epoch"],
                           ml100k_bpr_epochs=bpr["epochs"], ml100k_pop_ndcg10=round(bpr["popularity"]["ndcg@10"], 4))
        else:
            ease, fixed = same_split_ease(split, item_ids), same_split_ease(split, item_ids, cfg=EASE250)
            summary.update(ml100k_ease_ndcg10=round(ease["ndcg@10"], 4), ml100k_ease_recall10=round(ease["recall@10"], 4),
                           ml100k_ease_lambda=ease["lambda"], ml100k_ease250_ndcg10=round(fixed["ndcg@10"], 4),
                           **ease_means(data, args.seed, {args.seed: ease["ndcg@10"]}))
    print(json.dumps({**summary, "seconds": round(time.perf_counter() - started, 1)}))
    return 0


def sim_data(work: Path, settings: dict, seed: int) -> Path:
    """A simulated shop written as items/events Parquet."""
    world = World.create(WorldConfig(seed=seed, **settings["world"]))
    write_table(world.items, work / "sim" / "items.parquet", "items")
    write_table(world.generate_events(), work / "sim" / "events.parquet", "events")
    return work / "sim"


def ml100k_data(work: Path, cache_dir: Path) -> Path:
    """MovieLens-100k (RecBole's atomic files from the recbole==1.2.1 wheel) as items/events Parquet."""
    items, events = load_recbole(fetch_ml100k(cache_dir))
    write_table(items, work / "ml100k" / "items.parquet", "items")
    write_table(events, work / "ml100k" / "events.parquet", "events")
    return work / "ml100k"


def ablation_runs(grid: dict) -> list[dict]:
    """The ablation's runs in order: dataset, split, variant, fine-tuned layers and the training settings."""
    runs = []
    for dataset in grid["datasets"]:
        for split in ("warm", "cold"):
            for variant, layers in grid["rows"]:
                settings = {**grid["train"], **(grid["cold"] if split == "cold" else {}), **grid["depth"][layers],
                            "train_layers": layers, **VARIANTS[variant]}
                runs.append({"dataset": dataset, "split": split, "variant": variant, "train_layers": layers,
                             "settings": settings})
    return runs


def ablation(work: Path, data: dict[str, Path], args, grid: dict) -> list[dict]:
    """Train and score every run of the grid; EASE and popularity rows for each dataset and split."""
    rows = []
    for run in ablation_runs(grid):
        dataset, split = run["dataset"], run["split"]
        protocol = "cold" if split == "cold" else "random"
        name = f"ablation-{dataset}-{split}-{run['variant']}-{run['train_layers']}"
        result = train_and_test(data[dataset], work, name, protocol, args, args.seed, **run["settings"])
        budget = {k: run["settings"].get(k) for k in ("epochs", "max_steps", "batch_size", "dim")}
        row = {**{k: run[k] for k in ("dataset", "split", "variant", "train_layers")},
               "ndcg10": round(result["model"]["ndcg@10"], 4), "cpu_s": round(result["cpu_s"], 1),
               "steps": result["steps"], **budget}
        print(f"[quality] ablation row: {json.dumps(row)}", flush=True)
        rows.append(row)
        if not any(r["dataset"] == dataset and r["split"] == split and r["variant"] == "ease" for r in rows):
            rows.append({"dataset": dataset, "split": split, "variant": "ease", "train_layers": None,
                         "ndcg10": round(result["ease"]["ndcg@10"], 4), "cpu_s": round(result["ease"]["seconds"], 1)})
            rows.append({"dataset": dataset, "split": split, "variant": "popularity", "train_layers": None,
                         "ndcg10": round(result["popularity"]["ndcg@10"], 4), "cpu_s": 0.0})
    return rows


def setting(text: str) -> tuple[str, object]:
    """``KEY=VALUE`` of ``--set``: VALUE read as JSON (numbers, true/false), else as a string."""
    key, sep, value = text.partition("=")
    if not sep or key not in {f.name for f in dataclasses.fields(TrainConfig)}:
        raise argparse.ArgumentTypeError(f"--set {text!r}: use KEY=VALUE with KEY a TrainConfig field, e.g. negatives=catalog")
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


def summarize(results: dict, plan: dict, args, seeds: list[int]) -> dict:
    """The JSON summary of the parts that ran (the first seed's figures under the plain keys)."""
    summary = {"bpr_ndcg10": BPR_NDCG10}
    names = {"sim": "sim", "ml100k": "ml100k", "cold": "ml100k_cold"}
    for part, result in results.items():
        if part not in names:
            continue
        key, first = names[part], result[0] if isinstance(result, list) else result
        for metric in ("ndcg", "recall"):
            summary[f"{key}_{metric}10"] = round(first["model"][f"{metric}@10"], 4)
            summary[f"{key}_pop_{metric}10"] = round(first["popularity"][f"{metric}@10"], 4)
        summary[f"{key}_ease_ndcg10"] = round(first["ease"]["ndcg@10"], 4)
        summary[f"{key}_ease_lambda"] = first["ease"]["lambda"]
        summary[f"{key}_seconds"], summary[f"{key}_cpu_s"] = round(first["seconds"], 1), round(first["cpu_s"], 1)
        train = {**plan[part]["train"], **(args.set if part in ("ml100k", "cold") else {})}
        summary[f"{key}_settings"] = {"train": train, "seed": seeds[0]} | (
            {"bpr": dataclasses.asdict(plan[part]["bpr"])} if "bpr" in plan[part] else {})  # BPR runs with the run's seed
    if "ml100k" in results:
        runs = results["ml100k"]
        summary["ml100k_beats_bpr"] = summary["ml100k_ndcg10"] > BPR_NDCG10
        same = runs[0]["bpr"]
        summary["ml100k_bpr_ndcg10"], summary["ml100k_bpr_recall10"] = round(same["ndcg@10"], 4), round(same["recall@10"], 4)
        summary["ml100k_bpr_best_epoch"], summary["ml100k_bpr_seconds"] = same["best_epoch"], round(same["seconds"], 1)
        summary["ml100k_beats_bpr_same_split"] = summary["ml100k_ndcg10"] > summary["ml100k_bpr_ndcg10"]
        summary["ml100k_beats_ease_same_split"] = summary["ml100k_ndcg10"] >= summary["ml100k_ease_ndcg10"]
        summary["ml100k_ndcg10_seeds"] = {s: round(r["model"]["ndcg@10"], 4) for s, r in zip(seeds, runs, strict=True)}
        summary["ml100k_ndcg10_mean3"] = (round(float(np.mean([r["model"]["ndcg@10"] for r in runs[:3]])), 4)
                                          if len(runs) >= 3 else None)
        summary.update(results["ease_means"])
        if summary["ml100k_ndcg10_mean3"] is not None:
            summary["ml100k_beats_ease_mean3"] = summary["ml100k_ndcg10_mean3"] >= summary["ml100k_ease_ndcg10_mean3"]
    if "ease250" in results:
        summary["ml100k_ease250_ndcg10"] = round(results["ease250"]["ndcg@10"], 4)
    if "ablation" in results:
        summary["ablation"] = results["ablation"]
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run the selected parts and print the summary JSON last."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke run of a few minutes")
    parser.add_argument("--cache-dir", type=Path, default=Path(".cache/ml100k"), help="where the ml-100k wheel goes")
    parser.add_argument("--work-dir", type=Path, default=None, help="models and runs (default: a temp dir)")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cpus-per-worker", type=float, default=float(os.cpu_count() or 1))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds of the ml-100k run (each its own split; 3 give the mean3 keys); default --seed")
    parser.add_argument("--only", choices=("sim", "ml100k", "cold", "ablation", "bpr", "ease"), action="append",
                        help="run only these parts; bpr / ease: only that same-split reference on ml-100k (no Ray)")
    parser.add_argument("--ablation", action="store_true", help="add the ablation table to the parts that run")
    parser.add_argument("--ablation-data", choices=("ml100k", "sim"), action="append",
                        help="the ablation's datasets (default both; one each splits the table over two runs)")
    parser.add_argument("--set", type=setting, action="append", default=[], metavar="KEY=VALUE",
                        help="override a training setting of both ml-100k runs, warm and cold (a design to try), e.g. negatives=catalog")
    args = parser.parse_args(argv)
    args.set = dict(args.set)
    plan = QUICK if args.quick else FULL
    parts = args.only or ["sim", "ml100k", "cold"] + (["ablation"] if args.ablation else [])
    if parts in (["bpr"], ["ease"]):
        return reference_only(args, plan, parts[0])
    seeds = args.seeds or [args.seed]
    started, cpu = time.perf_counter(), SampledCPU(every=2.0)
    with cpu, tempfile.TemporaryDirectory(prefix="serendip-quality-") as tmp:
        connect()
        work = args.work_dir or Path(tmp)
        data, results = {}, {}
        grid = ABLATION["quick" if args.quick else "full"]
        grid = {**grid, "datasets": tuple(args.ablation_data or grid["datasets"])}
        on = set(grid["datasets"]) if "ablation" in parts else set()
        if "sim" in parts or "sim" in on:
            data["sim"] = sim_data(work, plan["sim"], args.seed)
        if {"ml100k", "cold"} & set(parts) or "ml100k" in on:
            data["ml100k"] = ml100k_data(work, args.cache_dir)
        if "sim" in parts:
            results["sim"] = train_and_test(data["sim"], work, "sim", "random", args, args.seed, **plan["sim"]["train"])
        if "ml100k" in parts:
            results["ml100k"] = [train_and_test(data["ml100k"], work, f"ml100k-{seed}", "random", args, seed,
                                                bpr=plan["ml100k"]["bpr"], **{**plan["ml100k"]["train"], **args.set})
                                 for seed in seeds]
            done = {s: r["ease"]["ndcg@10"] for s, r in zip(seeds, results["ml100k"], strict=True)}
            results["ease_means"] = ease_means(data["ml100k"], seeds[0], done)
            results["ease250"] = same_split_ease(*ml100k_split(data["ml100k"], seeds[0]), cfg=EASE250)
        if "cold" in parts:
            results["cold"] = train_and_test(data["ml100k"], work, "cold", "cold", args, args.seed,
                                             **{**plan["cold"]["train"], **args.set})
        if "ablation" in parts:
            results["ablation"] = ablation(work, data, args, grid)
    summary = {"quick": args.quick, "seconds": round(time.perf_counter() - started, 1),
               "cpu_s": round(cpu.seconds, 1), **summarize(results, plan, args, seeds)}
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
