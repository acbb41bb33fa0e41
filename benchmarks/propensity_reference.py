"""How close the logged propensities of the Monte-Carlo policies are to the truth.

Thompson sampling, LinTS and Softmax (positions >= 2) log a seeded Monte-Carlo estimate of
P(shown item at its position). Off-policy evaluation divides by it, so what matters is the ratio
true / logged over the items a policy actually shows. For each context this calls the policy's
``select``, then estimates the truth from ``REFERENCE_DRAWS`` fresh score rows sampled from the
same posterior state, with the floor mixed in exactly as ``Policy.select`` does.

The earlier estimator (counting only the further draws, so an item that none of them put
in its slot got the floor alone) is kept here, and only here, to compare accuracy and cost.

    python benchmarks/propensity_reference.py            # 3 policies x 20 contexts, 100 candidates, k=10
    python benchmarks/propensity_reference.py --quick    # smoke check, a few seconds
    python benchmarks/propensity_reference.py --n-draws 10   # the draws benchmarks/quality_bandit.py uses

The posteriors are realistic: each policy first learns from a replay in the simulated shop
(``recsys.replay.run_replay`` with the calibrated ``world_model``). The last line is one JSON
object with, per policy, ``propensity_ref_over_logged_mean``, ``propensity_within_2x_share``,
``decision_ms`` and the same three for the old estimator.
"""

from __future__ import annotations

import argparse
import json
import time
import types

import numpy as np
from threadpoolctl import threadpool_limits

from recsys.policies import Context, Policy, make_policy
from recsys.policies.base import Choice
from recsys.policies.propensity import plackett_luce_first_two, plackett_luce_prefix, slot_frequencies
from recsys.replay import contexts_of, run_replay, world_model
from recsys.simulator import World, WorldConfig

REFERENCE_DRAWS = 100_000
"""Score rows behind each reference propensity (relative error about 3% at p = 0.01)."""
CHUNK = 10_000
"""Score rows sampled at once (bounds the reference's memory)."""
EXPLORATION = {"thompson": {"prior_strength": 10.0}, "lints": {"scale": 0.1}, "softmax": {"temperature": 0.5}}
"""Exploration parameters of ``benchmarks/quality_bandit.py``; ``n_draws`` stays each policy's default."""


def score_rows(policy: Policy, ctx: Context, draws: int, rng: np.random.Generator) -> np.ndarray:
    """(draws, n) independent score rows whose descending order is one of the policy's slates."""
    if policy.name == "lints":
        return policy.sample_scores(ctx, draws, rng)[0]
    if policy.name == "softmax":
        return policy.logits(ctx)[None, :] + rng.gumbel(size=(draws, ctx.n))
    if policy.name == "thompson":
        return policy.sample_scores(ctx, draws, rng)
    raise ValueError(f"policy {policy.name!r} has no Monte-Carlo propensities; check thompson, lints or softmax")


def reference_propensities(policy: Policy, ctx: Context, idx: np.ndarray, draws: int,
                           rng: np.random.Generator) -> np.ndarray:
    """P(``idx[j]`` at position j) from ``draws`` fresh score rows, floor mixed in as ``select`` does."""
    hits = np.zeros(idx.shape[0])
    for start in range(0, draws, CHUNK):
        rows = min(CHUNK, draws - start)
        hits += slot_frequencies(score_rows(policy, ctx, rows, rng), idx) * rows
    return policy.floor / ctx.n + (1.0 - policy.floor) * hits / draws


def _old_choose(policy: Policy, ctx: Context, k: int, rng: np.random.Generator,
                forced: np.ndarray | None) -> Choice:
    """The earlier estimator: the shown draw, then frequencies over the ``n_draws`` others only."""
    if policy.name == "lints":
        features = policy._features(ctx)
        point = features @ policy.posterior.mean
        white = (policy.scale * policy.posterior.whiten(features)).astype(np.float32)
        samples = rng.standard_normal((policy.n_draws + 1, policy.posterior.dim), dtype=np.float32) @ white
        samples += point.astype(np.float32)
    elif policy.name == "softmax":
        point = policy.logits(ctx)
        samples = point[None, :] + rng.gumbel(size=(policy.n_draws + 1, ctx.n))
    else:
        point = policy.estimate(ctx)
        samples = policy.sample_scores(ctx, policy.n_draws + 1, rng)
    idx = np.argsort(-samples[0], kind="stable")[:k] if forced is None else forced
    propensities = slot_frequencies(samples[1:], idx)
    prefix = None
    if policy.name == "softmax":
        head = min(k, 2)
        propensities[:head] = plackett_luce_first_two(point)[idx[:head], np.arange(head)]
        prefix = plackett_luce_prefix(point, idx)
    return Choice(idx, propensities, prefix, point)


def old_estimator(policy: Policy) -> Policy:
    """A copy of ``policy`` (same state) whose ``select`` uses the pre-issue-18 estimator."""
    old = policy.with_params()
    old._choose = types.MethodType(_old_choose, old)
    return old


