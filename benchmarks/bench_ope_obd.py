"""Real-data checks of recsys.ope on the Open Bandit Dataset sample (../shared/data/obd).

(a) Evaluation of OPE (Saito et al. 2021): on the *random* log, estimate the value of a policy that
    reproduces the BTS logger's action distribution (its per (item, position) marginal, read off
    the BTS log's own propensities), and compare with the BTS log's on-policy CTR. The reverse
    direction (the uniform policy estimated on the BTS log) shows what heavy-tailed weights do.
(b) Learn policies from the random log (recsys.policies greedy and softmax ranking by a
    cross-fitted reward model, so no row is scored by a model that saw it) and estimate their CTR
    with intervals, next to both logged policies' CTRs. The softmax temperature is picked without
    looking at rewards: the sharpest one on a fixed grid whose weights keep an ESS of 10% of rows.

    python benchmarks/bench_ope_obd.py [--obd DIR] [--quick]

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from recsys.data import load_obd
from recsys.ope import (
    RewardModelConfig,
    RewardPredictions,
    build_target,
    cross_fit,
    effective_sample_size,
    estimate,
)
from recsys.ope.features import obd_features
from recsys.ope.targets import marginal_action_dist

DEFAULT_OBD = Path(__file__).resolve().parents[2] / "shared" / "data" / "obd"
ESTIMATORS = ("replay", "ips", "snips", "dm", "dr", "sndr")
TEMPERATURES = (0.02, 0.05, 0.1, 0.25, 0.5, 1.0)
MIN_ESS_SHARE = 0.1
SOFTMAX_DRAWS = 1000


def arrays(log):
    imp = log.impressions
    return (
        imp["reward"].to_numpy(),
        imp["propensity"].to_numpy(),
        imp["position"].to_numpy(),
        imp["item_id"].to_numpy(),
    )


def on_policy(log, n_boot: int, seed: int):
    """The log's own CTR with a bootstrap interval (IPS with weights of 1)."""
    r, p, pos, _ = arrays(log)
    return estimate("ips", r, p, p, positions=pos, n_boot=n_boot, seed=seed)


def reward_model(log, folds: int, seed: int) -> np.ndarray:
    """Cross-fitted q(x, a, k) for every row and item of one OBD log."""
    r, _, _, items = arrays(log)
    feats, categorical = obd_features(log)
    cfg = RewardModelConfig(kind="logistic", folds=folds, strength=0.1, categorical=categorical, seed=seed)
    return cross_fit(feats, items, r, cfg)


def run_estimators(log, dist, propensity, q_hat, names, n_boot, seed):
    """Every estimator of one target on one log: {name: Estimate}."""
    r, p, pos, items = arrays(log)
    pred = RewardPredictions.from_candidates(q_hat, dist, items)
    return {
        name: estimate(name, r, p, propensity, pred, positions=pos, n_boot=n_boot, seed=seed)
        for name in names
    }


def sharpest_softmax(log, q_hat, seed: int):
    """The softmax target at the smallest grid temperature whose weights keep ESS >= 10% of rows.

    Only propensities enter the choice, never rewards, so it does not bias the estimates.
    """
    _, p, pos, items = arrays(log)
    for temperature in TEMPERATURES:
        target = build_target(
            f"softmax:temperature={temperature},n_draws={SOFTMAX_DRAWS}",
            q_hat=q_hat,
            actions=items,
            positions=pos,
            propensity=p,
            n_items=log.n_items,
            seed=seed,
        )
        if effective_sample_size(target.propensity / p) >= MIN_ESS_SHARE * len(p):
            return target
    return target


