"""Bandit quality in the simulated shop (issue 4): cumulative regret against the oracle and cold-start CTR.

Every policy (ours and MABWiser 2.7.4's) replays the same worlds, rounds, shoppers, candidates and
click draws (``recsys.replay.run_replay``, common random numbers per seed). The world has revealed
and latent interests, emerging categories, satiation and drift, and injects new products a third
of the way in. Regret is exact: the oracle's expected clicks minus the policy's, per visit.

What the policies see (``recsys.replay.world_model``, or with ``--model DIR`` a trained two-tower's
scores, calibrated prior and linear-policy features through ``recsys.model_observer``, as in the
sweep; the bench's worlds are not the model's training world, so only the text side carries over):
- the model's calibrated click probability (the world's ``prior_probs``: a perfect text model that
  knows logged tastes but not latent interests, satiation, drift or a product's own appeal);
- features for the linear policies: bias, that probability, the category one-hot, and the share of
  the shopper's last 10 and last 3 clicks in the category;
- position examination weights from the CTR ratios of a uniformly random warm-up log, which every
  learning policy (MABWiser's too) also learns from before the run.
MABWiser's contextual policies keep one model per item over a user vector (the model's mean click
probability per category, the recent-click shares, a bias), as that library is built to.

    python benchmarks/bench_quality.py --task bandit            # full: 3 seeds x 150 rounds x 40 visits
    python benchmarks/bench_quality.py --task bandit --quick    # smoke check

The last line is one JSON object: regret_greedy, regret_best_ours, best_ours, regret_best_mabwiser,
cold_ctr_model_prior_over_flat_prior, and the per-policy table.
"""

from __future__ import annotations

import argparse
import json
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy import stats
from threadpoolctl import threadpool_limits

from recsys.model_observer import ModelObservers
from recsys.policies import Context, Feedback, Slate, examination_weights, make_policy
from recsys.replay import (
    RECENT_CLICKS,
    Observation,
    Observer,
    ReplayResult,
    recent_category_shares,
    run_replay,
    without_prior,
    world_model,
)
from recsys.simulator import World, WorldConfig

OURS: dict[str, tuple[str, dict]] = {
    "greedy": ("greedy", {}),
    "epsilon_greedy": ("epsilon_greedy", {"epsilon": 0.05}),
    "softmax": ("softmax", {"temperature": 0.5, "n_draws": 10}),
    "ucb1": ("ucb1", {"prior_strength": 10.0, "c": 0.5}),
    "thompson": ("thompson", {"prior_strength": 10.0, "n_draws": 10}),
    "thompson_flat_prior": ("thompson", {"prior_strength": 2.0, "n_draws": 10}),
    "linucb": ("linucb", {"alpha": 0.2}),
    "lints": ("lints", {"scale": 0.1, "n_draws": 10}),
    "linear_greedy": ("linucb", {"alpha": 0.0}),
}
"""Our policies by label: (registry name, parameters). thompson_flat_prior runs without the model prior."""
DIAGNOSTIC = {"greedy", "linear_greedy"}
"""Non-exploring references: excluded from best_ours (linear_greedy isolates what exploration adds)."""
MABWISER = {"mabwiser_ts": ("ThompsonSampling", {}), "mabwiser_linucb": ("LinUCB", {"alpha": 1.0}),
            "mabwiser_lints": ("LinTS", {"alpha": 1.0})}
"""MABWiser comparators: (LearningPolicy name, parameters); arms are item ids."""
LEARNS = {"ucb1", "thompson", "linucb", "lints"}


@dataclass
class Setting:
    """One benchmark run's sizes."""

    users: int
    items: int
    rounds: int
    batch: int
    seeds: int
    warmup: int
    k: int = 10
    candidates: int = 100
    inject: int = 50
    cold_window: int = 20


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
            self.users = user_vectors(world, users)
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
    return fb, user_vectors(world, users)


