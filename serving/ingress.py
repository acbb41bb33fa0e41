"""The HTTP ingress: FastAPI behind Ray Serve, holding handles to the scorer and the bandit.

Endpoints and shapes are in ``serving.api`` and the README's "HTTP API"; OpenAPI is at ``/docs``. Two
guards run before any body is read: the bearer tokens (401/403) and a body-size cap (411/413).
The shop's token (``SERENDIP_API_TOKEN``) guards /recommend, /feedback, /healthz and the docs; the
operator's (``SERENDIP_OPERATOR_TOKEN``) guards writes and business data: PUT /items, /stats,
/experiments. Every handle call has a deadline; only idempotent calls are retried. Any error from a
downstream deployment becomes a 503 (429 for a full queue or catalog) with ``Retry-After`` and a
reason, never a stack trace.
"""

# No ``from __future__ import annotations`` here: FastAPI must see the request models themselves
# on the methods that Serve's class-based ingress re-binds.
import asyncio
import hmac
import json
import os
import time

import numpy as np
from fastapi import FastAPI, HTTPException, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from ray import serve
from ray.serve.handle import DeploymentHandle

from serving import ingress_mode
from serving.api import (
    FeedbackRequest,
    FeedbackResponse,
    ItemsRequest,
    ItemsResponse,
    RecommendRequest,
    RecommendResponse,
)
from serving.catalog import CatalogFull
from serving.experiments import assign_arm
from serving.messages import (
    ArmRoute,
    ExpiredImpression,
    FeaturesNeeded,
    Overloaded,
    ScoreRequest,
    Slate,
    UnknownImpression,
    unwrap,
)
from serving.telemetry import ServingMetrics
from serving.wal import WalFailed

MAX_BODY_BYTES = 1 << 20
RETRY_AFTER_S = 5
"""What a 503 or 429 asks the client to wait: a replaced bandit replays its WAL in seconds."""
OPERATOR_ROUTES = {("PUT", "/items"), ("GET", "/stats"), ("GET", "/experiments")}
"""Writes and business data: the operator's token, never the shop's."""

api = FastAPI(
    title="Serendip",
    summary="Slates that explore, with propensities; feedback that teaches the bandit.",
    version="1",
)


class Guard:
    """The bearer tokens of this replica (set in ``Ingress.__init__``; None = not set)."""

    token: str | None = None
    """The shop's token (/recommend, /feedback, /healthz, docs); None = those are open."""
    operator_token: str | None = None
    """The operator's token (OPERATOR_ROUTES); None = open only while no shop token is set either."""


def token_check(method: str, path: str, authorization: str) -> JSONResponse | None:
    """401/403 for a request ``Guard``'s tokens do not admit; None when it may go on."""
    if (method, path.rstrip("/") or "/") in OPERATOR_ROUTES:
        wanted, name = Guard.operator_token, "SERENDIP_OPERATOR_TOKEN"
        if wanted is None and Guard.token is not None:
            return JSONResponse({"detail": "PUT /items, /stats and /experiments take the operator token, and none is "
                                           "set on the server (SERENDIP_OPERATOR_TOKEN); the shop token is not enough"},
                                status_code=403)
    else:
        wanted, name = Guard.token, "SERENDIP_API_TOKEN"
    if wanted is None:
        return None
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), wanted.encode()):
        return JSONResponse({"detail": f"missing or wrong bearer token (Authorization: Bearer <{name}>)"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})
    return None


@api.middleware("http")
async def _guard(request: Request, call_next):
    """Tokens first (401/403), then the body-size cap (411/413), before FastAPI parses anything."""
    refused = token_check(request.method, request.url.path, request.headers.get("authorization", ""))
    if refused is not None:
        return refused
    if "content-length" not in request.headers and "chunked" in request.headers.get("transfer-encoding", "").lower():
        # a chunked body has no length to check before reading; refusing it keeps the cap unbypassable
        return JSONResponse({"detail": "chunked request bodies are not accepted; send Content-Length"},
                            status_code=411)
    length = request.headers.get("content-length", "0")
    if not length.isdigit() or int(length) > MAX_BODY_BYTES:
        return JSONResponse({"detail": f"request body over {MAX_BODY_BYTES} bytes or unreadable length"},
                            status_code=413)
    return await call_next(request)