def ms_per_decision(policy: Policy, contexts: list[Context], k: int, seed: int, repeats: int = 3) -> float:
    """Milliseconds per ``select`` over ``contexts``, best of ``repeats`` passes."""
    rng = np.random.default_rng(seed)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for ctx in contexts:
            policy.select(ctx, k, rng)
        best = min(best, time.perf_counter() - start)
    return 1e3 * best / len(contexts)


def accuracy(ratio: np.ndarray) -> dict[str, float]:
    """Mean and median of reference / logged, and the share of shown items within a factor of 2."""
    return {"propensity_ref_over_logged_mean": round(float(ratio.mean()), 3),
            "propensity_ref_over_logged_median": round(float(np.median(ratio)), 3),
            "propensity_within_2x_share": round(float(((ratio >= 0.5) & (ratio <= 2.0)).mean()), 3)}


def reference_check(policy: Policy, contexts: list[Context], k: int, seed: int,
                    draws: int = REFERENCE_DRAWS) -> dict[str, float]:
    """Logged against reference propensities of one policy's slates on ``contexts``.

    ``propensity_ref_over_logged_mean``: mean over shown items (every position of every slate) of
    reference / logged; 1 is unbiased importance weighting. ``propensity_within_2x_share``: share
    of shown items whose logged propensity is within a factor of 2 of the reference.
    ``old_*``: the same for the pre-issue-18 estimator on the same slates (it logged the frequency
    over the further draws only). ``decision_ms`` / ``old_decision_ms``: cost of one ``select``.
    The policy's state is not changed; its ``select`` is called with ``seed``'s stream.
    """
    rng, reference_rng, old_rng = (np.random.default_rng([seed, s]) for s in range(3))
    old = old_estimator(policy)
    ratios, old_ratios = [], []
    for ctx in contexts:
        slate = policy.select(ctx, k, rng)
        truth = reference_propensities(policy, ctx, slate.indices, draws, reference_rng)
        ratios.append(truth / slate.propensities)
        logged_old = _old_choose(old, ctx, k, old_rng, slate.indices).propensities
        old_ratios.append(truth / (policy.floor / ctx.n + (1.0 - policy.floor) * logged_old))
    new_stats = accuracy(np.concatenate(ratios))
    old_stats = {f"old_{key}": value for key, value in accuracy(np.concatenate(old_ratios)).items()}
    cost = {"decision_ms": round(ms_per_decision(policy, contexts, k, seed), 4),
            "old_decision_ms": round(ms_per_decision(old, contexts, k, seed), 4)}
    return {**new_stats, **old_stats, **cost, "shown_items": len(contexts) * k,
            "n_draws": policy.n_draws, "reference_draws": draws}


def learned_policy(name: str, params: dict, rounds: int, batch: int, seed: int,
                   n_candidates: int, k: int) -> tuple[Policy, World]:
    """A policy after ``rounds`` rounds of replay in a fresh simulated shop, and that shop."""
    world = World.create(WorldConfig(users=500, items=500, seed=seed))
    policy = make_policy(name, **params)
    run_replay(world, policy, rounds, batch, seed, k=k, n_candidates=n_candidates, inject_n=20)
    return policy, world


def fresh_contexts(world: World, n_contexts: int, n_candidates: int, seed: int) -> list[Context]:
    """``n_contexts`` shoppers with ``n_candidates`` random products each, as the replay shows them."""
    rng = np.random.default_rng([seed, 7])
    users = rng.choice(world.n_users, size=n_contexts, replace=False)
    candidates = np.stack([rng.choice(world.n_items, n_candidates, replace=False) for _ in users])
    return contexts_of(world, world_model(world, users, candidates), candidates)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few contexts and draws: a smoke check")
    parser.add_argument("--policies", default="thompson,lints,softmax", help="comma-separated policy names")
    parser.add_argument("--contexts", type=int, default=20, help="decisions checked per policy")
    parser.add_argument("--n-draws", type=int, default=None, help="the policies' n_draws (default: theirs)")
    parser.add_argument("--rounds", type=int, default=30, help="replay rounds the policies learn from first")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n_candidates, k, batch = 100, 10, 20
    contexts, draws, rounds = (3, 10_000, 3) if args.quick else (args.contexts, REFERENCE_DRAWS, args.rounds)
    table: dict[str, dict] = {}
    with threadpool_limits(1):
        for name in args.policies.split(","):
            params = {**EXPLORATION.get(name, {}), **({} if args.n_draws is None else {"n_draws": args.n_draws})}
            policy, world = learned_policy(name, params, rounds, batch, args.seed, n_candidates, k)
            ctxs = fresh_contexts(world, contexts, n_candidates, args.seed)
            table[name] = reference_check(policy, ctxs, k, args.seed, draws)
            print(f"{name:9s} {json.dumps(table[name])}", flush=True)
    means = [row["propensity_ref_over_logged_mean"] for row in table.values()]
    result = {"policies": table, "worst_ref_over_logged_mean": max(means, key=lambda m: abs(np.log(m))),
              "all_within_0.8_1.25": all(0.8 <= m <= 1.25 for m in means), "candidates": n_candidates,
              "k": k, "contexts": contexts, "replay_rounds": rounds, "quick": args.quick}
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
