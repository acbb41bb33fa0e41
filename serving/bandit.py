"""The ``Bandit`` deployment: one replica, the only writer of the policy state (a thin shell over ``BanditState``).

Its state survives the replica: ``__init__`` loads the latest snapshot and replays the WAL tail,
because Serve restarts a killed replica as a new process with none of the old one's memory. ``reconfigure`` applies the
``user_config`` arms live. It also keeps the versioned catalog of products added by
``PUT /items``, which scorer replicas pull, and learns from the scorers which model is served
(``use_model``: a live model update resets the linear posteriors, never the per-item evidence).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import time

import numpy as np
from ray import serve

from recsys.policies import Arm
from serving.bandit_state import BanditState
from serving.catalog import CatalogDelta, CatalogStore
from serving.config import ServeConfig, single_bandit_message
from serving.messages import Candidates, ExpiredImpression, Slate, SlateReply, UnknownImpression
from serving.telemetry import ServingMetrics

log = logging.getLogger("ray.serve")

TICK_S = 0.5
# Every method is ``async``: Serve runs sync methods in a thread pool, and the state has one writer
# that must never run in two threads at once. Async methods share the replica's one event loop (the
# replica's main loop in Serve's throughput mode), and every change of the state happens there under
# ``BanditState.writing``; only the policy's draws (``BanditState.recommend``) and the WAL's fsyncs
# run in worker threads, so health checks and queue-length probes are answered meanwhile.


# num_replicas=1 is the design, not a default: a second replica would hold its own pending impressions,
# so about half of all feedback would reach the replica that never served the slate (404). The app
# refuses any other count at deploy time (serving.app.check_single_bandit).
def refuse_replicas(ctx) -> None:
    """Fail the deployment (a clear DEPLOY_FAILED message) when Serve was told to run more than one bandit,
    e.g. a hand-edited ``num_replicas`` or ``autoscaling_config`` in a ``serve deploy`` YAML."""
    autoscaling = getattr(getattr(ctx, "_deployment_config", None), "autoscaling_config", None)
    if (getattr(ctx, "world_size", None) or 1) > 1 or autoscaling is not None:
        raise RuntimeError(single_bandit_message(f"Bandit deployment with {getattr(ctx, 'world_size', '?')} replicas"
                                                 + (" and autoscaling" if autoscaling is not None else "")))


@serve.deployment(num_replicas=1, max_ongoing_requests=256, ray_actor_options={"num_cpus": 0.25})
class Bandit:
    """Slates, impression ids, feedback, snapshots, A/B counters and the catalog of added items."""

    def __init__(self, config: dict) -> None:
        cfg = ServeConfig.from_args(config)
        refuse_replicas(serve.get_replica_context())
        self.state = BanditState(cfg, secret=os.environ.get(cfg.secret_env) or None)
        self.catalog = CatalogStore(cfg.state_dir / "catalog")
        self.max_catalog_items = cfg.max_catalog_items
        self.metrics = ServingMetrics()
        self.state.timed = self.metrics.timed
        self._ticker: asyncio.Task | None = None
        self.started = time.time()
        log.info("bandit: state at lsn %d (%d records replayed), catalog version %d",
                 self.state.lsn, self.state.replayed, self.catalog.version)

    async def reconfigure(self, user_config: dict) -> None:
        """Apply ``{"arms": [...]}`` live; posteriors are kept (Policy.with_params)."""
        if not isinstance(user_config, dict) or not user_config.get("arms"):
            raise ValueError(f"Bandit user_config {user_config!r}: give {{arms: [{{name, policy, params, weight}}, ...]}}")
        async with self.state.writing:
            self.state.reconfigure([Arm.from_value(a) for a in user_config["arms"]])

    def _ensure_ticker(self) -> None:
        if self._ticker is None or self._ticker.done():
            self._ticker = asyncio.get_running_loop().create_task(self._tick_forever())

    async def _tick_forever(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            try:
                async with self.state.writing:
                    self.state.tick(snapshot=False)
                await self.state.maybe_snapshot_async()  # only copying the state holds the loop
                self.metrics.arms(self.state.experiments())
            except Exception:  # a failed tick must not stop future ticks; check_health reports it
                log.exception("bandit: periodic work failed")

    async def select(self, user_id: int, candidates: Candidates, k: int) -> SlateReply:
        """Pick and log the slate for one user (raises ``FeaturesNeeded`` or ``Overloaded``, logging nothing)."""
        self._ensure_ticker()
        body = await self.state.recommend(user_id, candidates.context, k, candidates.model_version,
                                          candidates.user_vector)
        explored = sum(item["explored"] for item in body["items"])
        self.metrics.served(body["policy"], len(body["items"]), explored)
        slate = Slate(body["impression_id"], body["policy"], candidates.model_version, body["items"])
        return SlateReply(slate, self.state.arm_table(), self.catalog.version)

    async def feedback(self, impression_id: str, item_id: int, reward: float | None, event: str | None) -> str:
        """"accepted" or "duplicate" once the WAL has it; raises ``UnknownImpression`` (404) or
        ``ExpiredImpression`` (410)."""
        self._ensure_ticker()
        try:
            status = await self.state.feedback(impression_id, item_id, reward, event)
        except UnknownImpression:
            self.metrics.feedback.inc(1, tags={"arm": "", "status": "unknown"})
            raise
        except ExpiredImpression:
            self.metrics.feedback.inc(1, tags={"arm": "", "status": "expired"})
            raise
        self.metrics.feedback.inc(1, tags={"arm": "", "status": status})
        return status

    async def use_model(self, version: str) -> bool:
        """A scorer serves ``version`` from now on; a new one resets the linear posteriors (WAL-logged)."""
        changed = await self.state.use_model(version)
        if changed:
            log.info("bandit: now serving model %s; linear posteriors start afresh", version)
        return changed

    async def add_items(self, item_ids: np.ndarray, vectors: np.ndarray, rows: list[dict], only_new: bool = False,
                        model: str = "") -> int:
        """Persist products embedded by ``model`` as a new catalog version and return the newest version.

        ``only_new`` skips ids the catalog already has (a scorer's start-up backlog of shop items, which
        the shop's own item table bounds); any other batch must fit ``max_catalog_items`` (``CatalogFull``).
        """
        if only_new:
            keep = ~np.isin(item_ids, self.catalog.item_ids())
            item_ids, vectors, rows = item_ids[keep], vectors[keep], [r for r, k in zip(rows, keep, strict=True) if k]
            if not len(item_ids):
                return self.catalog.version
        else:
            self.catalog.check_room(item_ids, self.max_catalog_items)
        return self.catalog.add(item_ids, vectors, rows, model)

    async def catalog_since(self, version: int, model: str | None = None) -> CatalogDelta:
        """Products added after ``version`` with ``model``'s vectors (what a scorer replica is missing).

        Only the replicas of the current model are asked to re-embed the others' products: a replica
        still on the previous model during a rollout keeps the vectors it has, so two models never
        re-embed each other's entries back and forth.
        """
        delta = self.catalog.since(version, model)
        if model != self.state.model_version and delta.to_embed:
            delta = dataclasses.replace(delta, to_embed=[])
        return delta

    async def catalog_version(self) -> int:
        """The newest catalog version."""
        return self.catalog.version

    async def stats(self) -> dict:
        """``GET /stats``: the state's report, the catalog and the time this replica spent in each stage."""
        return {**self.state.stats(), "catalog_version": self.catalog.version, "replica_started": self.started,
                "stages_ms": self.metrics.stage_summary()}

    async def experiments(self) -> dict:
        """``GET /experiments``."""
        return {"arms": self.state.experiments(), "unit": "impression (a served slate); a click is any positive reward"}

    async def snapshot(self) -> str:
        """Write a snapshot now (operations, tests)."""
        async with self.state.writing:
            return str(self.state.snapshot())

    async def check_health(self) -> None:
        """Unhealthy once the WAL writer has stopped (``WalFailed``) or the state directory stops accepting
        writes: Serve then replaces the replica, and the new one replays the WAL."""
        self._ensure_ticker()  # expiry and snapshots run even when no request has come since a restart
        self.state.check_health()

    def __del__(self) -> None:
        try:
            self.state.close()
        except Exception:  # interpreter shutdown: the WAL already holds every acknowledged record
            pass