def _json_safe(value):
    """``value`` with NaN, infinities and lone surrogates as plain text, so a 422 that echoes them can be
    serialized (UTF-8 has no encoding for a lone surrogate: the response itself would fail with a 500)."""
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


@api.exception_handler(RequestValidationError)
async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
    """422 naming the field; a body with NaN or Infinity (which Python's json accepts) stays a 422, not a 500."""
    return JSONResponse({"detail": _json_safe(jsonable_encoder(err.errors()))}, status_code=422)


class DeadlinePassed(TimeoutError):
    """A handle call did not answer within its deadline (a hung or dead replica)."""


def http_error(stage: str, err: BaseException) -> HTTPException:
    """The client's answer to a failed downstream call: 429 when full, else 503; always with Retry-After.

    A replica's exception arrives wrapped (Ray's RayTaskError, an instance of the cause's class too):
    the class is checked on the cause, and the detail is the cause's own message, not Ray's trace.
    """
    cause = unwrap(err)
    retry = {"Retry-After": str(RETRY_AFTER_S)}
    if isinstance(cause, UnknownImpression):
        return HTTPException(status_code=404, detail=str(cause))
    if isinstance(cause, ExpiredImpression):
        return HTTPException(status_code=410, detail=str(cause))
    if isinstance(cause, (Overloaded, CatalogFull)):
        return HTTPException(status_code=429, detail=f"{stage}: {cause}", headers=retry)
    if isinstance(cause, WalFailed):
        reason = "the bandit's write-ahead log failed; a new replica is replaying it"
    elif isinstance(err, DeadlinePassed):
        reason = str(err)
    else:
        reason = type(cause).__name__
    return HTTPException(status_code=503, detail=f"{stage} is unavailable ({reason}); retry shortly", headers=retry)


async def call_with_deadline(stage: str, call, timeout_s: float, attempts: int = 1):
    """``await call()`` (a handle's ``.remote(...)``) within ``timeout_s``, up to ``attempts`` times.

    Pass ``attempts > 1`` only for idempotent calls: a retry of a call that timed out may run twice.
    """
    for attempt in range(attempts):
        response = call()
        try:
            return await asyncio.wait_for(response, timeout_s)
        except TimeoutError:
            response.cancel()
            if attempt == attempts - 1:
                raise DeadlinePassed(f"{stage} gave no answer in {timeout_s:g} s (tried {attempts}x)") from None
    raise ValueError(f"call_with_deadline: attempts={attempts} must be >= 1")


