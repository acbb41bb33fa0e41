"""Bandit quality in the simulated shop: cumulative regret against the oracle, learning and
exploration against the non-learning model, new-product clicks, and how right the logged
propensities are.

Every policy (ours and MABWiser 2.7.4's) replays the same worlds, rounds, shoppers, candidates and
click draws (``recsys.replay.run_replay``, common random numbers per seed). The world has revealed
and latent interests, emerging categories, satiation and drift, and injects new products a third
of the way in. Regret is exact: the oracle's expected clicks minus the policy's, per visit.

What the policies see is what serving builds (``recsys.model.bandit_input``): each seed's shop is
simulated with its logged history, a two-tower model is fine-tuned on that log with Ray Train
(MiniLM-L6, as ``serendip train`` does at a small budget), and every replay reads that model's
scores, calibrated click prior and ``linear_policy_features`` (``recsys.model_observer``). With
``--model DIR`` one trained model serves every seed instead. One row, ``oracle_upper_bound``,
runs LinTS on the simulator's hidden features (``recsys.replay.world_model``: the true text-model
prior, category one-hot, recent-category shares) and is an upper bound, never a result.

- ``static`` ranks by the model alone and never learns; ``greedy`` exploits the learned estimate
  (model prior x each product's learned appeal) and never explores: the control.
- Each exploring policy's rate is tuned on a separate world (``--tune-seed``) with its own model,
  over a small grid, then scored on the evaluation seeds (no tuning on the figures reported).
- Position examination weights come from the CTR ratios of a uniformly random warm-up log, which
  every learning policy (MABWiser's too) also learns from before the run.
- MABWiser's contextual policies keep one model per item over the model's user vector, as that
  library is built to; its non-contextual Thompson sampling keeps a Beta per item.
- Propensities: on the final state of seed 0, the logged propensity of every shown item is
  compared with a 100,000-draw reference (``benchmarks/propensity_reference.py``).

    python benchmarks/bench_quality.py --task bandit            # full: 3 seeds x 150 rounds x 40 visits
    python benchmarks/bench_quality.py --task bandit --quick    # smoke check

The last line is one JSON object: features, regret_static, regret_greedy, regret_best_ours, best_ours,
regret_best_mabwiser, cold_ctr_model_prior_over_flat_prior, new_clicks_best_over_greedy,
propensity_ref_over_logged_mean, propensity_within_2x_share, and the per-policy table.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from recsys.model_observer import ModelObservers
from recsys.policies import Context, Feedback, Policy, Slate, examination_weights, make_policy
from recsys.replay import (
    RECENT_CLICKS,
    Observation,
    Observer,
    ReplayResult,
    contexts_of,
    recent_category_shares,
    run_replay,
    without_prior,
    world_model,
)
from recsys.simulator import World

OURS: dict[str, tuple[str, dict]] = {
    "static": ("static", {}),
    "greedy": ("greedy", {}),
    "epsilon_greedy": ("epsilon_greedy", {}),
    "softmax": ("softmax", {}),
    "ucb1": ("ucb1", {"prior_strength": 10.0}),
    "thompson": ("thompson", {}),
    "thompson_flat_prior": ("thompson", {"prior_strength": 2.0}),
    "linucb": ("linucb", {}),
    "lints": ("lints", {}),
    "linear_greedy": ("linucb", {"alpha": 0.0}),
    "oracle_upper_bound": ("lints", {}),
}
"""Our policies by label: (registry name, fixed parameters; Monte-Carlo draws at the serving defaults,
so the propensity check measures what serving logs). thompson_flat_prior runs without the model
prior; oracle_upper_bound runs on the simulator's hidden features."""
GRID: dict[str, tuple[str, tuple[float, ...]]] = {
    "epsilon_greedy": ("epsilon", (0.01, 0.03, 0.1)),
    "softmax": ("temperature", (0.1, 0.25, 0.5)),
    "ucb1": ("c", (0.05, 0.2, 0.5)),
    "thompson": ("prior_strength", (5.0, 10.0, 30.0)),
    "thompson_flat_prior": ("prior_strength", (2.0,)),
    "linucb": ("alpha", (0.05, 0.2, 0.5)),
    "lints": ("scale", (0.05, 0.1, 0.3)),
    "oracle_upper_bound": ("scale", (0.05, 0.1, 0.3)),
}
"""The exploration rate each explorer is tuned over, on the tuning world."""
DIAGNOSTIC = {"static", "greedy", "linear_greedy", "thompson_flat_prior", "oracle_upper_bound"}
"""References and ablations: never the best of ours."""
MABWISER = {"mabwiser_ts": ("ThompsonSampling", {}), "mabwiser_linucb": ("LinUCB", {"alpha": 1.0}),
            "mabwiser_lints": ("LinTS", {"alpha": 1.0})}
