"""What every exploration policy shares: the context it ranks, the slate it returns, the feedback it
learns from, and the uniform-mixing floor that keeps propensities away from zero.

A policy answers ``select(ctx, k, rng) -> Slate`` and learns through ``update(Feedback)``.
``Slate.propensities[j]`` is P(the policy puts ``item_ids[j]`` at position ``j``) given the same
state and context, marginal over the policy's own randomness; the floor is mixed into it.

*Explored* means: the item is not the one the policy's greedy slate (ranked by its point estimate:
the model score, or the posterior mean for learning policies) would have put at that position.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import numpy as np

STATE_VERSION = 1
"""Version of the ``state_dict`` layout; bump it when the arrays or header change meaning."""


def _vector(name: str, values: Any, dtype: type, n: int | None) -> np.ndarray:
    """``values`` as a 1-D array of ``dtype`` and length ``n`` (any length when ``n`` is None)."""
    arr = np.asarray(values, dtype=dtype)
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        want = "a 1-D array" if n is None else f"shape ({n},)"
        raise ValueError(f"{name}: expected {want}, got shape {arr.shape}; pass one value per item")
    return arr


def _finite(name: str, arr: np.ndarray, what: str) -> None:
    """Raise naming the first non-finite entry of ``arr``."""
    bad = ~np.isfinite(arr)
    if bad.any():
        first = int(np.flatnonzero(bad.reshape(bad.shape[0], -1).any(axis=1))[0])
        raise ValueError(f"{name}: NaN or inf at {what} {first}; pass finite numbers")


def _unit_interval(name: str, arr: np.ndarray, what: str) -> None:
    """Raise naming the first entry of ``arr`` outside [0, 1] (NaN included)."""
    bad = ~((arr >= 0.0) & (arr <= 1.0))
    if bad.any():
        first = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}: {arr[first]} at {what} {first} is not in [0, 1]; pass probabilities")


def _matrix(name: str, values: Any, n: int, what: str) -> np.ndarray:
    """``values`` as a finite float64 (n, d) array."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[0] != n:
        raise ValueError(f"{name}: expected shape ({n}, d), got {arr.shape}; pass one feature row per {what}")
    _finite(name, arr, what)
    return arr


@dataclass(slots=True)
class Context:
    """The candidates of one decision: ids, model scores, optional features and model click prior."""

    item_ids: np.ndarray
    """int64 (n,): candidate item ids, unique."""
    scores: np.ndarray
    """float (n,): the model's score of each candidate (higher is better)."""
    features: np.ndarray | None = None
    """float (n, d): per-candidate features for linear policies (see ``linear_policy_features``)."""
    prior: np.ndarray | None = None
    """float (n,): the model's calibrated click probability of each candidate, in [0, 1]."""

    def __post_init__(self) -> None:
        self.item_ids = _vector("Context.item_ids", self.item_ids, np.int64, None)
        n = self.item_ids.shape[0]
        if n == 0:
            raise ValueError("Context.item_ids: no candidates; pass at least one item")
        ordered = np.sort(self.item_ids)
        if (ordered[1:] == ordered[:-1]).any():
            raise ValueError("Context.item_ids: duplicate item ids; pass each candidate once")
        self.scores = _vector("Context.scores", self.scores, np.float64, n)
        _finite("Context.scores", self.scores, "candidate")
        if self.features is not None:
            self.features = _matrix("Context.features", self.features, n, "candidate")
        if self.prior is not None:
            self.prior = _vector("Context.prior", self.prior, np.float64, n)
            _unit_interval("Context.prior", self.prior, "candidate")

    @property
    def n(self) -> int:
        """Number of candidates."""
        return self.item_ids.shape[0]


@dataclass(slots=True)
class Slate:
    """A ranked slate of k items with the policy's propensity for each (item, position)."""

    indices: np.ndarray
    """int (k,): positions of the shown items in the context's candidate arrays."""
    item_ids: np.ndarray
    """int64 (k,): the shown items, position 0 first."""
    propensities: np.ndarray
    """float (k,): P(this item at this position | state, context), floor included."""
    explored: np.ndarray
    """bool (k,): True where the greedy slate would have shown another item at that position."""
    scores: np.ndarray
    """float (k,): the model's score of each shown item (from the context)."""
    prefix_propensities: np.ndarray | None = None
    """float (k,): exact P(positions 0..j show exactly these items); None where only Monte-Carlo is known."""