def print_table(title: str, results: dict, truth: float | None) -> None:
    print(f"\n{title}")
    print(
        f"{'estimator':>10} {'value':>9} {'95% CI':>22} {'ESS':>7} {'events':>6}"
        + ("  rel.error" if truth else "")
    )
    for name, e in results.items():
        line = f"{name:>10} {e.value:9.5f} [{e.ci_low:8.5f}, {e.ci_high:8.5f}] {e.ess:7.0f} {e.events:6.1f}"
        print(line + (f"  {abs(e.value - truth) / truth:9.3f}" if truth else ""))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--obd", type=Path, default=DEFAULT_OBD, help="OBD folder holding random/ and bts/")
    parser.add_argument("--quick", action="store_true", help="smoke run: 100 resamples, 2 folds, greedy only")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    n_boot, folds = (100, 2) if args.quick else (2000, 5)
    start = time.perf_counter()

    random_log, bts_log = load_obd(args.obd, "random"), load_obd(args.obd, "bts")
    truth_random, truth_bts = on_policy(random_log, n_boot, args.seed), on_policy(bts_log, n_boot, args.seed)
    print(
        f"on-policy CTR  random {truth_random.value:.5f} [{truth_random.ci_low:.5f}, {truth_random.ci_high:.5f}]"
        f"  bts {truth_bts.value:.5f} [{truth_bts.ci_low:.5f}, {truth_bts.ci_high:.5f}]"
    )

    # (a) the BTS logger's marginal P(item at position), evaluated on the random log.
    _, p_bts, pos_bts, items_bts = arrays(bts_log)
    marginal = marginal_action_dist(items_bts, pos_bts, p_bts, bts_log.n_items, bts_log.n_positions)
    _, _, pos_rand, items_rand = arrays(random_log)
    bts_dist = marginal[:, pos_rand].T
    q_random = reward_model(random_log, folds, args.seed)
    forward = run_estimators(
        random_log,
        bts_dist,
        bts_dist[np.arange(len(items_rand)), items_rand],
        q_random,
        ESTIMATORS,
        n_boot,
        args.seed,
    )
    print_table(
        "(a) BTS-like policy estimated on the random log, vs the BTS log's CTR", forward, truth_bts.value
    )

    # (a') the reverse: the uniform logger estimated on the BTS log (replay does not apply there).
    q_bts = reward_model(bts_log, folds, args.seed)
    uniform = np.full((len(items_bts), bts_log.n_items), 1.0 / bts_log.n_items)
    reverse = run_estimators(bts_log, uniform, uniform[:, 0], q_bts, ESTIMATORS[1:], n_boot, args.seed)
    print_table(
        "(a') uniform policy estimated on the BTS log, vs the random log's CTR", reverse, truth_random.value
    )

    # (b) policies learned from the random log, evaluated on it through the cross-fitted model.
    _, p_rand, _, _ = arrays(random_log)
    targets = [
        build_target(
            "greedy",
            q_hat=q_random,
            actions=items_rand,
            positions=pos_rand,
            propensity=p_rand,
            n_items=random_log.n_items,
            seed=args.seed,
        )
    ]
    if not args.quick:
        targets.append(sharpest_softmax(random_log, q_random, args.seed))
    learned_results = {}
    for target in targets:
        learned_results[target.name] = run_estimators(
            random_log, target.action_dist, target.propensity, q_random, ESTIMATORS, n_boot, args.seed
        )
        print_table(
            f"(b) learned policy {target.name!r} on the random log", learned_results[target.name], None
        )
    primary = targets[-1].name
    result = {
        "bts_true_ctr": truth_bts.value,
        "bts_true_ci": [truth_bts.ci_low, truth_bts.ci_high],
        "random_true_ctr": truth_random.value,
        "random_true_ci": [truth_random.ci_low, truth_random.ci_high],
        **{f"rel_error_{n}": abs(e.value - truth_bts.value) / truth_bts.value for n, e in forward.items()},
        **{f"bts_est_{n}": e.value for n, e in forward.items()},
        "ess": forward["ips"].ess,
        **{
            f"rel_error_reverse_{n}": abs(e.value - truth_random.value) / truth_random.value
            for n, e in reverse.items()
        },
        "ess_reverse": reverse["ips"].ess,
        "learned_policy": primary,
        **{f"learned_{n}": e.value for n, e in learned_results[primary].items()},
        **{f"learned_{n}_ci": [e.ci_low, e.ci_high] for n, e in learned_results[primary].items()},
        "learned_ess": learned_results[primary]["ips"].ess,
        "learned_events": learned_results[primary]["ips"].events,
        "learned_all_dr": {
            s: [r["dr"].value, r["dr"].ci_low, r["dr"].ci_high, r["dr"].ess, r["dr"].events]
            for s, r in learned_results.items()
        },
        "n_boot": n_boot,
        "folds": folds,
        "seconds": round(time.perf_counter() - start, 1),
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