@serve.deployment(max_ongoing_requests=128, ray_actor_options={"num_cpus": 0.25})
@serve.ingress(api)
class Ingress:
    """POST /recommend, POST /feedback, PUT /items, GET /healthz, /stats, /experiments."""

    def __init__(self, scorer: DeploymentHandle, bandit: DeploymentHandle, token_env: str = "SERENDIP_API_TOKEN",
                 score_timeout_s: float = 10.0, score_attempts: int = 3,
                 operator_token_env: str = "SERENDIP_OPERATOR_TOKEN", call_timeout_s: float = 10.0) -> None:
        self.scorer = scorer
        self.bandit = bandit
        self.score_timeout_s = score_timeout_s
        self.score_attempts = score_attempts
        self.call_timeout_s = call_timeout_s
        Guard.token = os.environ.get(token_env) or None
        Guard.operator_token = os.environ.get(operator_token_env) or None
        self.catalog_version = 0
        """The newest catalog version a bandit reply named (scorers behind it catch up)."""
        self.arms: list[ArmRoute] | None = None
        """The arms as the last bandit reply named them (None: ask for features until it has)."""
        self.metrics = ServingMetrics()

    def _wants_features(self, user_id: int) -> bool:
        """Whether this user's arm reads features (True until the bandit has told us its arms)."""
        if self.arms is None:
            return True
        return self.arms[assign_arm(user_id, [a.weight for a in self.arms])].reads_features

    async def _call(self, stage: str, call, attempts: int = 1, timeout_s: float | None = None):
        """A handle call under its deadline: a replica on a node that died without a word would hold the
        request until Ray notices (tens of seconds). Only idempotent calls pass ``attempts > 1``."""
        return await call_with_deadline(stage, call, timeout_s or self.call_timeout_s, attempts)

    async def _slate(self, body: RecommendRequest, with_features: bool) -> Slate:
        # Scoring is pure, so it is retried (on another replica); select is not: the bandit may have
        # logged the slate already, and a second one would be a second impression.
        request = ScoreRequest.of(body, self.catalog_version, with_features)
        candidates = await self._call("scoring", lambda: self.scorer.score.remote(request),
                                      self.score_attempts, self.score_timeout_s)
        reply = await self._call("slate selection", lambda: self.bandit.select.remote(body.user_id, candidates, body.k))
        self.arms = reply.arms
        self.catalog_version = max(self.catalog_version, reply.catalog_version)
        return reply.slate

    @api.post("/recommend", response_model=RecommendResponse)
    async def recommend(self, body: RecommendRequest) -> dict:
        """A slate of ``k`` items for the user, each with its propensity; keep ``impression_id`` for /feedback."""
        start = time.perf_counter()
        with_features = self._wants_features(body.user_id)
        try:
            try:
                slate = await self._slate(body, with_features)
            except FeaturesNeeded:  # the arms changed since the last slate: the user's arm now reads features
                if with_features:
                    raise
                slate = await self._slate(body, True)
        except Exception as err:  # a crashed or restarting replica: say so, with no trace
            raise http_error("recommendation", err) from None
        self.metrics.observe("recommend", (time.perf_counter() - start) * 1000)
        return slate.body()

    @api.post("/feedback", response_model=FeedbackResponse,
              responses={404: {"description": "unknown or forged impression id"},
                         410: {"description": "the reward window has closed"}})
    async def feedback(self, body: FeedbackRequest) -> dict:
        """A reward or event for one shown item; acknowledged only once it is in the fsynced WAL."""
        start = time.perf_counter()
        try:  # idempotent per (impression, item, event): safe to retry
            status = await self._call("feedback", lambda: self.bandit.feedback.remote(
                body.impression_id, body.item_id, body.reward, body.event), self.score_attempts)
        except Exception as err:  # UnknownImpression 404, ExpiredImpression 410, else 429/503
            raise http_error("feedback", err) from None
        self.metrics.observe("feedback", (time.perf_counter() - start) * 1000)
        return {"status": status}

    @api.put("/items", response_model=ItemsResponse)
    async def put_items(self, body: ItemsRequest) -> dict:
        """Add or update products; they are embedded by the item tower and recommendable at once."""
        rows = [
            {**item.model_dump(exclude={"attributes"}), "attributes": json.dumps(item.attributes, sort_keys=True)}
            for item in body.items
        ]
        ids = np.asarray([r["item_id"] for r in rows], dtype=np.int64)
        try:  # embedding is pure (retried); each add_items writes a catalog version (not retried)
            embedded = await self._call("item embedding", lambda: self.scorer.embed.remote(rows), self.score_attempts)
            version = await self._call("catalog", lambda: self.bandit.add_items.remote(
                ids, embedded.vectors, rows, model=embedded.model_version))
        except Exception as err:
            raise http_error("item embedding", err) from None
        self.catalog_version = max(self.catalog_version, version)
        return {"added": len(rows) - embedded.known, "updated": embedded.known, "catalog_version": version}

    @api.get("/healthz")
    async def healthz(self) -> dict:
        """Liveness of the HTTP ingress."""
        return {"status": "ok"}

    @api.get("/stats")
    async def stats(self) -> dict:
        """The policies' state: per-arm counters and parameters, WAL and snapshot positions, and the time
        spent in each stage (``stages_ms``: this ingress replica, one scorer replica, the bandit)."""
        try:
            stats, scorer = await asyncio.gather(
                self._call("stats", lambda: self.bandit.stats.remote(), self.score_attempts),
                self._call("stats", lambda: self.scorer.stage_summary.remote(), self.score_attempts))
        except Exception as err:
            raise http_error("stats", err) from None
        stats["stages_ms"] = {"ingress": self.metrics.stage_summary(), "scorer": scorer, "bandit": stats["stages_ms"]}
        stats["ingress_mode"] = ingress_mode.running_mode()  # what this replica's process runs under
        return stats

    @api.get("/experiments")
    async def experiments(self) -> dict:
        """The A/B arms: impressions, clicks, CTR with a 95% Wilson interval, lift and p-value vs the control."""
        try:
            return await self._call("experiments", lambda: self.bandit.experiments.remote(), self.score_attempts)
        except Exception as err:
            raise http_error("experiments", err) from None
