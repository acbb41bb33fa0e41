"""Online decision and update speed of our LinTS, LinUCB and Thompson sampling against
MABWiser 2.7.4's, in the same process, on the same data.

One decision = pick a 10-item slate from 100 candidates with d=32 embeddings (ours read the
34 columns of ``linear_policy_features``: bias, model prior, products) and return a propensity
for every shown item (ours: Monte-Carlo over each policy's default ``n_draws`` further posterior
draws for the Thompson policies: LinTS 40, counting the shown draw; Thompson 50, with
the conditional estimate; ``benchmarks/propensity_reference.py`` checks both against 100,000 draws).
MABWiser's single-context ``predict`` returns one arm and no propensity, so the comparison favours it.
Our decision includes building the features and the validated ``Context`` from the user vector.
One update = one (item, reward) row: our ``update`` / MABWiser's ``partial_fit``.
Each figure is the best of ``--repeats`` timed loops, for both libraries alike.

    python benchmarks/bench_bandit.py            # full run
    python benchmarks/bench_bandit.py --quick    # smoke check, a few seconds

The last line is one JSON object; the headline keys compare LinTS with MABWiser's LinTS.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable

import numpy as np
from threadpoolctl import threadpool_limits

from recsys.policies import Context, Feedback, linear_policy_features, make_policy

N_CANDIDATES, K, DIM, WARMUP_ROWS = 100, 10, 32, 1000
PAIRS = {"lints": "LinTS", "linucb": "LinUCB", "thompson": "ThompsonSampling"}


def per_second(step: Callable[[int], object], calls: int, repeats: int) -> float:
    """Calls per second of ``step(i)``, best of ``repeats`` loops of ``calls`` calls."""
    step(0)
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(calls):
            step(i)
        best = min(best, time.perf_counter() - start)
    return calls / best


class World:
    """Users and items with 32-d embeddings, and a warm-up log of (user, item, reward) rows."""

    def __init__(self, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.users = rng.normal(size=(256, DIM)) / math.sqrt(DIM)
        self.items = rng.normal(size=(N_CANDIDATES, DIM)) / math.sqrt(DIM)
        self.item_ids = np.arange(10_000, 10_000 + N_CANDIDATES, dtype=np.int64)
        self.prior = rng.uniform(0.01, 0.2, N_CANDIDATES)
        self.log_users = rng.integers(0, 256, WARMUP_ROWS)
        self.log_items = rng.integers(0, N_CANDIDATES, WARMUP_ROWS)
        self.log_rewards = (rng.random(WARMUP_ROWS) < 0.1).astype(float)

    def features(self, user: int) -> np.ndarray:
        return linear_policy_features(self.users[user], self.items, self.prior)


def time_ours(name: str, world: World, calls: int, repeats: int) -> tuple[float, float]:
    policy = make_policy(name)
    rows = np.stack([world.features(u)[i] for u, i in zip(world.log_users, world.log_items, strict=True)])
    policy.update(Feedback(world.item_ids[world.log_items], world.log_rewards, features=rows))
    rng = np.random.default_rng(1)
    scores = world.users @ world.items.T

    def decide(i: int) -> object:
        user = i % 256
        ctx = Context(world.item_ids, scores[user], world.features(user), world.prior)
        return policy.select(ctx, K, rng)

    def learn(i: int) -> None:
        j = i % WARMUP_ROWS
        policy.update(Feedback(world.item_ids[world.log_items[j:j + 1]], world.log_rewards[j:j + 1],
                               features=rows[j:j + 1]))

    return per_second(decide, calls, repeats), per_second(learn, calls, repeats)


def time_mabwiser(name: str, world: World, calls: int, repeats: int) -> tuple[float, float]:
    from mabwiser.mab import MAB, LearningPolicy

    contextual = name != "thompson"
    learning = getattr(LearningPolicy, PAIRS[name])()
    mab = MAB(list(world.item_ids), learning, seed=1)
    contexts = world.users[world.log_users]
    decisions = world.item_ids[world.log_items]
    if contextual:
        mab.fit(decisions, world.log_rewards, contexts)
    else:
        mab.fit(decisions, world.log_rewards)

    def decide(i: int) -> object:
        return mab.predict(world.users[i % 256: i % 256 + 1]) if contextual else mab.predict()

    def learn(i: int) -> None:
        j = i % WARMUP_ROWS
        if contextual:
            mab.partial_fit(decisions[j:j + 1], world.log_rewards[j:j + 1], contexts[j:j + 1])
        else:
            mab.partial_fit(decisions[j:j + 1], world.log_rewards[j:j + 1])

    return per_second(decide, calls, repeats), per_second(learn, calls, repeats)


def cholesky_rank1(chol: np.ndarray, x: np.ndarray) -> np.ndarray:
    """L' with L' L'^T = L L^T + x x^T, the classic O(d^2) update (LINPACK dchud), in numpy."""
    chol, x = chol.copy(), x.copy()
    for j in range(x.shape[0]):
        r = math.hypot(chol[j, j], x[j])
        c, s = r / chol[j, j], x[j] / chol[j, j]
        chol[j, j] = r
        chol[j + 1:, j] = (chol[j + 1:, j] + s * x[j + 1:]) / c
        x[j + 1:] = c * x[j + 1:] - s * chol[j + 1:, j]
    return chol


