"""Click-probability calibration: map a model score to P(click), so the bandit can use the model
as a prior (a Thompson-sampling Beta prior starts from it).

Platt scaling (Platt 1999: a logistic regression on the one score feature) or isotonic regression
(Zadrozny & Elkan 2002), both fitted by scikit-learn on validation scores and stored as plain
numbers in serendip.json, never as a pickled estimator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.special import expit
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression

METHODS = ("platt", "isotonic")


class CalibrationError(ValueError):
    """Calibration input or stored parameters are unusable; the message says which and why."""


@dataclass(frozen=True)
class Calibrator:
    """A fitted score -> probability map; ``params`` are JSON numbers."""

    method: str
    """"platt" (sigmoid(a * score + b)) or "isotonic" (piecewise-linear through x -> y)."""
    params: dict = field(default_factory=dict)
    """Platt: {"a", "b"}; isotonic: {"x": [...], "y": [...]} ascending x."""
    base_rate: float = float("nan")
    """Share of positives in the fitting data (its negatives may be sampled; see ``source``)."""
    source: str = ""
    """What the labels were: "impressions" (real click/no-click) or "sampled negatives" (ratio noted)."""

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise CalibrationError(f"calibration method {self.method!r}: use one of {METHODS}")
        needed = {"platt": ("a", "b"), "isotonic": ("x", "y")}[self.method]
        missing = [k for k in needed if k not in self.params]
        if missing:
            raise CalibrationError(f"calibration ({self.method}): params {missing} missing in serendip.json")

    def __call__(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, same shape as ``scores``."""
        s = np.asarray(scores, dtype=np.float64)
        if self.method == "platt":
            return expit(self.params["a"] * s + self.params["b"])
        return np.interp(s, self.params["x"], self.params["y"])

    def to_dict(self) -> dict:
        """JSON-ready form for serendip.json."""
        return {"method": self.method, "params": self.params, "base_rate": self.base_rate, "source": self.source}

    @classmethod
    def from_dict(cls, data: dict) -> Calibrator:
        """Inverse of :meth:`to_dict`."""
        return cls(data["method"], dict(data["params"]), float(data.get("base_rate", "nan")), data.get("source", ""))


def fit_calibration(scores: np.ndarray, labels: np.ndarray, method: str = "platt", source: str = "") -> Calibrator:
    """Fit a calibrator on validation scores and 0/1 labels (both classes must be present).

    Both methods are non-decreasing in the score: a Platt fit whose slope comes out negative (a
    model worse than chance on the validation set) becomes the flat base rate.
    """
    s = np.asarray(scores, dtype=np.float64).ravel()
    y = np.asarray(labels).astype(np.int64).ravel()
    if s.shape != y.shape:
        raise CalibrationError(f"calibration: {s.size} scores but {y.size} labels; pass one label per score")
    if not np.isfinite(s).all():
        raise CalibrationError("calibration: scores contain NaN or inf; check the model's outputs")
    if len(np.unique(y)) < 2:
        raise CalibrationError("calibration: labels are all one class; need clicks and non-clicks (or sampled negatives)")
    if method == "platt":
        model = LogisticRegression(C=1e6).fit(s[:, None], y)
        params = {"a": float(model.coef_[0, 0]), "b": float(model.intercept_[0])}
        if params["a"] < 0:
            # A higher score must never mean a lower click probability (isotonic is increasing too).
            # The log-likelihood is concave in (a, b), so with a >= 0 imposed the optimum lies on
            # a = 0, where b is the log-odds of the base rate: the scores carry no usable signal.
            rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
            params = {"a": 0.0, "b": float(np.log(rate / (1 - rate)))}
    elif method == "isotonic":
        model = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(s, y)
        params = {"x": model.X_thresholds_.tolist(), "y": model.y_thresholds_.tolist()}
    else:
        raise CalibrationError(f"calibration method {method!r}: use one of {METHODS}")
    return Calibrator(method, params, float(y.mean()), source)
