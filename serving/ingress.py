"""The HTTP ingress: FastAPI behind Ray Serve, holding handles to the scorer and the bandit.

Endpoints and shapes are DESIGN.md's "Interfaces users touch"; OpenAPI is at ``/docs``. Two
guards run before any body is read: the optional bearer token (401) and a body-size cap (413).
Any error from a downstream deployment becomes a 503 with a reason, never a stack trace.
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

from serving.api import (
    FeedbackRequest,
    FeedbackResponse,
    ItemsRequest,
    ItemsResponse,
    RecommendRequest,
    RecommendResponse,
)
from serving.experiments import assign_arm
from serving.telemetry import ServingMetrics

MAX_BODY_BYTES = 1 << 20

api = FastAPI(
    title="Serendip",
    summary="Slates that explore, with propensities; feedback that teaches the bandit.",
    version="1",
)


class Guard:
    """The bearer token of this replica (set in ``Ingress.__init__``; None = no token required)."""

    token: str | None = None


@api.middleware("http")
async def _guard(request: Request, call_next):
    """Token first (401), then the body-size cap (413), before FastAPI parses anything."""
    if Guard.token is not None:
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), Guard.token.encode()):
            return JSONResponse({"detail": "missing or wrong bearer token (Authorization: Bearer <SERENDIP_API_TOKEN>)"},
                                status_code=401, headers={"WWW-Authenticate": "Bearer"})
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
    """``value`` with NaN and infinities as strings, so a 422 that echoes them can be serialized."""
    if isinstance(value, float) and not np.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


@api.exception_handler(RequestValidationError)
async def _invalid(request: Request, err: RequestValidationError) -> JSONResponse:
    """422 naming the field; a body with NaN or Infinity (which Python's json accepts) stays a 422, not a 500."""
    return JSONResponse({"detail": _json_safe(jsonable_encoder(err.errors()))}, status_code=422)


def _unavailable(stage: str, err: Exception) -> HTTPException:
    return HTTPException(status_code=503, detail=f"{stage} is unavailable ({type(err).__name__}); retry shortly")


@serve.deployment(max_ongoing_requests=128, ray_actor_options={"num_cpus": 0.25})
@serve.ingress(api)
class Ingress:
    """POST /recommend, POST /feedback, PUT /items, GET /healthz, /stats, /experiments."""

    def __init__(self, scorer: DeploymentHandle, bandit: DeploymentHandle, token_env: str = "SERENDIP_API_TOKEN",
                 score_timeout_s: float = 10.0, score_attempts: int = 3) -> None:
        self.scorer = scorer
        self.bandit = bandit
        self.score_timeout_s = score_timeout_s
        self.score_attempts = score_attempts
        Guard.token = os.environ.get(token_env) or None
        self.catalog_version = 0
        self.arm_table: list[tuple[float, bool]] | None = None
        self.metrics = ServingMetrics()

    def _wants_features(self, user_id: int) -> bool:
        """Whether this user's arm reads features (True until the bandit has told us its arms)."""
        if self.arm_table is None:
            return True
        return self.arm_table[assign_arm(user_id, [w for w, _ in self.arm_table])][1]

    async def _candidates(self, body: RecommendRequest, with_features: bool):
        """The scorer's answer, under a deadline per call: a replica on a node that died without a word
        would hold the request until Ray notices (tens of seconds); a retry goes to a live replica."""
        for attempt in range(self.score_attempts):
            response = self.scorer.score.remote(body.model_dump(), self.catalog_version, with_features)
            try:
                return await asyncio.wait_for(response, self.score_timeout_s)
            except TimeoutError:
                response.cancel()
                if attempt == self.score_attempts - 1:
                    raise
        raise AssertionError("unreachable: score_attempts >= 1")

    async def _slate(self, body: RecommendRequest, with_features: bool) -> dict:
        candidates = await self._candidates(body, with_features)
        result = await self.bandit.select.remote(body.user_id, candidates, body.k)
        self.arm_table = [tuple(a) for a in result.pop("arm_table")]
        self.catalog_version = max(self.catalog_version, result.pop("catalog_version"))
        return result

    @api.post("/recommend", response_model=RecommendResponse)
    async def recommend(self, body: RecommendRequest) -> dict:
        """A slate of ``k`` items for the user, each with its propensity; keep ``impression_id`` for /feedback."""
        start = time.perf_counter()
        try:
            result = await self._slate(body, self._wants_features(body.user_id))
            if result.get("need_features"):  # the arms changed since the last slate
                result = await self._slate(body, True)
        except Exception as err:  # a crashed or restarting replica: say so, with no trace
            raise _unavailable("recommendation", err) from None
        self.metrics.latency.observe((time.perf_counter() - start) * 1000, tags={"stage": "recommend"})
        return result

    @api.post("/feedback", response_model=FeedbackResponse,
              responses={404: {"description": "unknown or forged impression id"},
                         410: {"description": "the reward window has closed"}})
    async def feedback(self, body: FeedbackRequest) -> dict:
        """A reward or event for one shown item; acknowledged only once it is in the fsynced WAL."""
        start = time.perf_counter()
        try:
            result = await self.bandit.feedback.remote(body.impression_id, body.item_id, body.reward, body.event)
        except Exception as err:
            raise _unavailable("feedback", err) from None
        if "error" in result:
            raise HTTPException(status_code=result["error"], detail=result["detail"])
        self.metrics.latency.observe((time.perf_counter() - start) * 1000, tags={"stage": "feedback"})
        return result

    @api.put("/items", response_model=ItemsResponse)
    async def put_items(self, body: ItemsRequest) -> dict:
        """Add or update products; they are embedded by the item tower and recommendable at once."""
        rows = [
            {**item.model_dump(exclude={"attributes"}), "attributes": json.dumps(item.attributes, sort_keys=True)}
            for item in body.items
        ]
        ids = np.asarray([r["item_id"] for r in rows], dtype=np.int64)
        try:
            embedded = await self.scorer.embed.remote(rows)
            version = await self.bandit.add_items.remote(ids, embedded.vectors, rows, model=embedded.model_version)
        except Exception as err:
            raise _unavailable("item embedding", err) from None
        self.catalog_version = max(self.catalog_version, version)
        return {"added": len(rows) - embedded.known, "updated": embedded.known, "catalog_version": version}

    @api.get("/healthz")
    async def healthz(self) -> dict:
        """Liveness of the HTTP ingress."""
        return {"status": "ok"}

    @api.get("/stats")
    async def stats(self) -> dict:
        """The policies' state: per-arm counters and parameters, WAL and snapshot positions."""
        try:
            return await self.bandit.stats.remote()
        except Exception as err:
            raise _unavailable("stats", err) from None

    @api.get("/experiments")
    async def experiments(self) -> dict:
        """The A/B arms: impressions, clicks, CTR with a 95% Wilson interval, lift and p-value vs the control."""
        try:
            return await self.bandit.experiments.remote()
        except Exception as err:
            raise _unavailable("experiments", err) from None