def replay_one(label: str, setting: Setting, seed: int, observer: Callable[[World], Observer] | None = None
               ) -> tuple[ReplayResult, np.ndarray]:
    """Replay one policy on a fresh world of ``seed``; returns the result and the fitted examination weights."""
    cfg = WorldConfig(users=setting.users, items=setting.items, seed=seed)
    world = World.create(cfg)
    observe = world_model if observer is None else observer(world)
    warm, warm_users = warmup_log(world, setting, seed, observe)
    theta = examination_weights(warm.positions, warm.rewards, warm.item_ids, method="ratio")
    if label in OURS:
        name, params = OURS[label]
        params = {**params, "examination": tuple(theta)} if name in LEARNS else params
        policy = make_policy(name, **params)
        policy.update(warm)
        run_observe = without_prior(observe) if label == "thompson_flat_prior" else observe
    else:
        learning, params = MABWISER[label]
        policy = Mabwiser(label, learning, params, seed)
        policy.update(warm, warm_users)
        run_observe = policy.watching(observe)
    result = run_replay(world, policy, setting.rounds, setting.batch, seed, k=setting.k,
                        n_candidates=setting.candidates, inject_n=setting.inject,
                        cold_impressions=setting.cold_window, observe=run_observe)
    return result, theta


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval over seeds (a single seed gives a zero-width interval)."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, mean, mean
    half = stats.t.ppf(0.975, len(values) - 1) * np.std(values, ddof=1) / math.sqrt(len(values))
    return mean, mean - half, mean + half


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="tiny world, one seed: a smoke check")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=150)
    parser.add_argument("--batch", type=int, default=40, help="visits per round (every policy learns once per round)")
    parser.add_argument("--model", default=None, help="trained two-tower model dir (default: the world's own prior)")
    parser.add_argument("--policies", default=None, help="comma-separated labels to run (default: all)")
    args = parser.parse_args(argv)
    setting = (Setting(users=200, items=300, rounds=40, batch=10, seeds=1, warmup=150, inject=20, cold_window=10)
               if args.quick else Setting(users=500, items=500, rounds=args.rounds, batch=args.batch,
                                          seeds=args.seeds, warmup=1000))
    observer = ModelObservers(args.model) if args.model else None
    labels = args.policies.split(",") if args.policies else [*OURS, *MABWISER]
    table: dict[str, dict] = {}
    with threadpool_limits(1):
        for label in labels:
            runs = [replay_one(label, setting, seed, observer) for seed in range(setting.seeds)]
            mean, low, high = interval([r.cumulative_regret for r, _ in runs])
            cold = float(np.nanmean([r.cold_ctr for r, _ in runs]))
            table[label] = {"regret": round(mean, 1), "ci_low": round(low, 1), "ci_high": round(high, 1),
                            "cold_ctr": round(cold, 4), "explored_share": round(float(np.mean([r.explored_share for r, _ in runs])), 3),
                            "seconds": round(sum(r.seconds for r, _ in runs), 1)}
            print(f"{label:20s} {json.dumps(table[label])}", flush=True)
    theta = runs[0][1]
    ours = {k: v for k, v in table.items() if k in OURS and k not in DIAGNOSTIC}
    theirs = {k: v for k, v in table.items() if k in MABWISER}
    best_ours = min(ours, key=lambda k: ours[k]["regret"]) if ours else None
    best_theirs = min(theirs, key=lambda k: theirs[k]["regret"]) if theirs else None
    result = {
        "regret_greedy": table.get("greedy", {}).get("regret"),
        "regret_best_ours": ours[best_ours]["regret"] if best_ours else None,
        "best_ours": best_ours,
        "regret_best_mabwiser": theirs[best_theirs]["regret"] if best_theirs else None,
        "best_mabwiser": best_theirs,
        "cold_ctr_model_prior_over_flat_prior": (round(table["thompson"]["cold_ctr"] / table["thompson_flat_prior"]["cold_ctr"], 3)
                                                 if {"thompson", "thompson_flat_prior"} <= table.keys() else None),
        "policies": table,
        "examination_fitted": [round(float(t), 3) for t in theta],
        "setting": vars(setting),
        "observer": args.model or "world_model",
        "quick": args.quick,
    }
    if best_ours and "greedy" in table:
        result["best_ours_over_greedy"] = round(result["regret_best_ours"] / result["regret_greedy"], 3)
    if best_ours and best_theirs:
        result["best_ours_over_best_mabwiser"] = round(result["regret_best_ours"] / result["regret_best_mabwiser"], 3)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
