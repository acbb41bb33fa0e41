"""Impressions waiting for their delayed rewards.

A served slate stays pending for the reward window. Feedback fills one slot's reward (once per
(impression, item, event): the idempotency key; the strongest event's reward wins, see
``serving.feedback_events``). When the window closes the impression is final: slots
with no feedback count with the default reward 0, the policy learns from them, and its rows go to
the impression log. Pending impressions are written to the WAL when served and to every
snapshot, so a crash loses none.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

ALL_EVENTS = 0xFF
"""The ``seen`` mask of a slot answered before events were tracked: any repeat is a duplicate."""


def encode_array(a: np.ndarray | None) -> dict | None:
    """A float64 array as JSON: shape + little-endian bytes in base64 (exact, unlike decimal text)."""
    if a is None:
        return None
    a = np.ascontiguousarray(a, dtype="<f8")
    return {"shape": list(a.shape), "b64": base64.b64encode(a.tobytes()).decode("ascii")}


def decode_array(d: dict | None) -> np.ndarray | None:
    """Inverse of :func:`encode_array` (and of ``encode_array32``)."""
    if d is None:
        return None
    dtype = d.get("dtype", "<f8")
    return np.frombuffer(base64.b64decode(d["b64"]), dtype=dtype).reshape(d["shape"]).astype(np.float64)


def encode_array32(a: np.ndarray | None) -> dict | None:
    """A float array as float32 JSON: half the bytes, for values that are float32 at the source."""
    if a is None:
        return None
    a = np.ascontiguousarray(a, dtype="<f4")
    return {"shape": list(a.shape), "dtype": "<f4", "b64": base64.b64encode(a.tobytes()).decode("ascii")}


@dataclass
class DecisionContext:
    """Everything a policy ranked for one slate, so any policy can be replayed on the served log."""

    candidate_ids: np.ndarray
    """int64 (n,): every candidate the policy could show."""
    scores: np.ndarray
    """(n,): the model's score of each candidate."""
    prior: np.ndarray | None
    """(n,): the model's calibrated click probability of each candidate; None when uncalibrated."""
    user_vector: np.ndarray | None
    """(d,): the user tower's output (with the model's item vectors it rebuilds linear features)."""
    model_version: str
    """Which model scored the candidates."""

    def record(self) -> dict:
        """JSON-safe form for the WAL (scores, prior and user vector as float32)."""
        return {"ids": [int(i) for i in self.candidate_ids], "scores": encode_array32(self.scores),
                "prior": encode_array32(self.prior), "user": encode_array32(self.user_vector),
                "model": self.model_version}

    @classmethod
    def from_record(cls, r: dict | None) -> DecisionContext | None:
        """Inverse of :meth:`record`; None stays None."""
        if r is None:
            return None
        return cls(np.asarray(r["ids"], dtype=np.int64), decode_array(r["scores"]), decode_array(r["prior"]),
                   decode_array(r["user"]), r["model"])


