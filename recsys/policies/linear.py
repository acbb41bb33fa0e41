"""LinUCB and linear Thompson sampling on one shared ridge posterior over item features.

Both model E[reward] = x^T w with a Gaussian posterior N(mu, A^-1), A = ridge I + sum x x^T,
b = sum r x, mu = A^-1 b. The posterior keeps the Cholesky factor A = L L^T: decisions need
only triangular solves against L, never an inverse. An update adds X^T X to A and refactors;
at the feature sizes used here (d <= ~128) one LAPACK ``potrf`` is faster than a Python loop of
rank-1 ``cholupdate`` steps (``benchmarks/bench_bandit.py`` measures both).

Position bias (PBM): E[reward | shown at j] = theta_j x^T w, so feedback rows enter as
theta_j x (weighted least squares), and the posterior stays one of attractiveness.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np
from scipy.linalg import lapack

from recsys.policies.base import Choice, Context, Feedback, Policy, check_range, require_features
from recsys.policies.propensity import (
    sampled_marginals,
    slot_frequencies,
    tie_aware_choice,
    tie_marginals,
)


@dataclass
class LinearPosterior:
    """Ridge posterior N(mu, A^-1) over a d-dimensional weight vector, with A = L L^T kept factored."""

    ridge: float = 1.0
    """lambda: prior precision of every weight (A starts at lambda I)."""
    precision: np.ndarray = field(default_factory=lambda: np.zeros((0, 0)))
    """A (d, d); empty until the first context or feedback fixes d."""
    target: np.ndarray = field(default_factory=lambda: np.zeros(0))
    """b (d,): sum of reward-weighted features."""
    chol: np.ndarray = field(init=False, repr=False)
    mean: np.ndarray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.precision = np.array(self.precision, dtype=np.float64, order="F")
        self.target = np.array(self.target, dtype=np.float64)
        self._refactor()

    @property
    def dim(self) -> int:
        """Feature dimension d (0 before the first use)."""
        return self.target.shape[0]

    def fit_dim(self, d: int, where: str) -> None:
        """Fix d on first use; later features must have the same width."""
        if self.dim == 0:
            self.precision = np.asfortranarray(self.ridge * np.eye(d))
            self.target = np.zeros(d)
            self._refactor()
        elif d != self.dim:
            raise ValueError(f"{where}: {d} feature columns, but this posterior has {self.dim}; "
                             "use the same feature builder for every context and feedback")

    def add(self, features: np.ndarray, rewards: np.ndarray) -> None:
        """Add rows x with rewards r: A += X^T X, b += X^T r, then refactor."""
        self.precision += features.T @ features
        self.target += features.T @ rewards
        self._refactor()

    def _refactor(self) -> None:
        if self.dim == 0:
            self.chol, self.mean = self.precision, self.target
            return
        chol, info = lapack.dpotrf(self.precision, lower=1, clean=1)
        if info != 0:
            raise ValueError(f"LinearPosterior: precision matrix is not positive definite (LAPACK info {info}); "
                             "raise ridge or check the features for NaN/huge values")
        self.chol = np.asfortranarray(chol)
        self.mean = lapack.dpotrs(self.chol, self.target, lower=1)[0]

    def whiten(self, features: np.ndarray) -> np.ndarray:
        """(d, n) L^-1 X^T: column norms are the posterior std of each x^T w (up to noise scale)."""
        return lapack.dtrtrs(self.chol, features.T, lower=1)[0]


@dataclass
class LinearPolicy(Policy):
    """Shared state and update of LinUCB and LinTS: one ``LinearPosterior`` over context features."""

    ridge: float = 1.0
    """Prior precision lambda of the linear weights."""
    posterior: LinearPosterior = field(init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("ridge", self.ridge, 0.0, math.inf, open_low=True, open_high=True)
        self.posterior = LinearPosterior(self.ridge)

    def _features(self, ctx: Context) -> np.ndarray:
        features = require_features(ctx, self.name)
        self.posterior.fit_dim(features.shape[1], "Context.features")
        return features

    def update(self, fb: Feedback) -> None:
        """Add every (features, reward) row, each scaled by its position's examination weight."""
        features = require_features(fb, self.name)
        self.posterior.fit_dim(features.shape[1], "Feedback.features")
        theta = self._examination_of(fb)
        self.posterior.add(features * theta[:, None], fb.rewards * theta)
        super().update(fb)

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {"precision": np.ascontiguousarray(self.posterior.precision), "target": self.posterior.target.copy()}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        self.posterior = LinearPosterior(self.ridge, arrays["precision"], arrays["target"])