"""MABWiser comparators: (LearningPolicy name, parameters); arms are item ids."""
LEARNS = {"greedy", "epsilon_greedy", "softmax", "ucb1", "thompson", "linucb", "lints"}


@dataclass
class Setting:
    """One benchmark run's sizes."""

    users: int
    items: int
    rounds: int
    batch: int
    seeds: int
    warmup: int
    days: int
    k: int = 10
    candidates: int = 100
    inject: int = 50
    cold_window: int = 20
    epochs: int = 2


def user_vectors(world: World, users: np.ndarray) -> np.ndarray:
    """MABWiser's user context: the model's mean click probability per category, recent-click shares, a bias."""
    n_cat = len(world.vocab.categories)
    counts = np.bincount(world.item_category, minlength=n_cat)
    taste = np.stack([np.bincount(world.item_category, weights=row, minlength=n_cat)
                      for row in world.prior_probs(users)]) / np.maximum(counts, 1)
    recent = [recent_category_shares(world, users, window) for window in (RECENT_CLICKS, 3)]
    return np.hstack([taste, *recent, np.ones((len(users), 1))])


class Mabwiser:
    """A MABWiser MAB behind our select/update interface (no propensities: that library has none)."""

    def __init__(self, label: str, learning: str, params: dict, seed: int) -> None:
        from mabwiser.mab import MAB, LearningPolicy

        self.name, self.contextual = label, learning in ("LinUCB", "LinTS")
        self.make = lambda arms: MAB(arms, getattr(LearningPolicy, learning)(**params), seed=seed)
        self.mab = None
        self.arms: set[int] = set()
        self.users: np.ndarray | None = None
        self.fitted = False

    def watching(self, observe: Observer) -> Observer:
        """Wrap the observer so each round's user vectors reach MABWiser's contextual models."""

        def observe_users(world: World, users: np.ndarray, candidates: np.ndarray) -> Observation:
            obs = observe(world, users, candidates)
            self.users = user_vectors(world, users) if obs.users is None else obs.users
            return obs

        return observe_users

    def _add_arms(self, item_ids: np.ndarray) -> None:
        for item in np.unique(item_ids):
            if int(item) not in self.arms:
                self.arms.add(int(item))
                if self.fitted:
                    self.mab.add_arm(int(item))

    def select_many(self, contexts: list[Context], k: int, rng: np.random.Generator) -> list[Slate]:
        """Top-k candidates by MABWiser's expectations (sampled for TS/LinTS), one slate per context."""
        self._add_arms(np.concatenate([c.item_ids for c in contexts]))
        if self.contextual:
            expectations = self.mab.predict_expectations(self.users)
            expectations = expectations if isinstance(expectations, list) else [expectations]
        else:
            expectations = [self.mab.predict_expectations() for _ in contexts]
        slates = []
        for ctx, expect in zip(contexts, expectations, strict=True):
            values = np.array([expect.get(int(i), 0.0) for i in ctx.item_ids])
            idx = np.argsort(-values, kind="stable")[:k]
            slates.append(Slate(idx, ctx.item_ids[idx], np.full(k, np.nan), np.zeros(k, bool), ctx.scores[idx]))
        return slates

    def update(self, fb: Feedback, users: np.ndarray | None = None) -> None:
        """``fit`` on the first batch (the warm-up log), ``partial_fit`` after; rows are shopper-major."""
        users = self.users if users is None else users
        self._add_arms(fb.item_ids)
        k = len(fb.item_ids) // len(users)
        contexts = np.repeat(users, k, axis=0) if self.contextual else None
        if not self.fitted:
            self.mab = self.make(sorted(self.arms))
            self.mab.fit(fb.item_ids, fb.rewards, contexts) if self.contextual else self.mab.fit(fb.item_ids, fb.rewards)
            self.fitted = True
        elif self.contextual:
            self.mab.partial_fit(fb.item_ids, fb.rewards, contexts)
        else:
            self.mab.partial_fit(fb.item_ids, fb.rewards)


def warmup_log(world: World, setting: Setting, seed: int, observe: Observer) -> tuple[Feedback, np.ndarray]:
    """Uniformly random slates shown to random shoppers in the initial world (which it leaves untouched)."""
    rng = np.random.default_rng([seed, 99])
    users = rng.choice(world.n_users, size=setting.warmup)
    candidates = np.stack([rng.choice(world.n_items, setting.candidates, replace=False) for _ in users])
    pick = np.stack([rng.permutation(setting.candidates)[: setting.k] for _ in users])
    slates = np.take_along_axis(candidates, pick, axis=1)
    clicks = rng.random(pick.shape) < world.click_probs(users, slates)
    obs = observe(world, users, candidates)
    rows = np.arange(len(users))[:, None]
    fb = Feedback(world.item_ids[slates].ravel(), clicks.astype(float).ravel(), np.tile(np.arange(setting.k), len(users)),
                  obs.features[rows, pick].reshape(-1, obs.features.shape[2]), obs.prior[rows, pick].ravel())
    return fb, user_vectors(world, users) if obs.users is None else obs.users


