"""What a search query and the cross-encoder reranker add to the two-tower, on the simulated shop.

One shop (the ranking benchmark's simulated shop, plus a search log: ``World.search_log``), one
two-tower fine-tuned on its events and searches with Ray Train (``training.fit``), one cross-encoder
fine-tuned on the same split with Ray Train (``training.cross_encoder``), both from MiniLM-L6:

- ``query_ndcg10``: held-out searches (never trained on: their own random stream), each ranked over
  the whole catalog by the user tower reading the shopper's history *and* the query, exactly as
  ``/recommend`` with a ``query`` does; the positives are the products clicked after the search.
- ``no_query_ndcg10``: the same model and searches, the user tower reading the history only.
- ``query_rerank_ndcg10``: the two-tower with the query, then the reranking stage below (the
  cross-encoder reads the query too).
- ``bm25_ndcg10``: Okapi BM25 (Robertson & Zaragoza 2009; k1 1.5, b 0.75, Lucene's idf) of the
  query over the products' titles, no personalisation.
  The user's trained items are masked for all three alike.
- ``rerank_ndcg10_gain``: on the held-out test positives of the events split (full catalog, train
  and valid items masked), NDCG@10 after the serving stage (``recsys.model.cross_encoder.Reranker``)
  reorders the two-tower's top 20, minus NDCG@10 of the two-tower alone.
- ``rerank_ms_per_request``: wall milliseconds of that stage per request (20 candidates) on CPU, and
  ``rerank_cpu_ms_per_request`` the CPU milliseconds of this process (all its threads) meanwhile,
  which other load on the machine inflates less (``load_average`` says how busy it was).

    python benchmarks/quality_query_rerank.py            # full: ~1 h on a busy 2-core CPU (~20 min idle)
    python benchmarks/quality_query_rerank.py --quick    # smoke run, a few minutes

The last line is one JSON object with those keys, the settings and the seconds of each part.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from sklearn.feature_extraction.text import CountVectorizer  # noqa: E402

from recsys.data import write_table  # noqa: E402
from recsys.metrics.ranking import full_ranking, rank_chunk  # noqa: E402
from recsys.model import TwoTower, load_item_table  # noqa: E402
from recsys.model.cross_encoder import CrossEncoder, Reranker, rerank_context  # noqa: E402
from recsys.model.scoring import history_index, user_vectors  # noqa: E402
from recsys.policies import Context  # noqa: E402
from recsys.simulator import World, WorldConfig  # noqa: E402
from training.config import TrainConfig  # noqa: E402
from training.cross_encoder import RerankerTrainConfig, fit_reranker  # noqa: E402
from training.prepare import load_shop, split_positives  # noqa: E402
from training.trainer import connect, fit  # noqa: E402

# The full run: MiniLM frozen in the two-tower (train_layers 0; the projection, ID vectors and user tower
# learn, 2 epochs capped at 600 steps; fine-tuning one layer ran at 41 samples/s on the busy machine, ~3 h
# for 4 epochs) and 150 steps of the cross-encoder (all 6 layers). On a 2-core CPU shared with other runs
# (load 30-50) training took ~40 min; the cross-encoder reads ~0.5-1 s of CPU per 20 pairs, so the
# evaluation is held to ~300 held-out searches and 150 users.
FULL = {
    "world": {"users": 3000, "items": 1000, "days": 30}, "searches": 6000, "test_searches": 300,
    "train": {"epochs": 2, "max_steps": 600, "train_layers": 0, "dim": 64, "user_layers": 1, "lr": 3e-3,
              "patience": 0},
    "reranker": {"epochs": 1, "max_steps": 150, "batch_size": 32, "negatives": 3, "lr": 5e-5, "history_items": 5,
                 "max_len": 96},
    "rerank_users": 150,
}
QUICK = {
    "world": {"users": 300, "items": 150, "days": 20}, "searches": 300, "test_searches": 100,
    "train": {"epochs": 1, "train_layers": 0, "dim": 32, "user_layers": 1, "max_steps": 20},
    "reranker": {"epochs": 1, "max_steps": 10, "batch_size": 16, "negatives": 3, "history_items": 3, "max_len": 64},
    "rerank_users": 100,
}
TOP_N = 20
"""Two-tower candidates the reranker reorders (ServeConfig.rerank_top_n's default)."""
WARMUP = 3
"""Requests left out of the timing (the first BERT passes allocate)."""
TIMED = 40
"""Requests the serving stage is timed on, one at a time."""


def shop(work: Path, plan: dict, seed: int) -> tuple[Path, pd.DataFrame]:
    """The simulated shop with its search log on disk, and held-out searches (their own random stream)."""
    world = World.create(WorldConfig(seed=seed, **plan["world"]))
    events = world.generate_events()
    data = work / "shop"
    write_table(world.items, data / "items.parquet", "items")
    write_table(events, data / "events.parquet", "events")
    write_table(world.search_log(plan["searches"]), data / "queries.parquet", "queries")
    return data, world.search_log(plan["test_searches"], seed=seed + 1000)


def bm25(titles: list[str], queries: list[str], k1: float = 1.5, b: float = 0.75) -> np.ndarray:
    """Okapi BM25 scores (queries, titles); idf = ln(1 + (N - df + 0.5) / (df + 0.5)) as Lucene's."""
    vectorizer = CountVectorizer(token_pattern=r"(?u)\b\w[\w'-]*\b")
    tf = sp.csr_matrix(vectorizer.fit_transform(titles), dtype=np.float64)
    length = np.asarray(tf.sum(1)).ravel()
    df = np.asarray((tf > 0).sum(0)).ravel()
    idf = np.log1p((len(titles) - df + 0.5) / (df + 0.5))
    norm = k1 * (1 - b + b * length / length.mean())
    weight = tf.copy()
    weight.data = weight.data * (k1 + 1) / (weight.data + np.repeat(norm, np.diff(tf.indptr)))
    asked = (vectorizer.transform(queries) > 0).astype(np.float64)
    return np.asarray((asked @ (weight @ sp.diags(idf)).T).todense())


def search_ndcg(model: TwoTower, table, train: pd.DataFrame, items: pd.DataFrame, searches: pd.DataFrame,
                reranker: Reranker) -> dict:
    """NDCG@10 of held-out searches: with the query, without it, BM25 over titles, and the two-tower with
    the query followed by the reranking stage (its top 20 reordered by the cross-encoder, query included)."""
    model.eval()
    groups = searches.groupby(["user_id", "query"], sort=True)
    keys = list(groups.groups)
    users = np.array([u for u, _ in keys], np.int64)
    queries = [q for _, q in keys]
    columns = {int(i): c for c, i in enumerate(table.item_ids)}
    search_of = groups.ngroup().to_numpy()
    positives = (search_of, np.array([columns[int(i)] for i in searches["item_id"]]))
    trained = train.groupby("user_id")["item_id"].apply(list).to_dict()
    seen_rows = [(s, columns[int(i)]) for s, u in enumerate(users) for i in trained.get(int(u), []) if int(i) in columns]
    seen = (np.array([s for s, _ in seen_rows], np.int64), np.array([c for _, c in seen_rows], np.int64))
    index = history_index(train, table)
    vectors = torch.as_tensor(table.vectors)
    query_vecs = model.embed_queries(queries)
    titles = items.set_index("item_id").loc[table.item_ids, "title"].tolist()
    lexical = bm25(titles, queries)

    def scorer(with_query: bool):
        def score(rows: np.ndarray) -> np.ndarray:
            q = query_vecs[rows] if with_query else None
            with torch.no_grad():
                return model.scores(user_vectors(model, table, index, users[rows], q), vectors).numpy()
        return score

    newest = train.sort_values(["ts", "item_id"], ascending=[False, True])
    histories = newest.groupby("user_id")["item_id"].apply(list).to_dict()

    def reranked(rows: np.ndarray) -> np.ndarray:
        scores = scorer(True)(rows)
        seen_here = np.isin(seen[0], rows)
        scores[np.searchsorted(rows, seen[0][seen_here]), seen[1][seen_here]] = -np.inf
        behaviours = [reranker.behaviour(histories.get(int(users[r]), []), queries[r]) for r in rows]
        return rerank_scores(reranker, scores, behaviours, table.item_ids)

    ranked = np.arange(len(keys))
    out = {name: full_ranking(fn, ranked, seen, positives, ks=(10,))["ndcg@10"]
           for name, fn in (("query", scorer(True)), ("no_query", scorer(False)), ("bm25", lambda rows: lexical[rows]),
                            ("query_rerank", reranked))}
    out["searches"] = len(keys)
    return out


def rerank_scores(reranker: Reranker, scores: np.ndarray, behaviours: list[str], item_ids: np.ndarray) -> np.ndarray:
    """``scores`` (b, n) with each row's top 20 reordered by the cross-encoder, as the serving stage does.

    The pairs are scored in large batches (the logits the stage computes one request at a time)."""
    tops = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_N]
    texts = [reranker.texts[int(i)] for i in item_ids[tops.ravel()]]
    with torch.no_grad():
        logits = np.concatenate([reranker.encoder([behaviours[k // TOP_N] for k in range(lo, min(lo + 256, len(texts)))],
                                                  texts[lo: lo + 256]).float().numpy()
                                 for lo in range(0, len(texts), 256)]).reshape(tops.shape)
    out = scores.copy()
    for b, top in enumerate(tops):
        ctx = Context(item_ids=item_ids[top], scores=scores[b, top])
        out[b, top] = rerank_context(ctx, lambda rows, b=b: logits[b, rows], TOP_N).scores
    return out


def rerank_gain(model: TwoTower, table, split, reranker: Reranker, users: int, seed: int) -> dict:
    """Test NDCG@10 of the two-tower's full ranking, and with its top 20 reordered by the serving stage.

    The cross-encoder scores the evaluated users' pairs in large batches (the same logits the stage
    computes one request at a time); ``reranker.rerank`` is then timed alone on ``TIMED`` requests.
    """
    model.eval()
    columns = {int(i): c for c, i in enumerate(table.item_ids)}
    test_users = np.sort(split.test["user_id"].unique())
    picked = np.sort(np.random.default_rng(seed).choice(test_users, min(users, len(test_users)), replace=False))
    index = history_index(split.train, table)
    with torch.no_grad():
        scores = model.scores(user_vectors(model, table, index, picked), torch.as_tensor(table.vectors)).numpy()
    slot = {int(u): b for b, u in enumerate(picked)}

    def pairs(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        frame = frame[frame["user_id"].isin(picked)]
        return (frame["user_id"].map(slot).to_numpy(np.int64), frame["item_id"].map(columns).to_numpy(np.int64))

    seen, positives = pairs(pd.concat([split.train, split.valid])), pairs(split.test)
    scores[seen] = -np.inf
    newest = split.train.sort_values(["ts", "item_id"], ascending=[False, True])
    histories = newest.groupby("user_id")["item_id"].apply(list).to_dict()
    reranked = rerank_scores(reranker, scores, [reranker.behaviour(histories.get(int(u), [])) for u in picked],
                             table.item_ids)
    tops = np.argsort(-scores, axis=1, kind="stable")[:, :TOP_N]
    base = rank_chunk(scores, (np.zeros(0), np.zeros(0)), positives, ks=(10,))["ndcg@10"]
    after = rank_chunk(reranked, (np.zeros(0), np.zeros(0)), positives, ks=(10,))["ndcg@10"]
    wall, cpu = [], []
    for b in range(min(TIMED + WARMUP, len(picked))):
        ctx = Context(item_ids=table.item_ids[tops[b]], scores=scores[b, tops[b]])
        w0, c0 = time.perf_counter(), time.process_time()
        reranker.rerank(ctx, histories.get(int(picked[b]), []))
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return {"base": float(np.nanmean(base)), "reranked": float(np.nanmean(after)), "users": int(np.isfinite(base).sum()),
            "ms_per_request": 1000 * float(np.mean(wall[WARMUP:] or wall)),
            "cpu_ms_per_request": 1000 * float(np.mean(cpu[WARMUP:] or cpu)), "threads": torch.get_num_threads()}


def main(argv: list[str] | None = None) -> int:
    """Train both models on one shop, measure, print the JSON last."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny settings: a smoke run of a few minutes")
    parser.add_argument("--work-dir", type=Path, default=None, help="models and runs (default: a temp dir)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpus-per-worker", type=float, default=float(os.cpu_count() or 1))
    args, _ = parser.parse_known_args(argv)  # bench_quality --task ranking passes its own flags too
    plan = QUICK if args.quick else FULL
    started = time.perf_counter()
    connect()
    with tempfile.TemporaryDirectory(prefix="serendip-query-rerank-") as tmp:
        work = args.work_dir or Path(tmp)
        data, held_out = shop(work, plan, args.seed)
        cfg = TrainConfig(data=data, out=work / "two-tower", storage_path=str(work / "runs"), name="query-two-tower",
                          protocol="random", seed=args.seed, cpus_per_worker=args.cpus_per_worker, log_every=100,
                          **plan["train"])
        t0 = time.perf_counter()
        result = fit(cfg)
        train_s = time.perf_counter() - t0
        model, table = TwoTower.from_pretrained(result.model_dir), load_item_table(result.model_dir)
        items, events, _, _ = load_shop(data)
        split = split_positives(cfg, events)
        rcfg = RerankerTrainConfig(data=data, out=work / "reranker", storage_path=str(work / "runs"),
                                   name="query-reranker", seed=args.seed, cpus_per_worker=args.cpus_per_worker,
                                   log_every=50, **plan["reranker"])
        t0 = time.perf_counter()
        reranker_dir, history = fit_reranker(rcfg)
        rerank_train_s = time.perf_counter() - t0
        torch.set_num_threads(max(1, int(args.cpus_per_worker)))
        reranker = Reranker(CrossEncoder.from_pretrained(reranker_dir), items, top_n=TOP_N)
        search = search_ndcg(model, table, split.train, items, held_out, reranker)
        print(f"[query] ndcg@10 with query {search['query']:.4f}, without {search['no_query']:.4f}, "
              f"bm25 {search['bm25']:.4f}, with query then reranked {search['query_rerank']:.4f} over "
              f"{search['searches']} held-out searches", flush=True)
        gain = rerank_gain(model, table, split, reranker, plan["rerank_users"], args.seed)
        print(f"[rerank] test ndcg@10 {gain['base']:.4f} -> {gain['reranked']:.4f} on {gain['users']} users, "
              f"{gain['ms_per_request']:.1f} ms per request of {TOP_N} on {gain['threads']} CPU threads", flush=True)
    summary = {
        "quick": args.quick, "seed": args.seed,
        "query_ndcg10": round(search["query"], 4), "no_query_ndcg10": round(search["no_query"], 4),
        "bm25_ndcg10": round(search["bm25"], 4), "query_rerank_ndcg10": round(search["query_rerank"], 4),
        "query_beats_both": search["query"] > max(search["no_query"], search["bm25"]),
        "query_searches": search["searches"],
        "rerank_ndcg10_gain": round(gain["reranked"] - gain["base"], 4),
        "rerank_base_ndcg10": round(gain["base"], 4), "rerank_ndcg10": round(gain["reranked"], 4),
        "rerank_users": gain["users"], "rerank_top_n": TOP_N,
        "rerank_ms_per_request": round(gain["ms_per_request"], 1),
        "rerank_cpu_ms_per_request": round(gain["cpu_ms_per_request"], 1), "rerank_device": "cpu",
        "load_average": [round(x, 1) for x in os.getloadavg()],
        "rerank_threads": gain["threads"],
        "query_train_seconds": round(train_s, 1), "rerank_train_seconds": round(rerank_train_s, 1),
        "rerank_train_loss": [round(h["loss"], 4) for h in history],
        "query_settings": {k: plan[k] for k in ("world", "searches", "test_searches", "train")},
        "rerank_settings": plan["reranker"],
        "query_rerank_seconds": round(time.perf_counter() - started, 1),
    }
    print(json.dumps(summary, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
