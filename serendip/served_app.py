"""The Serve app over HTTP as a replay recommender (``recsys.replay.Recommender``), so the demo's shoppers
visit it through the same loop that scores a policy in the sweep.

Each visit asks ``POST /recommend`` to rank its page of candidates, with the shopper's newest clicks as
history; every click the world draws goes back through ``POST /feedback`` with the strongest event the
shopper reached; new products arrive through ``PUT /items``. A round's requests are sent at once.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import numpy as np
import pandas as pd

from recsys.replay import Round, Served
from recsys.simulator import World

HISTORY = 50
"""Newest clicks of a shopper sent as the request's history."""


@dataclass
class Calls:
    """The client's side of the HTTP traffic."""

    recommend_ms: list[float] = field(default_factory=list)
    """Latency of each successful /recommend call."""
    feedback_ms: list[float] = field(default_factory=list)
    """Latency of each successful /feedback call."""
    failures: int = 0
    """Requests that failed even after retries."""
    errors: dict[str, int] = field(default_factory=dict)
    """Failed tries (retried or not) by endpoint and cause."""


class ServedApp:
    """A running Serendip app at ``url``: ``recommend`` and ``learn`` are its HTTP endpoints.

    ``concurrency``: requests in flight at once (a round's visits). ``timeout_s``: the client timeout of
    one request; the first batch after a deploy warms the scorer up and may take seconds on a loaded
    machine, and a shorter timeout cancelled and retried it, which only added work.
    """

    name = "served app"

    def __init__(self, url: str, concurrency: int, timeout_s: float = 30.0, retries: int = 3) -> None:
        self.retries, self.calls = retries, Calls()
        self._client = httpx.Client(base_url=url, timeout=timeout_s,
                                    limits=httpx.Limits(max_connections=concurrency))
        self._pool = ThreadPoolExecutor(concurrency, thread_name_prefix="shopper")
        self._answers: list[dict] = []

    def __enter__(self) -> ServedApp:
        return self

    def __exit__(self, *exc) -> None:
        self._pool.shutdown()
        self._client.close()

    def recommend(self, world: World, users: np.ndarray, candidates: np.ndarray, k: int,
                  rng: np.random.Generator) -> Served:
        """Every visit's /recommend at once; a visit whose request failed, or got fewer than k items, is dropped."""
        bodies = visit_requests(world, users, candidates, k)
        answers = list(self._pool.map(lambda body: self._call("POST", "/recommend", body, self.calls.recommend_ms),
                                      bodies))
        ok = [i for i, a in enumerate(answers) if a is not None and len(a["items"]) == k]
        self.calls.failures += len(answers) - len(ok)
        self._answers = [answers[i] for i in ok]
        ids = np.array([[item["item_id"] for item in a["items"]] for a in self._answers], dtype=np.int64)
        return Served(answered=np.array(ok, dtype=np.int64), slates=world.item_index(ids.reshape(len(ok), k)),
                      explored=sum(bool(item["explored"]) for a in self._answers for item in a["items"]),
                      arms=[a["policy"] for a in self._answers])

    def learn(self, world: World, outcome: Round) -> None:
        """Every click of the round through /feedback, at once."""
        bodies = feedback_requests(world, self._answers, outcome.served.slates, outcome.step)
        sent = list(self._pool.map(lambda body: self._call("POST", "/feedback", body, self.calls.feedback_ms), bodies))
        self.calls.failures += sum(r is None for r in sent)

    def add_items(self, rows: pd.DataFrame) -> None:
        """The new products through PUT /items (the app embeds them at once)."""
        self.calls.failures += self._call("PUT", "/items", item_payload(rows), []) is None

    def _call(self, method: str, path: str, body: dict, timings: list[float]) -> dict | None:
        """One request, retried on 5xx and connection errors (a 4xx is final); its latency goes to
        ``timings``, each failed try to ``calls.errors``; None when it did not succeed."""
        for attempt in range(self.retries + 1):
            started = time.perf_counter()
            try:
                response = self._client.request(method, path, json=body)
                if response.status_code == 200:
                    timings.append(1000 * (time.perf_counter() - started))
                    return response.json()
                why = f"{method} {path}: HTTP {response.status_code} {response.text[:120]}"
                final = response.status_code < 500
            except httpx.HTTPError as err:
                why, final = f"{method} {path}: {type(err).__name__}", False
            self.calls.errors[why] = self.calls.errors.get(why, 0) + 1
            if final:
                return None
            time.sleep(0.2 * (attempt + 1))
        return None


def visit_requests(world: World, users: np.ndarray, candidates: np.ndarray, k: int) -> list[dict]:
    """/recommend bodies: each shopper's newest clicks as history, a page of candidates to rank."""
    from recsys.data.schemas import EVENT_TYPES

    hist, events, mask = world.histories(users, HISTORY)
    return [{"user_id": int(u), "k": k, "candidates": world.item_ids[c].tolist(), "history": world.item_ids[h[m]].tolist(),
             "history_events": [EVENT_TYPES[e] for e in ev[m]]}
            for u, c, h, ev, m in zip(users, candidates, hist, events, mask, strict=True)]


def feedback_requests(world: World, answers: list[dict], slates: np.ndarray, step) -> list[dict]:
    """/feedback bodies for every clicked slot, with the strongest event the shopper reached."""
    events = np.where(step.purchases, "purchase", np.where(step.carts, "cart", "click"))
    rows, slots = np.nonzero(step.clicks)
    return [{"impression_id": answers[j]["impression_id"], "item_id": int(world.item_ids[slates[j, s]]),
             "event": str(events[j, s])} for j, s in zip(rows, slots, strict=True)]


def item_payload(rows: pd.DataFrame) -> dict:
    """PUT /items body for new catalog rows (attributes: the table's JSON string as a mapping)."""
    return {"items": [{"item_id": int(r.item_id), "title": r.title, "category": r.category, "brand": r.brand,
                       "price": float(r.price), "attributes": json.loads(r.attributes or "{}")}
                      for r in rows.itertuples()]}