@dataclass
class Shop:
    """One seed's world on disk and what its policies see."""

    seed: int
    world_dir: Path
    observe: Callable[[World], Observer]
    """World -> Observer: the trained model's view (``ModelObservers``)."""


@dataclass
class Replayed:
    """One replay: its result, the examination weights it learned with, and the policy's final state."""

    result: ReplayResult
    theta: np.ndarray
    policy: Policy | None = None
    world: World | None = None
    observe: Observer | None = None
    extra: dict = field(default_factory=dict)


def make_shop(setting: Setting, seed: int, work: Path, model: str | None) -> Shop:
    """Simulate seed's shop with its logged history and fine-tune a model on it (or load ``model``)."""
    from recsys.simulator import SimulateConfig, simulate

    shop = simulate(SimulateConfig(out=work / f"seed{seed}" / "shop", users=setting.users, items=setting.items,
                                   days=setting.days, seed=seed, quiet=True))
    if model is None:
        from training.config import TrainConfig
        from training.trainer import fit

        model = fit(TrainConfig(data=shop, out=work / f"seed{seed}" / "model", workers=1, epochs=setting.epochs,
                                batch_size=128, storage_path=str(work / "ray_results"),
                                name=f"bandit-bench-seed{seed}-{time.time_ns()}", seed=seed, patience=setting.epochs,
                                log_every=1000)).model_dir
    return Shop(seed, shop / "world", ModelObservers(model))


def replay_one(label: str, params: dict, setting: Setting, shop: Shop, replay_seed: int | None = None) -> Replayed:
    """Replay one policy on a fresh copy of the shop's world."""
    world = World.load(shop.world_dir)
    seed = shop.seed if replay_seed is None else replay_seed
    observe = world_model if label == "oracle_upper_bound" else shop.observe(world)
    warm, warm_users = warmup_log(world, setting, seed, observe)
    theta = examination_weights(warm.positions, warm.rewards, warm.item_ids, method="ratio")
    if label in OURS:
        name, fixed = OURS[label]
        params = {**fixed, **params, **({"examination": tuple(theta)} if name in LEARNS else {})}
        policy = make_policy(name, **params)
        policy.update(warm)
        run_observe = without_prior(observe) if label == "thompson_flat_prior" else observe
    else:
        learning, fixed = MABWISER[label]
        policy = Mabwiser(label, learning, fixed, seed)
        policy.update(warm, warm_users)
        run_observe = policy.watching(observe)
    result = run_replay(world, policy, setting.rounds, setting.batch, seed, k=setting.k,
                        n_candidates=setting.candidates, inject_n=setting.inject,
                        cold_impressions=setting.cold_window, observe=run_observe)
    return Replayed(result, theta, policy if label in OURS else None, world, observe)


def tune(label: str, setting: Setting, shop: Shop) -> dict:
    """The grid value of ``label``'s exploration rate with the least regret on the tuning shop."""
    if label not in GRID:
        return {}
    param, values = GRID[label]
    regrets = {v: replay_one(label, {param: v}, setting, shop).result.cumulative_regret for v in values}
    return {param: min(regrets, key=regrets.get)}


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds (a single seed gives a zero-width interval)."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, mean, mean
    half = stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def propensity_figures(replays: dict[str, Replayed], setting: Setting, seed: int) -> dict:
    """Logged propensity vs a 100,000-draw reference on the final posteriors of the sampling policies."""
    from propensity_reference import reference_check

    out, ratios, within = {}, [], []
    for label in ("thompson", "lints", "softmax"):
        if label not in replays:
            continue
        rep = replays[label]
        rng = np.random.default_rng([seed, 7])
        users = rng.choice(rep.world.n_users, size=20, replace=False)
        candidates = np.stack([rng.choice(rep.world.n_items, setting.candidates, replace=False) for _ in users])
        contexts = contexts_of(rep.world, rep.observe(rep.world, users, candidates), candidates)
        check = reference_check(rep.policy, contexts, setting.k, seed)
        out[label] = check
        ratios.append(check["propensity_ref_over_logged_mean"])
        within.append(check["propensity_within_2x_share"])
    if not ratios:
        return {}
    return {"propensity_ref_over_logged_mean": round(float(np.mean(ratios)), 3),
            "propensity_within_2x_share": round(float(np.mean(within)), 3), "propensity": out}


