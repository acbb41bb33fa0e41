"""EASE (Steck 2019, "Embarrassingly Shallow Autoencoders for Sparse Data"): the closed-form item-item
reference a ranking benchmark fits in its own process, on the very split its model is scored on.

With X the binary user x item matrix of the training interactions and λ the L2 weight,

    P = (XᵀX + λI)⁻¹,    B = I - P · diagMat(1 ⊘ diag(P)),    so B_ij = -P_ij / P_jj and diag(B) = 0,

and a user's scores are x_u B: each candidate item sums the weights from the items the user has.
RecBole 1.2.1's ``EASE`` is this with ``reg_weight`` λ = 250 by default; its users' rows are their
training interactions only, as here. An item with no training interaction gets a zero column (it
scores 0 for everyone), so EASE cannot rank cold items.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pandas as pd
import scipy.sparse as sp

from recsys.metrics.protocols import ProtocolError, Scorer, evaluate_random_split

RECBOLE_LAMBDA = 250.0
"""RecBole 1.2.1's default ``reg_weight`` for EASE (``recbole/properties/model/EASE.yaml``)."""


@dataclass(frozen=True)
class EASEConfig:
    """Which λ values EASE tries, and how it picks one."""

    lambdas: tuple[float, ...] = (50.0, 100.0, RECBOLE_LAMBDA, 500.0, 1000.0, 2000.0)
    """L2 weights fitted; the one with the best validation NDCG@10 is kept (one value: no choice)."""

    def __post_init__(self) -> None:
        if not self.lambdas or any(not lam > 0 for lam in self.lambdas):
            raise ProtocolError(f"EASEConfig.lambdas={self.lambdas}: give at least one λ, each > 0 (RecBole: 250)")


@dataclass
class EASEResult:
    """A fitted EASE: its scorer over the catalog, the λ kept, and what each λ scored on validation."""

    scorer: Scorer
    """score_users(user_ids (b,)) -> (b, n) over the catalog's item_ids (zeros for unknown users)."""
    lam: float
    """The λ kept (best validation NDCG@10; ties go to the first in ``EASEConfig.lambdas``)."""
    valid_ndcg10: dict[float, float]
    """Validation NDCG@10 of every λ tried."""
    seconds: float
    """Wall time of the fits and their validation."""


def ease_weights(gram: np.ndarray, lam: float) -> np.ndarray:
    """B (n, n) from the item-item co-occurrence counts ``gram`` = XᵀX (Steck 2019, eq. 8)."""
    if not lam > 0:
        raise ProtocolError(f"EASE: λ={lam} must be > 0; RecBole's default is {RECBOLE_LAMBDA:g}")
    precision = np.linalg.inv(np.asarray(gram, dtype=np.float64) + lam * np.eye(len(gram)))
    weights = -precision / np.diag(precision)[None, :]
    np.fill_diagonal(weights, 0.0)
    return weights


def interaction_matrix(train: pd.DataFrame, item_ids: np.ndarray) -> tuple[pd.Index, sp.csr_matrix]:
    """The training users (sorted) and their binary rows over ``item_ids``."""
    columns = pd.Index(np.asarray(item_ids, dtype=np.int64)).get_indexer(train["item_id"].to_numpy())
    if len(train) == 0 or (columns < 0).any():
        raise ProtocolError("EASE: the train split is empty or names items outside item_ids; pass the catalog's ids")
    users = pd.Index(np.unique(train["user_id"].to_numpy(np.int64)))
    rows = users.get_indexer(train["user_id"].to_numpy())
    matrix = sp.csr_matrix((np.ones(len(rows), np.float64), (rows, columns)), shape=(len(users), len(item_ids)))
    matrix.data[:] = 1.0  # a pair logged twice is still one interaction
    return users, matrix


def _scorer(users: pd.Index, matrix: sp.csr_matrix, weights: np.ndarray) -> Scorer:
    def score_users(user_ids: np.ndarray) -> np.ndarray:
        idx = users.get_indexer(np.asarray(user_ids, dtype=np.int64))
        scores = np.asarray(matrix[np.maximum(idx, 0)] @ weights, dtype=np.float32)
        scores[idx < 0] = 0.0
        return scores

    return score_users


def train_ease(split, item_ids: np.ndarray, cfg: EASEConfig = EASEConfig()) -> EASEResult:
    """Fit EASE on ``split.train`` for every λ of ``cfg`` and keep the best on ``split.valid`` (NDCG@10)."""
    started = time.perf_counter()
    users, matrix = interaction_matrix(split.train, item_ids)
    gram = (matrix.T @ matrix).toarray()
    best, scores = None, {}
    for lam in cfg.lambdas:
        scorer = _scorer(users, matrix, ease_weights(gram, lam))
        scores[lam] = evaluate_random_split(scorer, split, item_ids, ks=(10,), phase="valid")["model"]["ndcg@10"]
        if best is None or scores[lam] > scores[best[0]]:
            best = (lam, scorer)
    return EASEResult(best[1], best[0], scores, time.perf_counter() - started)