@dataclass(slots=True)
class Feedback:
    """Rewards for shown items, vectorized over a batch of (impression, item) pairs."""

    item_ids: np.ndarray
    """int64 (m,): the rewarded items."""
    rewards: np.ndarray
    """float (m,): rewards in [0, 1] (1 = click or purchase, 0 = shown and ignored)."""
    positions: np.ndarray | None = None
    """int (m,): position each item was shown at, for examination (position-bias) weights."""
    features: np.ndarray | None = None
    """float (m, d): the features the item had in its context (linear policies need them)."""
    prior: np.ndarray | None = None
    """float (m,): the model's click probability at serving time (kept for logs and audits)."""

    def __post_init__(self) -> None:
        self.item_ids = _vector("Feedback.item_ids", self.item_ids, np.int64, None)
        m = self.item_ids.shape[0]
        self.rewards = _vector("Feedback.rewards", self.rewards, np.float64, m)
        _unit_interval("Feedback.rewards", self.rewards, "row")
        if self.positions is not None:
            self.positions = _vector("Feedback.positions", self.positions, np.int64, m)
            if m and self.positions.min() < 0:
                first = int(np.flatnonzero(self.positions < 0)[0])
                raise ValueError(f"Feedback.positions: {self.positions[first]} at row {first} is negative; positions count from 0")
        if self.features is not None:
            self.features = _matrix("Feedback.features", self.features, m, "row")
        if self.prior is not None:
            self.prior = _vector("Feedback.prior", self.prior, np.float64, m)
            _unit_interval("Feedback.prior", self.prior, "row")


class Choice(NamedTuple):
    """What a policy's ``_choose`` hands back to ``Policy.select``."""

    indices: np.ndarray
    """The realized slate (the forced uniform one when the floor fired)."""
    propensities: np.ndarray
    """The base policy's (no floor) P(item at position) for each shown item."""
    prefix: np.ndarray | None
    """The base policy's exact prefix probabilities, or None when unknown."""
    point: np.ndarray
    """The policy's point estimate for every candidate (defines the greedy slate)."""


def top_k(values: np.ndarray, k: int) -> np.ndarray:
    """Indices of the k largest values, largest first; ties keep the lower index first."""
    if values.shape[0] > 256 and k < values.shape[0] // 8:  # below that a full argsort is cheaper
        part = np.argpartition(-values, k - 1)[:k]
        part.sort()
        return part[np.argsort(-values[part], kind="stable")]
    return np.argsort(-values, kind="stable")[:k]


