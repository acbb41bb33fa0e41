"""The reward model behind DM, DR and SNDR: q(x, a, k), fitted with K-fold cross-fitting.

Cross-fitting (Chernozhukov et al. 2018; Narita, Yasui & Yata 2019 for OPE) predicts every row with
a model that never saw it, so DR's correction term is not fooled by the model's own overfitting.
The model is plain scikit-learn: a one-hot logistic regression or histogram gradient boosting,
over one feature table per (row, candidate item) at the row's position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from threadpoolctl import threadpool_limits

KINDS = ("logistic", "hgb")


@dataclass(frozen=True)
class RewardModelConfig:
    """How to fit the cross-fitted reward model."""

    kind: str = "logistic"
    """'logistic' (one-hot categoricals, L2 logistic regression) or 'hgb' (histogram boosting)."""
    folds: int = 5
    """K of the K-fold cross-fitting; each row is predicted by the model fitted on the other K-1 folds."""
    strength: float = 1.0
    """Inverse L2 strength C of the logistic model; smaller is smoother (few clicks want < 1)."""
    categorical: tuple[int, ...] = ()
    """Feature columns that hold category codes (user segments, item, position); the rest are numeric."""
    seed: int = 0
    """Seed of the fold assignment and of the model."""
    threads: int | None = 1
    """BLAS/OpenMP threads while fitting (None: the library default); one is fastest at this size
    and does not spin-wait on a shared machine."""

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"RewardModelConfig.kind={self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.folds < 2:
            raise ValueError(f"RewardModelConfig.folds={self.folds} must be >= 2 for cross-fitting")
        if not self.strength > 0:
            raise ValueError(f"RewardModelConfig.strength={self.strength} must be > 0")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"RewardModelConfig.threads={self.threads} must be >= 1 or None")
        if any(c < 0 for c in self.categorical):
            raise ValueError(f"RewardModelConfig.categorical={self.categorical} holds a negative column")


def build_model(cfg: RewardModelConfig, n_features: int):
    """A fresh scikit-learn pipeline for ``cfg`` over ``n_features`` columns."""
    cats = sorted(set(cfg.categorical))
    if cats and cats[-1] >= n_features:
        raise ValueError(
            f"RewardModelConfig.categorical names column {cats[-1]} but the features have {n_features} columns"
        )
    if cfg.kind == "hgb":
        mask = np.isin(np.arange(n_features), cats)
        return make_pipeline(
            HistGradientBoostingClassifier(
                categorical_features=mask if cats else None,
                max_iter=100,
                learning_rate=0.05,
                l2_regularization=1.0,
                min_samples_leaf=50,
                random_state=cfg.seed,
            )
        )
    numeric = [c for c in range(n_features) if c not in cats]
    columns = ColumnTransformer(
        [("category", OneHotEncoder(handle_unknown="ignore"), cats), ("numeric", StandardScaler(), numeric)]
    )
    return make_pipeline(columns, LogisticRegression(C=cfg.strength, max_iter=2000))


def _soft_labels(x: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rewards in [0, 1] as weighted 0/1 labels: the same cross-entropy as a soft label r."""
    if np.all((r == 0) | (r == 1)):
        return x, r.astype(np.int64), np.ones_like(r)
    labels = np.concatenate([np.ones_like(r), np.zeros_like(r)]).astype(np.int64)
    return np.concatenate([x, x]), labels, np.concatenate([r, 1 - r])


def _fold_splits(r: np.ndarray, folds: int, seed: int):
    clicked = r > 0
    smaller = min(clicked.sum(), (~clicked).sum())
    if smaller >= folds:
        return StratifiedKFold(folds, shuffle=True, random_state=seed).split(r, clicked)
    return KFold(folds, shuffle=True, random_state=seed).split(r)


def fit_predict(
    cfg: RewardModelConfig, x_train: np.ndarray, r_train: np.ndarray, x_new: np.ndarray
) -> np.ndarray:
    """Fit on (x_train, r_train) and predict P(reward) on x_new; a constant when the rewards are."""
    if np.all(r_train == r_train[0]):
        return np.full(x_new.shape[0], float(r_train[0]))
    x, y, weight = _soft_labels(x_train, r_train)
    model = build_model(cfg, x.shape[1])
    model.fit(x, y, **{f"{model.steps[-1][0]}__sample_weight": weight})
    return model.predict_proba(x_new)[:, 1]


def cross_fit(
    candidate_features, actions, rewards, cfg: RewardModelConfig = RewardModelConfig()
) -> np.ndarray:
    """Out-of-fold q(x_i, a, k_i) for every row i and candidate a: an (n, n_actions) array.

    ``candidate_features`` is (n, n_actions, f): the features of each candidate at each row's
    context and position; row i's training example is ``candidate_features[i, actions[i]]``.
    Use it as ``RewardPredictions.from_candidates(q_hat, action_dist, actions)``.
    """
    feats = np.asarray(candidate_features, dtype=np.float64)
    r = np.asarray(rewards, dtype=np.float64)
    a = np.asarray(actions)
    if feats.ndim != 3:
        raise ValueError(
            f"candidate_features has shape {feats.shape}; expected (n_rows, n_actions, n_features)"
        )
    n, n_actions, f = feats.shape
    if r.shape != (n,) or a.shape != (n,):
        raise ValueError(
            f"rewards has shape {r.shape} and actions {a.shape} but candidate_features has {n} rows; "
            "pass one reward and one logged action per row"
        )
    if a.dtype.kind not in "iu" or a.min() < 0 or a.max() >= n_actions:
        raise ValueError(f"actions must be integer columns of candidate_features in 0..{n_actions - 1}")
    if not np.all(np.isfinite(feats)):
        i = int(np.flatnonzero(~np.isfinite(feats).reshape(n, -1).all(axis=1))[0])
        raise ValueError(f"candidate_features row {i}: holds NaN or inf; encode missing values first")
    if not np.all((r >= 0) & (r <= 1)):
        i = int(np.flatnonzero(~((r >= 0) & (r <= 1)))[0])
        raise ValueError(f"rewards row {i}: {r[i]} is not in [0, 1]; the reward model predicts a probability")
    if n < cfg.folds:
        raise ValueError(f"{n} rows cannot be split into RewardModelConfig.folds={cfg.folds} folds")
    logged = feats[np.arange(n), a]
    q_hat = np.empty((n, n_actions))
    with threadpool_limits(limits=cfg.threads):
        for train, test in _fold_splits(r, cfg.folds, cfg.seed):
            pred = fit_predict(cfg, logged[train], r[train], feats[test].reshape(-1, f))
            q_hat[test] = pred.reshape(test.shape[0], n_actions)
    return q_hat