@dataclass
class PendingImpression:
    """One served slate and what is known about its rewards so far."""

    serial: int
    """Slate number; with ``issued_ms`` it is what the signed impression id carries."""
    issued_ms: int
    """Unix time the slate was served, in milliseconds."""
    user_id: int
    """Who saw it."""
    arm: str
    """A/B arm that served it."""
    policy: str
    """Policy name of that arm at serving time (its state receives the feedback)."""
    item_ids: np.ndarray
    """Shown items, position 0 first (int64, k)."""
    propensities: np.ndarray
    """P(policy shows item at its position) (k,)."""
    scores: np.ndarray
    """Model scores of the shown items (k,)."""
    explored: np.ndarray
    """Whether each item was placed by exploration (bool, k)."""
    features: np.ndarray | None
    """Context features of the shown items for linear policies (k, f)."""
    prior: np.ndarray | None
    """Model prior click probability of the shown items (k,)."""
    rewards: np.ndarray
    """Reward per slot; NaN until feedback arrives (k,)."""
    context: DecisionContext | None = None
    """The candidates the slate was drawn from (None in records written before contexts were kept)."""
    seen: np.ndarray | None = None
    """Events seen per slot, a bit mask of ``feedback_events.EVENT_BITS`` (uint8, k); None = none yet."""

    def __post_init__(self) -> None:
        if self.seen is None:
            self.seen = np.zeros(len(self.item_ids), dtype=np.uint8)

    @property
    def nbytes(self) -> int:
        """Memory its arrays hold (the bound on pending impressions counts this)."""
        arrays = [self.item_ids, self.propensities, self.scores, self.explored, self.features, self.prior,
                  self.rewards, self.seen]
        if self.context is not None:
            arrays += [self.context.candidate_ids, self.context.scores, self.context.prior, self.context.user_vector]
        return sum(a.nbytes for a in arrays if a is not None)

    def check_rows(self) -> None:
        """Raise unless its rows fit the impressions schema (propensities in (0, 1], finite scores)."""
        if not np.all((self.propensities > 0) & (self.propensities <= 1)):
            raise ValueError(f"policy {self.policy!r} gave propensities {self.propensities.tolist()} outside (0, 1]; "
                             "the slate is not served")
        if not np.all(np.isfinite(self.scores)):
            raise ValueError(f"policy {self.policy!r} gave non-finite scores; the slate is not served")

    def record(self) -> dict:
        """The WAL record that re-creates this impression on replay."""
        return {
            "t": "imp", "serial": self.serial, "ms": self.issued_ms, "user": self.user_id, "arm": self.arm,
            "policy": self.policy, "items": [int(i) for i in self.item_ids],
            "prop": [float(p) for p in self.propensities], "score": [float(s) for s in self.scores],
            "expl": [bool(e) for e in self.explored], "feat": encode_array(self.features),
            "prior": encode_array(self.prior), "ctx": None if self.context is None else self.context.record(),
        }

    @classmethod
    def from_record(cls, r: dict) -> PendingImpression:
        """Inverse of :meth:`record` (rewards start unknown)."""
        items = np.asarray(r["items"], dtype=np.int64)
        return cls(
            serial=int(r["serial"]), issued_ms=int(r["ms"]), user_id=int(r["user"]), arm=r["arm"],
            policy=r["policy"], item_ids=items, propensities=np.asarray(r["prop"], dtype=np.float64),
            scores=np.asarray(r["score"], dtype=np.float64), explored=np.asarray(r["expl"], dtype=bool),
            features=decode_array(r["feat"]), prior=decode_array(r["prior"]),
            rewards=np.full(len(items), np.nan), context=DecisionContext.from_record(r.get("ctx")),
        )


class PendingStore:
    """Pending impressions in serving order (serials only grow), so expiry pops from the front."""

    def __init__(self) -> None:
        self._by_serial: OrderedDict[int, PendingImpression] = OrderedDict()
        self.nbytes = 0
        """Memory held by the pending impressions' arrays."""

    def __len__(self) -> int:
        return len(self._by_serial)

    def __iter__(self):
        return iter(self._by_serial.values())

    def add(self, imp: PendingImpression) -> None:
        """Start waiting for feedback on ``imp``."""
        self._by_serial[imp.serial] = imp
        self.nbytes += imp.nbytes

    def get(self, serial: int) -> PendingImpression | None:
        """The pending impression with this serial, or None once final or never served."""
        return self._by_serial.get(serial)

    def expired(self, now_ms: int, window_ms: int) -> list[int]:
        """Serials whose window has closed at ``now_ms`` (oldest first), without removing them."""
        out = []
        for serial, imp in self._by_serial.items():
            if imp.issued_ms + window_ms > now_ms:
                break
            out.append(serial)
        return out

    def pop(self, serial: int) -> PendingImpression:
        """Remove and return one impression (it became final)."""
        imp = self._by_serial.pop(serial)
        self.nbytes -= imp.nbytes
        return imp

    def to_records(self) -> list[dict]:
        """Every pending impression with its rewards so far, for a snapshot."""
        return self.frozen()()

    def frozen(self) -> Callable[[], list[dict]]:
        """``to_records`` as of now, to build later (in a worker thread): after an impression is made only its
        ``rewards`` and ``seen`` change, so those are copied now and everything else is read later."""
        kept = [(imp, imp.rewards.copy(), imp.seen.copy()) for imp in self._by_serial.values()]

        def records() -> list[dict]:
            out = []
            for imp, rewards, seen in kept:
                r = imp.record()
                r["rewards"] = encode_array(rewards)
                r["seen"] = [int(b) for b in seen]
                out.append(r)
            return out

        return records

    @classmethod
    def from_records(cls, records: list[dict]) -> PendingStore:
        """Inverse of :meth:`to_records`."""
        store = cls()
        for r in records:
            imp = PendingImpression.from_record(r)
            imp.rewards = decode_array(r["rewards"])
            # a snapshot from before events were tracked: an answered slot takes no further event
            imp.seen = (np.asarray(r["seen"], dtype=np.uint8) if "seen" in r
                        else np.where(np.isnan(imp.rewards), 0, ALL_EVENTS).astype(np.uint8))
            store.add(imp)
        return store
