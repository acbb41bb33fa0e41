"""``serendip evaluate``: off-policy estimates of candidate policies on a logged impressions file,
on a served log directory, or on the Open Bandit Dataset.

    serendip evaluate --log impressions.parquet --policy logged uniform softmax:temperature=0.5
    serendip evaluate --log runs/serve-state/impressions --policy greedy thompson \
        --arm control=greedy --model runs/model          # a served log: any policy, replayed on its contexts
    serendip evaluate --obd ../shared/data/obd --obd-policy random --policy greedy softmax:temperature=1

Prints one row per (policy, estimator): value, 95% interval, effective sample size.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from recsys.ope.estimators import ESTIMATORS, NEEDS_REWARD_MODEL
from recsys.ope.features import impression_features, item_index, obd_features
from recsys.ope.log_evaluation import evaluate_log
from recsys.ope.reward_model import KINDS, RewardModelConfig, cross_fit
from recsys.ope.targets import BUILT_IN, build_target
from recsys.policies import Arm, ArmError


@dataclass
class EvaluateConfig:
    """Off-policy evaluation of candidate policies on one logged impressions table."""

    log: Path | None = None
    """Impressions table (.parquet or .csv), or a served log directory (``recsys.data.served_log``)."""
    obd: Path | None = None
    """An Open Bandit Dataset folder (holding random/ and bts/) to read instead of --log."""
    obd_policy: Literal["random", "bts"] = "random"
    """Which OBD log to evaluate on: 'random' or 'bts'."""
    policy: tuple[str, ...] = ("logged", "uniform")
    """Candidate policies: 'logged', 'uniform', or recsys.policies names with params (softmax:temperature=0.5)."""
    estimators: tuple[str, ...] = ()
    """Estimators to run (replay ips snips dm dr sndr); empty runs every one that applies to the log."""
    clip: float | None = None
    """Cap on importance weights (None: no clipping)."""
    n_boot: int = 1000
    """Bootstrap resamples per interval (0 skips intervals)."""
    alpha: float = 0.05
    """1 - confidence level of the intervals."""
    reward_model: Literal["logistic", "hgb"] = "logistic"
    """Reward model behind DM/DR and the model-ranked policies: 'logistic' or 'hgb'."""
    strength: float = 0.1
    """Inverse L2 strength of the logistic reward model (few clicks want a small value)."""
    folds: int = 5
    """Folds of the reward model's cross-fitting."""
    by_position: bool = False
    """Also print each estimator per slate position."""
    seed: int = 0
    """Seed of folds, bootstrap and Monte-Carlo propensities."""
    out: Path | None = None
    """Also write the table to this .csv or .json file."""
    model: Path | None = None
    """Served logs: the model that served the log (linear policies rebuild their features from it)."""
    catalog: Path | None = None
    """Served logs: the state directory's catalog/ of products added while serving (default: beside the log)."""
    arm: tuple[str, ...] = ()
    """Served logs: each served arm as NAME=POLICY[:param=value,...] (e.g. control=greedy picked=ucb1:c=0.05, the
    ``serendip serve --arms`` form; a weight is ignored): each checks itself, and with every arm named the logging
    propensities are pooled over the arms (balanced IPS)."""
    reward_window_s: float = 3600.0
    """Served logs: the server's reward window (ServeConfig.reward_window_s); replays learn on that clock."""

    def __post_init__(self):
        if (self.log is None) == (self.obd is None):
            raise ValueError(
                "EvaluateConfig: pass exactly one of --log (an impressions file) or --obd (an OBD folder)"
            )
        unknown = [e for e in self.estimators if e not in ESTIMATORS]
        if unknown:
            raise ValueError(
                f"EvaluateConfig.estimators: unknown {unknown}; choose from {', '.join(ESTIMATORS)}"
            )
        if not self.policy:
            raise ValueError("EvaluateConfig.policy: name at least one policy, e.g. --policy logged uniform")
        for field_name in ("policy", "arm"):
            for spec in getattr(self, field_name):
                try:
                    Arm.parse(spec)
                except ArmError as err:
                    raise ArmError(f"EvaluateConfig.{field_name}: {err}") from None
        if self.reward_model not in KINDS:
            raise ValueError(
                f"EvaluateConfig.reward_model={self.reward_model!r}; choose one of {', '.join(KINDS)}"
            )
        if self.n_boot < 0 or self.n_boot == 1:
            raise ValueError(f"EvaluateConfig.n_boot={self.n_boot} must be 0 (no intervals) or at least 2")
        if self.out is not None and Path(self.out).suffix not in (".csv", ".json"):
            raise ValueError(f"EvaluateConfig.out={self.out}: name it .csv or .json")

    @property
    def served(self) -> bool:
        """Whether --log names a served log directory (evaluated on its decision contexts)."""
        return self.log is not None and Path(self.log).is_dir()

    def needs_reward_model(self) -> bool:
        """Whether any requested estimator or policy reads the cross-fitted reward model."""
        model_policies = any(Arm.parse(p).policy not in BUILT_IN for p in self.policy)
        return model_policies or not self.estimators or bool(NEEDS_REWARD_MODEL & set(self.estimators))


def load_log(cfg: EvaluateConfig) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, tuple[int, ...]]:
    """Impressions, item ids (candidate columns), reward-model features and their categorical columns."""
    if cfg.obd is not None:
        from recsys.data import load_obd

        log = load_obd(cfg.obd, policy=cfg.obd_policy)
        feats, categorical = obd_features(log)
        return log.impressions, np.arange(log.n_items), feats, categorical
    from recsys.data import read_table

    impressions = read_table(cfg.log, "impressions")
    item_ids = np.unique(impressions["item_id"].to_numpy())
    feats, categorical = impression_features(impressions, item_ids)
    return impressions, item_ids, feats, categorical


