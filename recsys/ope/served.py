"""Off-policy evaluation of any policy on a served log, by recomputing it on the logged decisions.

The served log (``recsys.data.served_log``) keeps, for every slate, each candidate the logging
policy ranked with the model's score and calibrated prior, the model version and the user vector.
A target policy is replayed on those contexts in serving order: for each slate it gives its
probability of every shown item at its position (``Policy.action_distribution``), then it learns
from that slate's rewards, as it would have online. It learns from every arm's slates, or with
``learn_from`` only from one arm's, which is how each served arm checks itself: its estimate on the
whole log must cover its own on-policy value (the mean reward of its rows). With ``window_s`` the
replay learns on serving's clock: a click teaches the policy from the next slate on, an unclicked
slot only once its reward window has closed (the bandit teaches reward 0 at expiry), so an arm's
replay ranks as the arm did online.

Linear policies need the model's item vectors to rebuild ``[1, prior, u * v]`` from the logged user
vector: pass the model directory that served the log (and the state directory's ``catalog/`` for
products added while serving). DR and SNDR use a small reward model cross-fitted on the log:
logistic regression on the candidate's model log-odds and its position (Dudík, Langford & Li 2011).
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.special import expit, logit

from recsys.ope.estimators import RewardPredictions, estimate
from recsys.policies import Arm, Context, Feedback, Policy, linear_policy_features
from recsys.policies.linear import LinearPolicy

ESTIMATORS = ("ips", "snips", "dr", "sndr")
"""The estimators that apply to a served log (replay needs a uniform logger; DM is DR's biased half)."""


class ServedLogError(ValueError):
    """A served log cannot answer the question asked; the message says why and what to pass."""


@dataclass
class Slate:
    """One logged slate: its decision context and the rows it showed."""

    arm: str
    context: Context
    user_vector: np.ndarray | None
    rows: np.ndarray
    """Row indices into the impressions table, position order."""
    shown: np.ndarray
    """Candidate index of each shown item."""


@dataclass
class ItemVectors:
    """Item vectors by id: the model's table plus products added while serving."""

    ids: np.ndarray
    vectors: np.ndarray

    @classmethod
    def load(cls, model_dir: Path, catalog_dir: Path | None) -> ItemVectors:
        """The model's item table, overridden by the catalog's versions in order (later wins)."""
        from safetensors.numpy import load_file

        from recsys.model import load_item_table

        table = load_item_table(model_dir)
        ids, vectors = [table.item_ids], [table.vectors]
        for path in sorted(Path(catalog_dir).glob("v*.safetensors")) if catalog_dir else []:
            arrays = load_file(str(path))
            ids.append(arrays["item_ids"]), vectors.append(arrays["vectors"])
        all_ids, all_vecs = np.concatenate(ids), np.concatenate(vectors)
        _, last = np.unique(all_ids[::-1], return_index=True)
        keep = len(all_ids) - 1 - last
        return cls(all_ids[keep], all_vecs[keep])

    def of(self, item_ids: np.ndarray) -> np.ndarray:
        pos = np.clip(np.searchsorted(self.ids, item_ids), 0, len(self.ids) - 1)
        missing = self.ids[pos] != item_ids
        if missing.any():
            raise ServedLogError(f"item {int(item_ids[missing][0])} of the log has no vector in the model or the "
                                 "catalog; pass the model that served the log and the state directory's catalog/")
        return self.vectors[pos]


def slates_of(impressions: pd.DataFrame, decisions: pd.DataFrame | None, vectors: ItemVectors | None) -> list[Slate]:
    """The log's slates in serving order, each with its context (features when ``vectors`` is given)."""
    if decisions is None:
        raise ServedLogError("this served log has no decision contexts (_decisions/); it was written before "
                             "they were logged, so only 'logged' and 'uniform' can be evaluated on it")
    rows_of = impressions.groupby("impression_id", sort=False).indices
    slates = []
    for d in decisions.itertuples(index=False):
        rows = rows_of.get(d.impression_id)
        if rows is None:  # the slate's rows are in a part not written yet
            continue
        rows = rows[np.argsort(impressions["position"].to_numpy()[rows])]
        ids = np.asarray(d.candidate_ids, dtype=np.int64)
        prior = None if d.candidate_prior is None else np.asarray(d.candidate_prior, dtype=np.float64)
        user = None if d.user_vector is None else np.asarray(d.user_vector, dtype=np.float32)
        features = None
        if vectors is not None and user is not None:
            features = linear_policy_features(user, vectors.of(ids), prior)
        ctx = Context(ids, np.asarray(d.candidate_scores, dtype=np.float64), features, prior)
        index = {int(item): c for c, item in enumerate(ids)}
        shown = np.asarray([index[int(i)] for i in impressions["item_id"].to_numpy()[rows]])
        slates.append(Slate(d.policy, ctx, user, rows, shown))
    return slates


def candidate_signal(ctx: Context) -> np.ndarray:
    """The reward model's input per candidate: the model's log-odds (its score when uncalibrated)."""
    return ctx.scores if ctx.prior is None else logit(np.clip(ctx.prior, 1e-6, 1 - 1e-6))


def fit_reward_model(slates: list[Slate], impressions: pd.DataFrame, folds: int = 5, seed: int = 0):
    """Cross-fitted q(slate, candidate, position): one logistic regression per fold on (log-odds, position)."""
    from sklearn.linear_model import LogisticRegression

    k = int(impressions["position"].max()) + 1
    rewards = (impressions["reward"].to_numpy() > 0).astype(int)
    fold = np.random.default_rng(seed).integers(folds, size=len(slates))
    x_rows, y_rows, f_rows = [], [], []
    for s, slate in enumerate(slates):
        signal = candidate_signal(slate.context)[slate.shown]
        x_rows.append(np.column_stack([signal, np.eye(k)[np.arange(len(slate.rows))]]))
        y_rows.append(rewards[slate.rows]), f_rows.append(np.full(len(slate.rows), fold[s]))
    x, y, f = np.vstack(x_rows), np.concatenate(y_rows), np.concatenate(f_rows)
    models = []
    for held in range(folds):
        train = f != held
        if len(np.unique(y[train])) < 2:
            raise ServedLogError("the log has no clicks (or only clicks) outside one fold; serve longer before "
                                 "evaluating with DR, or pass --estimators ips snips")
        models.append(LogisticRegression(C=1.0).fit(x[train], y[train]))

    def predict(s: int, slate: Slate) -> np.ndarray:
        """(n_candidates, positions) predicted reward of every candidate at every shown position."""
        model = models[fold[s]]
        signal, n = candidate_signal(slate.context), slate.context.n
        pos = len(slate.rows)
        grid = np.column_stack([np.repeat(signal, pos), np.tile(np.eye(k)[np.arange(pos)], (n, 1))])
        return expit(grid @ model.coef_[0] + model.intercept_[0]).reshape(n, pos)

    return predict


@dataclass
class TargetRows:
    """A target's probabilities and reward-model predictions on every logged row."""

    propensity: np.ndarray
    q_logged: np.ndarray
    q_target: np.ndarray


def replay_target(policy: Policy, slates: list[Slate], n_rows: int, impressions: pd.DataFrame, predict,
                  learn_from: str | None = None, seed: int = 0, window_s: float = 0.0) -> TargetRows:
    """Replay ``policy`` over the slates: its probabilities on each row, learning as it goes (unclicked
    slots ``window_s`` after their slate, as serving's reward window does; 0: at once)."""
    if isinstance(policy, LinearPolicy) and slates and slates[0].context.features is None:
        raise ServedLogError(f"{policy.name} reads linear features; pass --model (the model that served the log) "
                             "so they can be rebuilt from the logged user vectors")
    out = TargetRows(np.zeros(n_rows), np.zeros(n_rows), np.zeros(n_rows))
    rewards, rng = impressions["reward"].to_numpy(dtype=np.float64), np.random.default_rng(seed)
    issued = impressions["ts"].to_numpy("datetime64[ms]").astype(np.int64)
    waiting: list[tuple[int, int, Feedback]] = []  # (due ms, order, feedback): unclicked slots in their window
    for s, slate in enumerate(slates):
        while waiting and waiting[0][0] <= issued[slate.rows[0]]:
            policy.update(heapq.heappop(waiting)[2])
        pos = len(slate.rows)
        dist = policy.action_distribution(slate.context, pos, rng)
        q = predict(s, slate) if predict is not None else np.zeros((slate.context.n, pos))
        out.propensity[slate.rows] = dist[slate.shown, np.arange(pos)]
        out.q_logged[slate.rows] = q[slate.shown, np.arange(pos)]
        out.q_target[slate.rows] = (dist * q).sum(axis=0)
        if learn_from is None or slate.arm == learn_from:
            ctx, r = slate.context, rewards[slate.rows]
            later = (r <= 0) if window_s > 0 else np.zeros(pos, dtype=bool)
            for part, due in ((~later, None), (later, issued[slate.rows[0]] + round(1000 * window_s))):
                if not part.any():
                    continue
                shown = slate.shown[part]
                fb = Feedback(ctx.item_ids[shown], r[part], np.arange(pos)[part],
                              None if ctx.features is None else ctx.features[shown],
                              None if ctx.prior is None else ctx.prior[shown])
                if due is None:
                    policy.update(fb)
                else:
                    heapq.heappush(waiting, (due, s, fb))
    return out


@dataclass
class ServedEvaluation:
    """A served log made ready once (slates, reward model) for estimating many targets on it.

    With every served arm's policy known (``pool``), the logging propensity of each row becomes the
    arms' traffic-weighted mixture, sum_k share_k pi_k(a | x): the balanced estimator for data from
    several loggers (Agarwal, Basu, Schnabel & Joachims, KDD 2017; the balance heuristic of Veach &
    Guibas 1995). Arms split shoppers by a hash of the user, independent of their context, so the
    mixture is a valid logging policy; its weights stay bounded where one arm showed an item only
    through its floor but another arm shows it often, which is what sinks per-arm IPS on a log
    where a near-deterministic arm sits beside an exploring one.
    """

    impressions: pd.DataFrame
    """The rows whose slate has a decision context, in serving order."""
    slates: list[Slate]
    predict: object | None
    """Cross-fitted reward model ``predict(slate_index, slate)``, or None when no DR-type estimator runs."""
    seed: int = 0
    logging: np.ndarray | None = None
    """The pooled logging propensity of every row once ``pool`` ran; None: each row's logged propensity."""
    _replays: dict = field(default_factory=dict, repr=False)

    @classmethod
    def prepare(cls, impressions: pd.DataFrame, decisions: pd.DataFrame | None, vectors: ItemVectors | None = None,
                estimators: tuple[str, ...] = ESTIMATORS, seed: int = 0) -> ServedEvaluation:
        """Join rows to their decision contexts and fit the reward model once."""
        slates = slates_of(impressions, decisions, vectors)
        if not slates:
            raise ServedLogError("no slate of the log has both its rows and its decision context; serve longer")
        keep = np.sort(np.concatenate([s.rows for s in slates]))  # rows whose decision part is written
        renumber = np.full(len(impressions), -1)
        renumber[keep] = np.arange(len(keep))
        impressions = impressions.iloc[keep].reset_index(drop=True)
        for slate in slates:
            slate.rows = renumber[slate.rows]
        predict = fit_reward_model(slates, impressions, seed=seed) if {"dr", "sndr"} & set(estimators) else None
        return cls(impressions, slates, predict, seed)

    def online_value(self, arm: str) -> float:
        """Mean reward of the rows ``arm`` served (its on-policy value)."""
        rewards = self.impressions["reward"].to_numpy(dtype=np.float64)
        return float(rewards[self.impressions["policy"].to_numpy() == arm].mean())

    def replay(self, spec: str, learn_from: str | None = None, window_s: float = 0.0) -> TargetRows:
        """``replay_target`` of the policy ``spec`` (cached: a served arm's replay serves its self-check too)."""
        key = (spec, learn_from, window_s)
        if key not in self._replays:
            self._replays[key] = replay_target(Arm.parse(spec).build(), self.slates, len(self.impressions),
                                               self.impressions, self.predict, learn_from, self.seed, window_s)
        return self._replays[key]

    def pool(self, arms: dict[str, str], window_s: float = 0.0) -> bool:
        """Pool the logging propensities over the served ``arms`` ({name: policy spec}); False (and no
        change) when some arm of the log is missing from ``arms``. Each arm's own rows keep the
        propensity it logged; the other arms' probabilities come from replaying their policies."""
        served = self.impressions["policy"].to_numpy()
        if not set(np.unique(served)) <= set(arms):
            return False
        slate_arms = np.array([s.arm for s in self.slates])
        logged = self.impressions["propensity"].to_numpy(dtype=np.float64)
        pooled = np.zeros(len(logged))
        for arm, spec in arms.items():
            share = float(np.mean(slate_arms == arm))
            if share:
                pooled += share * np.where(served == arm, logged, self.replay(spec, arm, window_s).propensity)
        self.logging = pooled
        return True

    def estimate(self, spec: str, estimators: tuple[str, ...], learn_from: str | None = None,
                 clip: float | None = None, n_boot: int = 1000, alpha: float = 0.05, window_s: float = 0.0) -> list:
        """``recsys.ope.estimators.Estimate`` of the target ``spec`` for each estimator."""
        imp = self.impressions
        target = self.replay(spec, learn_from, window_s)
        logging = imp["propensity"].to_numpy(dtype=np.float64) if self.logging is None else self.logging
        pred = None if self.predict is None else RewardPredictions(target.q_logged, target.q_target)
        return [estimate(e, imp["reward"].to_numpy(dtype=np.float64), logging, target.propensity, pred,
                         positions=imp["position"].to_numpy(), clip=clip, n_boot=n_boot, seed=self.seed,
                         clusters=imp["impression_id"].to_numpy(), alpha=alpha)
                for e in estimators]


def arm_targets(specs: Sequence[str]) -> dict[str, str]:
    """The served arms named as ``NAME=POLICY[:param=value,...][@WEIGHT]`` -> {arm name: policy spec}
    (the weight is left out: pooling weighs each arm by its share of the log's slates)."""
    arms = [Arm.parse(spec) for spec in specs]
    return {arm.name: arm.spec(served=False) for arm in arms}


def evaluate_served(impressions: pd.DataFrame, decisions: pd.DataFrame | None, policies: tuple[str, ...],
                    arms: dict[str, str] | None = None, vectors: ItemVectors | None = None,
                    estimators: tuple[str, ...] = ESTIMATORS, clip: float | None = None, n_boot: int = 1000,
                    seed: int = 0, alpha: float = 0.05, window_s: float = 0.0) -> pd.DataFrame:
    """One row per (target, estimator); ``arms`` ({arm name: policy spec}) adds each served arm's
    self-check: its estimate learning from its own slates, beside its on-policy value and the error.
    ``window_s``: the reward window the log was served with (see ``replay_target``)."""
    served = ServedEvaluation.prepare(impressions, decisions, vectors, estimators, seed)
    pooled = served.pool(arms or {}, window_s)
    jobs = [(spec, spec, None) for spec in policies]
    jobs += [(f"arm:{arm}", spec, arm) for arm, spec in (arms or {}).items()]
    table = []
    for label, spec, arm in jobs:
        online = served.online_value(arm) if arm else float("nan")
        for est in served.estimate(spec, estimators, arm, clip, n_boot, alpha, window_s):
            table.append({"policy": label, "spec": spec, "estimator": est.name, "value": est.value,
                          "ci_low": est.ci_low, "ci_high": est.ci_high, "ess": est.ess, "events": est.events,
                          "n": est.n, "online": online,
                          "rel_error": abs(est.value - online) / online if arm and online > 0 else float("nan"),
                          "covers": bool(est.ci_low <= online <= est.ci_high) if arm else None,
                          "logging": "pooled over arms" if pooled else "logged"})
    return pd.DataFrame(table)
