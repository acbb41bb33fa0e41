"""The offline objective: a policy's off-policy value on a logged impression file, by its lower
confidence bound, and never trusted on too small an effective sample size.

It reuses ``recsys.ope`` unchanged: ``read_table`` validates the log (propensities included),
``cross_fit`` fits the reward model once in the driver, and each trial builds its target with
``build_target`` and estimates it with ``evaluate_log``: the same code as ``serendip evaluate``.
A served log directory (``recsys.data.served_log``) is evaluated on its decision contexts instead
(``recsys.ope.served``): every policy, the linear ones included with ``--model``, is replayed on
what serving logged.
Optimizing the lower bound of a 95% interval rather than the point estimate keeps the sweep from
rewarding a lucky, high-variance policy (the pessimism of Swaminathan & Joachims 2015, CRM).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from recsys.policies import Arm, ArmError
from tuning.objective import Objective, ObjectiveInputError

NEEDS_FEATURES = ("linucb", "lints")
"""Policies that rank by per-item features, which a plain impressions log does not carry."""


@dataclass
class OfflineConfig:
    """How the offline objective estimates each trial's value."""

    estimator: Literal["dr", "sndr", "snips", "ips"] = "dr"
    """Estimator whose lower confidence bound is the objective (DR: Dudik et al. 2011; SNIPS: Swaminathan & Joachims 2015)."""
    min_ess: float = 100.0
    """Smallest effective sample size (Kish) of the importance weights a pick may rest on."""
    clip: float | None = None
    """Cap on importance weights (None: no clipping)."""
    n_boot: int = 300
    """Bootstrap resamples of the interval."""
    alpha: float = 0.05
    """1 - confidence level; the objective is the interval's lower end."""
    reward_model: Literal["logistic", "hgb"] = "logistic"
    """Cross-fitted reward model behind DR and behind the policies' ranking scores."""
    strength: float = 0.1
    """Inverse L2 strength of the logistic reward model."""
    folds: int = 5
    """Folds of the reward model's cross-fitting."""
    seed: int = 0
    """Seed of folds, bootstrap and Monte-Carlo propensities."""
    arm: tuple[str, ...] = ()
    """Served logs: NAME=POLICY[:param=value,...] per served arm; with every arm named the logging propensities
    are pooled over the arms (balanced IPS), which keeps weights bounded on a log with near-deterministic arms."""
    reward_window_s: float = 3600.0
    """Served logs: the server's reward window (ServeConfig.reward_window_s); replays learn on that clock."""

    def __post_init__(self) -> None:
        for spec in self.arm:
            try:
                Arm.parse(spec)
            except ArmError as err:
                raise ObjectiveInputError(f"--offline.arm: {err}") from None
        if self.n_boot < 50:
            raise ObjectiveInputError(f"--offline.n-boot={self.n_boot}: the lower bound needs at least 50 resamples")
        if not self.min_ess > 0:
            raise ObjectiveInputError(f"--offline.min-ess={self.min_ess}: must be > 0")
        if not 0 < self.alpha < 1:
            raise ObjectiveInputError(f"--offline.alpha={self.alpha}: must be in (0, 1)")


