"""Click-prediction metrics: AUC and log-loss (scikit-learn) and expected calibration error."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import log_loss as _sk_log_loss
from sklearn.metrics import roc_auc_score


def _check(labels, probs, name: str) -> tuple[np.ndarray, np.ndarray]:
    y = np.asarray(labels).astype(np.float64).ravel()
    p = np.asarray(probs, dtype=np.float64).ravel()
    if y.shape != p.shape:
        raise ValueError(f"{name}: {y.size} labels but {p.size} predictions; pass one prediction per label")
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"{name}: labels must be 0 or 1 (clicks); got {np.unique(y)[:5].tolist()}")
    return y, p


def auc(labels, scores) -> float:
    """Area under the ROC curve: P(a random click outranks a random non-click)."""
    y, s = _check(labels, scores, "auc")
    if len(np.unique(y)) < 2:
        raise ValueError("auc: labels are all one class; AUC needs clicks and non-clicks")
    return float(roc_auc_score(y, s))


def log_loss(labels, probs) -> float:
    """Mean negative log-likelihood of the clicks under predicted probabilities."""
    y, p = _check(labels, probs, "log_loss")
    return float(_sk_log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0.0, 1.0]))


def expected_calibration_error(labels, probs, n_bins: int = 15) -> float:
    """ECE: |click rate - mean predicted probability| per equal-width bin, weighted by bin size
    (Naeini, Cooper & Hauskrecht 2015; Guo et al. 2017)."""
    y, p = _check(labels, probs, "expected_calibration_error")
    if n_bins < 1:
        raise ValueError(f"expected_calibration_error: n_bins={n_bins} must be >= 1")
    if not ((p >= 0) & (p <= 1)).all():
        raise ValueError("expected_calibration_error: probabilities must lie in [0, 1]; calibrate scores first")
    bins = np.minimum((p * n_bins).astype(np.int64), n_bins - 1)
    count = np.bincount(bins, minlength=n_bins)
    gap = np.abs(np.bincount(bins, y, n_bins) - np.bincount(bins, p, n_bins))
    return float(gap.sum() / max(count.sum(), 1))