FEW_EVENTS = 10
"""Below this many weighted rewarded rows the printed table flags the interval as unreliable."""


def format_table(table: pd.DataFrame) -> str:
    """The printed table: estimator, value, 95% interval and ESS per policy."""
    shown = table.copy()
    shown["95% CI"] = [
        f"[{lo:.5f}, {hi:.5f}]" if np.isfinite(lo) else "-"
        for lo, hi in zip(shown["ci_low"], shown["ci_high"], strict=True)
    ]
    shown["value"] = shown["value"].map(lambda v: f"{v:.5f}")
    shown["ess"] = shown["ess"].map(lambda v: f"{v:.0f}" if np.isfinite(v) else "-")
    shown["events"] = shown["events"].map(lambda v: f"{v:.1f}" if np.isfinite(v) else "-")
    columns = [
        "policy",
        "estimator",
        *(["position"] if "position" in shown else []),
        "value",
        "95% CI",
        "ess",
        "events",
    ]
    text = shown[columns].to_string(index=False)
    if (table["events"] < FEW_EVENTS).any():
        text += (
            f"\nnote: an interval resting on fewer than {FEW_EVENTS} effective rewarded rows (events) is "
            "unreliable; the percentile bootstrap cannot see clicks that were never logged"
        )
    if "dm" in set(shown["estimator"]):
        text += (
            "\nnote: dm's interval holds the fitted reward model fixed, so it leaves out the model's "
            "own error; read dm as a cross-check, not as a bound"
        )
    return text


def evaluate_served_log(cfg: EvaluateConfig) -> pd.DataFrame:
    """``evaluate`` on a served log directory: every policy replayed on the logged decision contexts."""
    from recsys.data.served_log import read_served_log
    from recsys.ope.served import ESTIMATORS as SERVED
    from recsys.ope.served import ItemVectors, arm_targets, evaluate_served

    impressions, decisions = read_served_log(cfg.log)
    catalog = cfg.catalog or Path(cfg.log).parent / "catalog"
    vectors = ItemVectors.load(cfg.model, catalog if catalog.is_dir() else None) if cfg.model else None
    policies = tuple(p for p in cfg.policy if p not in BUILT_IN)
    arms = arm_targets(cfg.arm)
    estimators = tuple(e for e in (cfg.estimators or SERVED) if e in SERVED)
    table = evaluate_served(impressions, decisions, policies, arms, vectors, estimators, cfg.clip, cfg.n_boot,
                            cfg.seed, cfg.alpha, cfg.reward_window_s)
    if len(table):
        print(f"logging propensities: {table['logging'].iloc[0]}"
              + ("" if table["logging"].iloc[0] != "logged" else " (name every served arm with --arm to pool them)"))
    rewards = impressions["reward"].to_numpy()
    print(f"{len(impressions)} logged rows of {impressions['impression_id'].nunique()} slates, "
          f"{int((rewards > 0).sum())} rewarded, logged CTR {rewards.mean():.5f}")
    print(format_table(table))
    checks = table[table["policy"].str.startswith("arm:")]
    if len(checks):
        print("self-check (each served arm's estimate against its own on-policy value):")
        print(checks[["policy", "estimator", "value", "online", "rel_error", "covers"]].to_string(index=False))
    return table


def evaluate(cfg: EvaluateConfig) -> pd.DataFrame:
    """Estimate every ``cfg.policy`` on the log with every estimator; print and return the table."""
    print("evaluate config:", {k: str(v) for k, v in dataclasses.asdict(cfg).items()})
    if cfg.log is not None and not Path(cfg.log).exists():
        raise FileNotFoundError(f"--log {cfg.log}: no such file or directory; pass an impressions .parquet or .csv, "
                                "or a served log directory (the server's state_dir/impressions)")
    if cfg.served:
        return write_out(evaluate_served_log(cfg), cfg.out)
    impressions, item_ids, feats, categorical = load_log(cfg)
    actions = item_index(item_ids, impressions["item_id"].to_numpy(), str(cfg.log or cfg.obd))
    positions = impressions["position"].to_numpy()
    rewards = impressions["reward"].to_numpy(dtype=np.float64)
    q_hat = None
    if cfg.needs_reward_model():
        model = RewardModelConfig(
            kind=cfg.reward_model,
            folds=cfg.folds,
            strength=cfg.strength,
            categorical=categorical,
            seed=cfg.seed,
        )
        q_hat = cross_fit(feats, actions, rewards, model)
    tables = []
    for spec in cfg.policy:
        target = build_target(
            spec,
            q_hat=q_hat,
            actions=actions,
            positions=positions,
            propensity=impressions["propensity"].to_numpy(),
            n_items=item_ids.shape[0],
            item_ids=item_ids,
            seed=cfg.seed,
        )
        tables.append(
            evaluate_log(
                impressions,
                target,
                q_hat=q_hat,
                actions=actions,
                estimators=cfg.estimators or None,
                clip=cfg.clip,
                n_boot=cfg.n_boot,
                seed=cfg.seed,
                alpha=cfg.alpha,
                by_position=cfg.by_position,
            )
        )
    table = pd.concat(tables, ignore_index=True)
    print(
        f"{len(impressions)} logged rows, {int(rewards.sum())} total reward, logged CTR {rewards.mean():.5f}"
    )
    print(format_table(table))
    return write_out(table, cfg.out)


def write_out(table: pd.DataFrame, out: Path | None) -> pd.DataFrame:
    """Write the table to ``out`` (.csv or .json) when given; return it."""
    if out is not None:
        out = Path(out)
        table.to_csv(out, index=False) if out.suffix == ".csv" else table.to_json(out, orient="records", indent=1)
    return table