def summarize(table: dict[str, dict], replays: dict[str, list[Replayed]]) -> dict:
    """The headline keys from the per-policy table."""
    ours = {k: v for k, v in table.items() if k in OURS and k not in DIAGNOSTIC}
    theirs = {k: v for k, v in table.items() if k in MABWISER}
    best_ours = min(ours, key=lambda k: ours[k]["regret"]) if ours else None
    best_theirs = min(theirs, key=lambda k: theirs[k]["regret"]) if theirs else None
    get = lambda label, key: table.get(label, {}).get(key)  # noqa: E731
    result = {
        "regret_static": get("static", "regret"),
        "regret_greedy": get("greedy", "regret"),
        "regret_best_ours": ours[best_ours]["regret"] if best_ours else None,
        "best_ours": best_ours,
        "best_ours_params": get(best_ours, "params"),
        "regret_best_mabwiser": theirs[best_theirs]["regret"] if best_theirs else None,
        "best_mabwiser": best_theirs,
        "regret_oracle_upper_bound": get("oracle_upper_bound", "regret"),
        "cold_ctr_model_prior_over_flat_prior": (round(table["thompson"]["cold_ctr"] / table["thompson_flat_prior"]["cold_ctr"], 3)
                                                 if {"thompson", "thompson_flat_prior"} <= table.keys() else None),
        "new_clicks_best_over_greedy": (round(table[best_ours]["new_clicks"] / table["greedy"]["new_clicks"], 3)
                                        if best_ours and "greedy" in table else None),
    }
    if result["regret_greedy"] and result["regret_static"]:
        result["greedy_over_static"] = round(result["regret_greedy"] / result["regret_static"], 3)
    if best_ours and result["regret_greedy"]:
        result["best_ours_over_greedy"] = round(result["regret_best_ours"] / result["regret_greedy"], 3)
    if best_ours and best_theirs:
        result["best_ours_over_best_mabwiser"] = round(result["regret_best_ours"] / result["regret_best_mabwiser"], 3)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny world, one seed: a smoke check")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tune-seed", type=int, default=100, help="world (and model) the exploration rates are tuned on")
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--batch", type=int, default=40, help="visits per round (every policy learns once per round)")
    parser.add_argument("--model", default=None, help="one trained model dir for every seed (default: train one per seed)")
    parser.add_argument("--policies", default=None, help="comma-separated labels to run (default: all)")
    parser.add_argument("--work", default="runs/bench-bandit", help="folder for the shops and models")
    parser.add_argument("--days", type=int, default=14, help="days of logged history each model trains on")
    parser.add_argument("--epochs", type=int, default=2, help="fine-tuning epochs of each model")
    args = parser.parse_args(argv)
    setting = (Setting(users=200, items=300, rounds=40, batch=10, seeds=1, warmup=150, days=7, inject=20,
                       cold_window=10, epochs=1)
               if args.quick else Setting(users=500, items=500, rounds=args.rounds, batch=args.batch,
                                          seeds=args.seeds, warmup=1000, days=args.days, epochs=args.epochs))
    labels = args.policies.split(",") if args.policies else [*OURS, *MABWISER]
    work = Path(args.work) / time.strftime("%Y%m%d-%H%M%S")
    started = time.perf_counter()
    shops = [make_shop(setting, seed, work, args.model) for seed in [args.tune_seed, *range(setting.seeds)]]
    train_s = time.perf_counter() - started
    table: dict[str, dict] = {}
    replays: dict[str, list[Replayed]] = {}
    with threadpool_limits(1):
        for label in labels:
            params = tune(label, setting, shops[0])
            runs = [replay_one(label, params, setting, shop) for shop in shops[1:]]
            replays[label] = runs
            mean, low, high = interval([r.result.cumulative_regret for r in runs])
            table[label] = {"regret": round(mean, 1), "ci_low": round(low, 1), "ci_high": round(high, 1),
                            "params": params,
                            "cold_ctr": round(float(np.nanmean([r.result.cold_ctr for r in runs])), 4),
                            "new_clicks": round(float(np.mean([r.result.new_clicks for r in runs])), 2),
                            "explored_share": round(float(np.mean([r.result.explored_share for r in runs])), 3),
                            "seconds": round(sum(r.result.seconds for r in runs), 1)}
            print(f"{label:20s} {json.dumps(table[label])}", flush=True)
        propensity = propensity_figures({k: v[0] for k, v in replays.items()}, setting, shops[1].seed)
    theta = next(iter(replays.values()))[0].theta
    result = {
        "features": "model",
        **summarize(table, replays),
        **{k: v for k, v in propensity.items() if k != "propensity"},
        "policies": table,
        "propensity": propensity.get("propensity"),
        "examination_fitted": [round(float(t), 3) for t in theta],
        "setting": vars(setting),
        "model": args.model or "trained per seed (MiniLM-L6, serendip train defaults, workers=1)",
        "train_seconds": round(train_s, 1),
        "seconds": round(time.perf_counter() - started, 1),
        "quick": args.quick,
    }
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