def check_range(name: str, value: float, low: float, high: float, *, open_low: bool = False,
                open_high: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is finite and within the interval."""
    above = value > low if open_low else value >= low
    below = value < high if open_high else value <= high
    if not (math.isfinite(value) and above and below):
        interval = f"{'(' if open_low else '['}{low}, {high}{')' if open_high else ']'}"
        raise ValueError(f"{name}={value} must be in {interval}; pass a value in that range")


@dataclass
class Policy:
    """Base of every policy: the uniform floor, position de-biasing, and the select/update protocol."""

    name: ClassVar[str] = "policy"

    floor: float = 1e-3
    """Weight of a uniformly random slate mixed into every decision; propensities are then >= floor / n."""
    examination: tuple[float, ...] | None = None
    """P(a user examines position j), position 0 first (see ``examination_weights``); None = always."""
    n_updates: int = field(default=0, init=False)

    def __post_init__(self) -> None:
        check_range("floor", self.floor, 0.0, 1.0, open_high=True)
        if self.examination is not None:
            self.examination = tuple(float(w) for w in self.examination)
            weights = np.asarray(self.examination)
            if weights.size == 0 or not np.all((weights > 0.0) & (weights <= 1.0)):
                raise ValueError(f"examination={self.examination!r} must be non-empty with values in (0, 1]; estimate them with examination_weights")

    # ---- the protocol -------------------------------------------------------------------------

    def select(self, ctx: Context, k: int, rng: np.random.Generator) -> Slate:
        """Rank ``k`` of the context's candidates and return them with their propensities."""
        n = check_slate_size(ctx, k)
        forced = rng.permutation(n)[:k] if self.floor > 0.0 and rng.random() < self.floor else None
        choice = self._choose(ctx, k, rng, forced)
        idx = choice.indices
        propensities = self.floor / n + (1.0 - self.floor) * choice.propensities
        prefix = None
        if choice.prefix is not None:
            uniform = np.cumprod(1.0 / (n - np.arange(k)))
            prefix = self.floor * uniform + (1.0 - self.floor) * choice.prefix
        explored = idx != top_k(choice.point, k)
        return Slate(idx, ctx.item_ids[idx], propensities, explored, ctx.scores[idx], prefix)

    def select_many(self, contexts: list[Context], k: int, rng: np.random.Generator) -> list[Slate]:
        """One slate per context, in order, all from the same state (a batch of requests)."""
        return [self.select(ctx, k, rng) for ctx in contexts]

    def action_distribution(self, ctx: Context, k: int, rng: np.random.Generator | None = None) -> np.ndarray:
        """(n, k) matrix of P(candidate i at position j), floor included; columns sum to 1.

        Exact where the policy has a closed form; a seeded Monte-Carlo estimate otherwise
        (``rng`` defaults to ``np.random.default_rng(0)``).
        """
        n = check_slate_size(ctx, k)
        base = self._base_distribution(ctx, k, np.random.default_rng(0) if rng is None else rng)
        return self.floor / n + (1.0 - self.floor) * base

    def update(self, fb: Feedback) -> None:
        """Learn from a batch of rewards; the default policies that only follow the model just count."""
        self.n_updates += fb.item_ids.shape[0]

    def with_params(self, **params: Any) -> Policy:
        """A copy with new exploration parameters and the same learned state (live reconfiguration)."""
        fresh = dataclasses.replace(self, **params)
        arrays, header = self.state_dict()
        fresh.load_state_dict(arrays, header)
        return fresh

    def params(self) -> dict[str, Any]:
        """The constructor parameters, JSON-ready."""
        out = {}
        for f in dataclasses.fields(self):
            if f.init:
                value = getattr(self, f.name)
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    def state_dict(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The learned state as arrays plus a JSON header (policy name, version, params, counters)."""
        header = {"policy": self.name, "version": STATE_VERSION, "params": self.params(),
                  "state": {"n_updates": self.n_updates}}
        return self._state_arrays(), header

    def load_state_dict(self, arrays: dict[str, np.ndarray], header: dict[str, Any]) -> None:
        """Restore the learned state from ``state_dict()`` output; parameters stay this object's own."""
        if header.get("policy") != self.name:
            raise ValueError(f"state header: policy {header.get('policy')!r} cannot load into {self.name!r}; load it with load_state")
        if header.get("version") != STATE_VERSION:
            raise ValueError(f"state header: version {header.get('version')!r} is not {STATE_VERSION}; re-save the state with this release")
        self.n_updates = int(header["state"]["n_updates"])
        self._load_arrays({name: np.asarray(value) for name, value in arrays.items()})

    # ---- hooks for subclasses -----------------------------------------------------------------

    def _choose(self, ctx: Context, k: int, rng: np.random.Generator, forced: np.ndarray | None) -> Choice:
        raise NotImplementedError

    def _base_distribution(self, ctx: Context, k: int, rng: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def _state_arrays(self) -> dict[str, np.ndarray]:
        return {}

    def _load_arrays(self, arrays: dict[str, np.ndarray]) -> None:
        return None

    def _examination_of(self, fb: Feedback) -> np.ndarray:
        """Examination probability of each feedback row (1 where positions or weights are absent)."""
        if self.examination is None or fb.positions is None:
            return np.ones(fb.item_ids.shape[0])
        weights = np.asarray(self.examination)
        if fb.positions.size and fb.positions.max() >= weights.shape[0]:
            raise ValueError(f"Feedback.positions: position {int(fb.positions.max())} has no examination weight "
                             f"(only {weights.shape[0]} given); estimate weights for every shown position")
        return weights[fb.positions]


def check_slate_size(ctx: Context, k: int) -> int:
    """Number of candidates, after checking that ``1 <= k <= n``."""
    n = ctx.item_ids.shape[0]
    if not 1 <= k <= n:
        raise ValueError(f"k={k} must be between 1 and the {n} candidates; ask for fewer items or pass more candidates")
    return n


def require_features(ctx_or_fb: Context | Feedback, policy: str) -> np.ndarray:
    """The features of a context or feedback, which linear policies cannot work without."""
    if ctx_or_fb.features is None:
        kind = type(ctx_or_fb).__name__
        raise ValueError(f"{kind}.features: {policy} needs per-item features; build them with linear_policy_features")
    return ctx_or_fb.features