@dataclass
class LinUCB(LinearPolicy):
    """Rank by x^T mu + alpha sqrt(x^T A^-1 x) (Li, Chu, Langford & Schapire 2010), shared weights.

    Deterministic given the state except for exact ties, which are broken uniformly at random,
    so the propensities are exact.
    """

    name: ClassVar[str] = "linucb"

    alpha: float = 1.0
    """Width of the confidence bonus."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("alpha", self.alpha, 0.0, math.inf, open_high=True)

    def _index(self, ctx: Context) -> tuple[np.ndarray, np.ndarray]:
        features = self._features(ctx)
        point = features @ self.posterior.mean
        white = self.posterior.whiten(features)
        return point + self.alpha * np.sqrt(np.einsum("ij,ij->j", white, white)), point

    def _choose(self, ctx: Context, k: int, rng: np.random.Generator, forced: np.ndarray | None) -> Choice:
        index, point = self._index(ctx)
        idx, propensities, prefix = tie_aware_choice(index, k, rng, forced)
        return Choice(idx, propensities, prefix, point)

    def _base_distribution(self, ctx: Context, k: int, rng: np.random.Generator) -> np.ndarray:
        return tie_marginals(self._index(ctx)[0], k)


@dataclass
class LinTS(LinearPolicy):
    """Sample w ~ N(mu, v^2 A^-1) and rank by x^T w (Agrawal & Goyal 2013), shared weights.

    Score draws are x^T mu + v (L^-1 X^T)^T z with z ~ N(0, I_d): one triangular solve per
    decision, whatever the number of draws. The shown slate is the first of ``n_draws + 1`` draws,
    and each propensity is the frequency of (item, position) over all of them, the shown one
    included: p_hat = (1 + B) / (N + 1) with B ~ Binomial(N, p) from the N further draws. It never
    falls to the floor alone (p_hat >= 1 / (N + 1)), and as an importance weight it is nearly unbiased:
    E[1 / p_hat | shown] = (1 - (1 - p)^(N+1)) / p, a relative bias of -(1 - p)^(N+1) that only
    placements with p well under 1 / N feel (they are shown that rarely). The scores are correlated
    through w, so the per-item conditioning that Thompson and Softmax use does not apply.
    """

    name: ClassVar[str] = "lints"

    scale: float = 0.5
    """v: posterior scale; larger explores more."""
    n_draws: int = 40
    """Further posterior draws for the Monte-Carlo propensities (50: the normals dominate a decision's cost)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check_range("scale", self.scale, 0.0, math.inf, open_high=True)
        check_range("n_draws", self.n_draws, 1, 1_000_000)

    def sample_scores(self, ctx: Context, draws: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """((draws, n) float32 sampled scores x^T w, (n,) posterior-mean scores x^T mu)."""
        features = self._features(ctx)
        point = features @ self.posterior.mean
        white = (self.scale * self.posterior.whiten(features)).astype(np.float32)
        samples = rng.standard_normal((draws, self.posterior.dim), dtype=np.float32) @ white
        samples += point.astype(np.float32)
        return samples, point

    def _choose(self, ctx: Context, k: int, rng: np.random.Generator, forced: np.ndarray | None) -> Choice:
        samples, point = self.sample_scores(ctx, self.n_draws + 1, rng)
        idx = np.argsort(-samples[0], kind="stable")[:k] if forced is None else forced
        return Choice(idx, slot_frequencies(samples, idx), None, point)

    def _base_distribution(self, ctx: Context, k: int, rng: np.random.Generator) -> np.ndarray:
        return sampled_marginals(self.sample_scores(ctx, self.n_draws, rng)[0], k)