def time_factor_updates(calls: int, repeats: int) -> dict[str, float]:
    """Microseconds per single-row posterior update: LAPACK refactor (ours) vs a rank-1 cholupdate."""
    from scipy.linalg import lapack

    rng = np.random.default_rng(2)
    x = rng.normal(size=(calls + 1, DIM)) / math.sqrt(DIM)
    precision = np.asfortranarray(np.eye(DIM) + x.T @ x)
    chol = np.linalg.cholesky(precision)
    refactor = per_second(lambda i: lapack.dpotrf(precision + np.outer(x[i], x[i]), lower=1, clean=1), calls, repeats)
    rank1 = per_second(lambda i: cholesky_rank1(chol, x[i]), calls, repeats)
    updated = cholesky_rank1(chol, x[0])
    assert np.allclose(updated @ updated.T, precision + np.outer(x[0], x[0]))
    return {"refactor_update_us": 1e6 / refactor, "rank1_cholupdate_us": 1e6 / rank1}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few calls: a smoke check, not a measurement")
    parser.add_argument("--repeats", type=int, default=3, help="timed loops per figure; the best counts")
    parser.add_argument("--blas-threads", type=int, default=1,
                        help="BLAS threads for both libraries (tiny matrices: threads only add latency)")
    args = parser.parse_args(argv)
    ours_calls, theirs_calls = (100, 10) if args.quick else (3000, 300)
    repeats = 1 if args.quick else args.repeats
    world = World()
    pairs: dict[str, dict[str, float]] = {}
    with threadpool_limits(args.blas_threads):
        for name in PAIRS:
            ours_dec, ours_upd = time_ours(name, world, ours_calls, repeats)
            theirs_dec, theirs_upd = time_mabwiser(name, world, theirs_calls, repeats)
            pairs[name] = {
                "ours_decisions_per_s": round(ours_dec, 1), "mabwiser_decisions_per_s": round(theirs_dec, 1),
                "ours_updates_per_s": round(ours_upd, 1), "mabwiser_updates_per_s": round(theirs_upd, 1),
                "decision_ratio": round(ours_dec / theirs_dec, 2), "update_ratio": round(ours_upd / theirs_upd, 2),
            }
            print(f"{name:9s} {json.dumps(pairs[name])}", flush=True)
        factor = time_factor_updates(ours_calls, repeats)
    head = pairs["lints"]
    result = {**head, "pairs": pairs, **{k: round(v, 2) for k, v in factor.items()},
              "candidates": N_CANDIDATES, "k": K, "d": DIM, "n_draws": make_policy("lints").n_draws,
              "blas_threads": args.blas_threads, "quick": args.quick}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