@dataclass
class LogObjective(Objective):
    """Lower confidence bound of an off-policy estimate on a logged impressions table."""

    log: Path
    """Impressions file (.parquet or .csv), or a served log directory."""
    model: Path | None
    """Checked to load; on a served log, the model that served it (linear policies rebuild features from it);
    on an impressions file, rankings come from the cross-fitted reward model (the file has no contexts)."""
    cfg: OfflineConfig = field(default_factory=OfflineConfig)
    """Estimator settings."""
    prepared: dict | None = None
    """Arrays prepared once in the driver by :meth:`check` and shipped to every trial."""

    metric = "lcb"
    mode = "max"
    reward_label = "estimated reward per shown item (off-policy)"

    def describe(self) -> str:
        """What the sweep optimizes."""
        return (f"offline: {self.cfg.estimator.upper()} lower {100 * (1 - self.cfg.alpha):.0f}% bound on {self.log} "
                f"(picks need ESS >= {self.cfg.min_ess:g})")

    @property
    def served(self) -> bool:
        """Whether ``log`` is a served log directory (with decision contexts)."""
        return Path(self.log).is_dir()

    def check(self, policies: tuple[str, ...] = ()) -> None:
        """Validate the log (propensities included) and the model, and cross-fit the reward model."""
        from recsys.data import read_table
        from recsys.ope import RewardModelConfig, cross_fit
        from recsys.ope.features import impression_features, item_index

        if self.served:
            self._prepare_served(policies)
            return
        featured = [p for p in policies if p in NEEDS_FEATURES]
        if featured:
            raise ObjectiveInputError(
                f"offline objective: {featured} rank by per-item features, which an impressions log does not "
                "carry; drop them from --policies or use --world"
            )
        if self.model is not None:
            check_model(self.model)
        if not Path(self.log).exists():
            raise ObjectiveInputError(f"--log {self.log}: no such file; pass an impressions .parquet or .csv, "
                                      "or a served log directory")
        try:
            impressions = read_table(self.log, "impressions")
        except ValueError as err:
            raise ObjectiveInputError(f"--log {self.log} cannot be used: {err}") from err
        if impressions.empty:
            raise ObjectiveInputError(f"--log {self.log}: no rows; log some impressions first")
        item_ids = np.unique(impressions["item_id"].to_numpy())
        actions = item_index(item_ids, impressions["item_id"].to_numpy(), str(self.log))
        feats, categorical = impression_features(impressions, item_ids)
        rewards = impressions["reward"].to_numpy(dtype=np.float64)
        model = RewardModelConfig(kind=self.cfg.reward_model, folds=self.cfg.folds, strength=self.cfg.strength,
                                  categorical=categorical, seed=self.cfg.seed)
        q_hat = cross_fit(feats, actions, rewards, model)
        self.prepared = {"impressions": impressions, "item_ids": item_ids, "actions": actions, "q_hat": q_hat}

    def _prepare_served(self, policies: tuple[str, ...]) -> None:
        """Read the served log, join its decision contexts and fit the reward model once."""
        from recsys.data.served_log import read_served_log
        from recsys.ope.served import ItemVectors, ServedEvaluation, arm_targets

        if self.model is None and any(p in NEEDS_FEATURES for p in policies):
            raise ObjectiveInputError(f"offline objective: {[p for p in policies if p in NEEDS_FEATURES]} rebuild "
                                      "their features from the model that served the log; pass --model")
        if self.model is not None:
            check_model(self.model)
        try:
            impressions, decisions = read_served_log(self.log)
            catalog = Path(self.log).parent / "catalog"
            vectors = ItemVectors.load(self.model, catalog if catalog.is_dir() else None) if self.model else None
            served = ServedEvaluation.prepare(impressions, decisions, vectors, (self.cfg.estimator,), self.cfg.seed)
            served.pool(arm_targets(self.cfg.arm), self.cfg.reward_window_s)
        except (ValueError, FileNotFoundError) as err:
            raise ObjectiveInputError(f"--log {self.log} cannot be used: {err}") from err
        if served.impressions.empty:
            raise ObjectiveInputError(f"--log {self.log}: no rows; log some impressions first")
        self.prepared = {"served": served}

    def evaluate(self, arm: Arm) -> dict:
        """The arm's estimate on the log: value, interval, lower bound and ESS."""
        from recsys.ope import build_target, evaluate_log

        if self.prepared is None:
            self.check((arm.policy,))
        data = self.prepared
        spec = arm.spec(served=False)
        if "served" in data:
            est = data["served"].estimate(spec, (self.cfg.estimator,), clip=self.cfg.clip, n_boot=self.cfg.n_boot,
                                          alpha=self.cfg.alpha, window_s=self.cfg.reward_window_s)[0]
            return {"lcb": est.ci_low, "reward": est.value, "reward_low": est.ci_low, "reward_high": est.ci_high,
                    "ess": est.ess, "n": est.n}
        impressions = data["impressions"]
        positions = impressions["position"].to_numpy()
        target = build_target(spec, q_hat=data["q_hat"], actions=data["actions"], positions=positions,
                              propensity=impressions["propensity"].to_numpy(), n_items=data["item_ids"].shape[0],
                              item_ids=data["item_ids"], seed=self.cfg.seed)
        row = evaluate_log(impressions, target, q_hat=data["q_hat"], actions=data["actions"],
                           estimators=(self.cfg.estimator,), clip=self.cfg.clip, n_boot=self.cfg.n_boot,
                           seed=self.cfg.seed, alpha=self.cfg.alpha).iloc[0]
        return {"lcb": float(row["ci_low"]), "reward": float(row["value"]), "reward_low": float(row["ci_low"]),
                "reward_high": float(row["ci_high"]), "ess": float(row["ess"]), "n": int(row["n"])}

    def eligible(self, metrics: dict) -> tuple[bool, str]:
        """Only estimates resting on at least ``min_ess`` effective samples may be picked."""
        ess = metrics.get("ess", math.nan)
        if not ess >= self.cfg.min_ess:
            return False, f"ESS {ess:.0f} < min_ess {self.cfg.min_ess:g}: too few effective samples to trust"
        return True, ""


def check_model(model: Path) -> None:
    """Load the model directory once, or raise naming the directory and the cause."""
    from recsys.model import TwoTower

    try:
        TwoTower.from_pretrained(model)
    except Exception as err:  # any failure to load is the same user error: a bad --model
        raise ObjectiveInputError(
            f"--model {model} does not load as a Serendip model ({type(err).__name__}: {err}); "
            "pass a directory written by `serendip train` or `serendip tune hparams`"
        ) from err
