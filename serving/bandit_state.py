"""The bandit's durable state machine, Ray-free: the Serve ``Bandit`` deployment is a thin shell around it.

It is the only writer of the policies' posteriors. Every change is a WAL record applied by one
function, ``_apply``, both live and on replay, so a restarted replica (snapshot + WAL tail) ends in
exactly the state the crashed one had acknowledged:

- ``config``: the arms (policy and exploration parameters) changed;
- ``imp``: a slate was served (pending until its reward window closes);
- ``fb``: one event for one (impression, item), applied once: the idempotency key is (impression,
  item, event), and the slot's reward is the strongest event's (``serving.feedback_events``);
- ``exp``: impressions became final: unanswered slots count with reward 0;
- ``flush``: a Parquet part of the impression log was written;
- ``model``: a new model (embedding space) is served: linear posteriors start afresh.

Linear posteriors (LinUCB, LinTS) are weights over the model's embedding features, so they belong
to one model version; per-item evidence (greedy, epsilon, softmax, UCB1, Thompson) is keyed by item
id and survives a model change. Feedback on a slate that another model scored is dropped from the
linear update (see ``_update``).

The policies are ``recsys.policies`` objects, used unchanged; the A/B split, the HMAC ids, the
delayed rewards and the impression log live here.

A record is appended before it is applied, so everything that can fail is built and validated
first (the slate, the feedback row, the arms). Should a record still fail to apply, replay logs it
with its lsn and sets it aside in ``state_dir/quarantine/`` instead of failing every restart.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict
from pathlib import Path

import numpy as np

from recsys.data.schemas import EVENT_REWARDS
from recsys.metrics.ab import ArmCounts, experiment_report
from recsys.policies import Arm, Context, Feedback, Policy, make_policy
from recsys.policies.linear import LinearPolicy
from recsys.policies.state import copy_state
from serving.config import ServeConfig
from serving.experiments import assign_arm
from serving.feedback_events import correct_reward, event_bit, upgraded
from serving.impression_id import ImpressionSigner, InvalidImpressionId, load_key
from serving.impression_log import ImpressionLog
from serving.messages import ArmRoute, ExpiredImpression, Overloaded, UnknownImpression
from serving.pending import PendingImpression, PendingStore
from serving.purchase_exclusion import PurchaseExclusion
from serving.slate_draw import SlateDraw, draw_slate, fresh_copy, pending_impression, slate_items
from serving.snapshot import BanditSnapshot, latest_snapshot, prune_snapshots, write_snapshot
from serving.wal import WriteAheadLog, WriterLock, quarantine, replay

log = logging.getLogger(__name__)


class BanditState:
    """Arms, policies, pending impressions, counters, WAL and snapshots of the single bandit writer."""

    def __init__(self, config: ServeConfig, arms: list[Arm] | None = None,
                 clock: Callable[[], float] = time.time, secret: str | None = None) -> None:
        """``config``: the serving config (state_dir, reward window, snapshot, WAL and log knobs, seed);
        ``secret``: the HMAC key text (``config.secret_env``'s value; None = the key file in state_dir)."""
        self.config = config
        self.clock = clock
        root = Path(config.state_dir)
        root.mkdir(parents=True, exist_ok=True)
        self.lock = WriterLock(root)
        self.closed = False
        self.signer = ImpressionSigner(load_key(root, secret))
        self.rng = np.random.default_rng(config.seed)
        self.window_ms = int(config.reward_window_s * 1000)
        self.arms: list[Arm] = []
        self.policies: dict[tuple[str, str], Policy] = {}
        self.counts: dict[str, ArmCounts] = {}
        self.pending = PendingStore()
        self.purchases = PurchaseExclusion()
        self.next_serial = 1
        self.last_ms = 0
        self.model_version = ""
        self.log = ImpressionLog(root / "impressions", config.log_batch_rows, config.log_interval_s)
        self.snapshot_lsn = self._restore(root)
        self.wal = WriteAheadLog(root / "wal", self.lsn + 1, config.wal_group_size, config.wal_group_wait_s)
        self._last_snapshot_time = clock()
        self._snapshotting = False
        """A snapshot's files are being written (``maybe_snapshot_async``); no second one starts meanwhile."""
        self.writing = asyncio.Lock()
        """Held by a draw in its worker thread until its slate is logged; every change on the loop takes it."""
        self.timed: Callable[[str], AbstractContextManager] = nullcontext
        """``timed(stage)`` around each stage (the deployment sets ``ServingMetrics.timed``)."""
        if arms is not None:
            self.reconfigure(arms)

    # -- recovery ---------------------------------------------------------------------------
    def _restore(self, root: Path) -> int:
        """Load the latest snapshot, replay the WAL after it; return the snapshot's lsn."""
        snap = latest_snapshot(root / "snapshots")
        self.lsn = 0
        if snap is not None:
            self._load_snapshot(snap)
        self.replayed = 0
        for lsn, record in replay(root / "wal", self.lsn):
            try:
                self._apply(record, lsn)
            except Exception as err:  # a poison record must not brick every restart
                quarantine(root, lsn, record, err)
            self.lsn = lsn
            self.replayed += 1
        if self.replayed:
            log.info("bandit: replayed %d WAL records after snapshot lsn %d", self.replayed, snap.lsn if snap else 0)
        return snap.lsn if snap else 0

    def _load_snapshot(self, snap: BanditSnapshot) -> None:
        h = snap.header
        self.lsn = snap.lsn
        self.arms = [Arm(**a) for a in h["arms"]]
        self.policies = dict(snap.policies)
        self.counts = {name: ArmCounts(**c) for name, c in h["counts"].items()}
        self.next_serial, self.last_ms = int(h["next_serial"]), int(h["last_ms"])
        self.model_version = h.get("model_version", "")  # snapshots from before model versions: none yet
        self.pending = PendingStore.from_records(snap.pending)
        self.log.restore(h["log"])
        self.purchases.load(snap.arrays)

    # -- the one place state changes ----------------------------------------------------------
    def _record(self, record: dict) -> int:
        """Append ``record`` to the WAL, apply it, return its lsn."""
        lsn = self.wal.append(record)
        self.lsn = lsn
        try:
            self._apply(record, lsn)
        except Exception as err:  # replay will skip it too; callers validate first, so this is a bug
            quarantine(self.config.state_dir, lsn, record, err)
            raise
        return lsn

    def _apply(self, r: dict, lsn: int) -> None:
        kind = r["t"]
        if kind == "imp":
            imp = PendingImpression.from_record(r)
            self.pending.add(imp)
            c = self.counts.setdefault(imp.arm, ArmCounts())
            c.impressions += 1
            c.items_shown += len(imp.item_ids)
            c.items_explored += int(imp.explored.sum())
            self.next_serial = max(self.next_serial, imp.serial + 1)
            self.last_ms = max(self.last_ms, imp.issued_ms)
        elif kind == "fb":
            self._apply_feedback(r)
        elif kind == "exp":
            for serial in r["serials"]:
                self._finalize(self.pending.pop(serial))
        elif kind == "flush":
            # on replay the same rows are waiting, so rewriting the part gives the same files
            try:
                self.log.flush()
            except ValueError as err:  # rows the schema refuses would fail every later part too
                quarantine(self.config.state_dir, lsn, {**r, "rows": self.log.state()}, err)
                self.log.discard()
        elif kind == "config":
            self._apply_config([Arm(**a) for a in r["arms"]])
        elif kind == "model":
            self._apply_model(r["version"])
        else:
            raise ValueError(f"WAL record type {kind!r} is unknown; this state directory was written by a newer version")

    def _apply_config(self, arms: list[Arm]) -> None:
        for arm in arms:
            key = (arm.name, arm.policy)
            if key in self.policies:
                self.policies[key] = self.policies[key].with_params(**arm.params)
            else:
                self.policies[key] = arm.build()
            self.counts.setdefault(arm.name, ArmCounts())
        self.arms = arms

    def _apply_model(self, version: str) -> None:
        """A new embedding space: every linear posterior restarts from its prior; per-item evidence stays.

        The first version a state learns of (a new state, or one written before versions were kept)
        names the space its posteriors were learned in, so it resets nothing.
        """
        if self.model_version:
            for key, policy in self.policies.items():
                if isinstance(policy, LinearPolicy):
                    self.policies[key] = fresh_copy(policy)
        self.model_version = version

    def _apply_feedback(self, r: dict) -> None:
        """One event on one slot: the first teaches the slot, a stronger one its increment (feedback_events)."""
        imp = self.pending.get(int(r["serial"]))
        if imp is None:
            log.warning("WAL feedback for impression %s that is not pending; skipped", r["serial"])
            return
        slot, reward, bit = int(r["slot"]), float(r["reward"]), event_bit(r.get("event"))
        if imp.seen[slot] & bit:
            return
        old = float(imp.rewards[slot])
        new = upgraded(old, reward)
        first_click = new > 0 and not np.any(np.nan_to_num(imp.rewards) > 0)
        if np.isnan(old):
            self._update(imp, np.array([slot]), np.array([new]))
        elif new > old:
            self._update(imp, np.array([slot]), np.array([new]), correction=new - old)
        imp.rewards[slot] = new
        imp.seen[slot] |= bit
        c = self.counts.setdefault(imp.arm, ArmCounts())
        c.feedback += 1
        c.reward_sum += new - np.nan_to_num(old)
        c.positive_feedback += int(new > 0 and not np.nan_to_num(old) > 0)
        c.clicked += int(first_click)
        if r.get("event") == "purchase":
            self.purchases.add(imp.user_id, imp.item_ids[slot])

    def _update(self, imp: PendingImpression, slots: np.ndarray, rewards: np.ndarray,
                correction: float | None = None) -> None:
        """Teach the arm's policy these slots' rewards, or with ``correction`` raise one learned row's reward by it."""
        policy = self.policies.get((imp.arm, imp.policy))
        if policy is None:
            policy = self.policies[(imp.arm, imp.policy)] = make_policy(imp.policy)
        if isinstance(policy, LinearPolicy) and not self._current_space(imp):
            # Dropped, not routed to the old model's posterior: that posterior was discarded at the
            # switch (nothing would ever read it again), and features of another embedding space are
            # meaningless to this one. The reward still counts for the arm and goes to the log.
            return
        fb = self._feedback_rows(imp, slots, rewards)
        if correction is None:
            policy.update(fb)
        else:
            correct_reward(policy, fb, correction)

    @staticmethod
    def _feedback_rows(imp: PendingImpression, slots: np.ndarray, rewards: np.ndarray) -> Feedback:
        """The policy's rows for these slots (raises on a reward outside [0, 1]: call it before logging)."""
        return Feedback(
            item_ids=imp.item_ids[slots], rewards=rewards, positions=slots,
            features=None if imp.features is None else imp.features[slots],
            prior=None if imp.prior is None else imp.prior[slots],
        )

    def _finalize(self, imp: PendingImpression) -> None:
        """The window closed: unanswered slots teach reward 0; the rows go to the impression log."""
        unanswered = np.flatnonzero(np.isnan(imp.rewards))
        if len(unanswered):
            self._update(imp, unanswered, np.zeros(len(unanswered)))
        rewards = np.nan_to_num(imp.rewards, nan=0.0)
        self.log.add(self.signer.issue(imp.serial, imp.issued_ms), imp.issued_ms, imp.user_id, imp.arm,
                     imp.item_ids, imp.propensities, imp.scores, rewards, imp.context)

    def _current_space(self, imp: PendingImpression) -> bool:
        """Whether ``imp`` was scored by the model the linear posteriors belong to (and kept its features)."""
        if imp.features is None:
            return False
        return imp.context is None or not imp.context.model_version or imp.context.model_version == self.model_version

    # -- requests -------------------------------------------------------------------------------
    def now_ms(self) -> int:
        """The clock in Unix milliseconds, never behind the last served slate."""
        return max(int(self.clock() * 1000), self.last_ms)

    def arm_table(self) -> list[ArmRoute]:
        """Weight and whether it reads features, per arm: the ingress asks the scorer for features only when needed."""
        return [ArmRoute(a.weight, isinstance(self.policies[(a.name, a.policy)], LinearPolicy)) for a in self.arms]

    def arm_for(self, user_id: int) -> Arm:
        """The user's A/B arm (stable hash of user_id)."""
        return self.arms[assign_arm(user_id, [a.weight for a in self.arms])]

    def select(self, user_id: int, ctx: Context | None, k: int, model_version: str = "",
               user_vector: np.ndarray | None = None) -> dict:
        """Pick the user's slate with their arm's policy, log it as pending, return the response body.

        The candidates, with ``model_version`` and the ``user_vector`` they were scored with, are
        logged as the slate's decision context. A linear policy given a context without features
        raises ``FeaturesNeeded`` before anything is logged.
        """
        return self.log_slate(self.draw(user_id, ctx, k, model_version, user_vector))

    def draw(self, user_id: int, ctx: Context | None, k: int, model_version: str = "",
             user_vector: np.ndarray | None = None) -> SlateDraw:
        """``select``'s CPU part: the user's arm draws a slate. It changes nothing but the sampling rng and
        the policy's caches, so it may run in a worker thread, provided nothing else touches the state
        until ``log_slate`` has logged it (``recommend`` holds ``writing`` across both)."""
        arm = self.arm_for(user_id)
        ctx = None if ctx is None else self.purchases.without_purchases(user_id, ctx)
        if ctx is not None and min(int(k), len(ctx.item_ids)) > 0 and self.pending.nbytes > self.config.max_pending_mb * 2**20:
            raise Overloaded(
                f"{len(self.pending)} pending impressions hold {self.pending.nbytes / 2**20:.0f} MiB, over "
                f"max_pending_mb={self.config.max_pending_mb:g}; they free as reward windows close "
                "(raise max_pending_mb or shorten reward_window_s)"
            )
        # The first model a state serves becomes its space when the slate is logged (log_slate).
        stale = bool(model_version) and model_version != (self.model_version or model_version)
        return draw_slate(user_id, arm, self.policies[(arm.name, arm.policy)], ctx, k, model_version, stale,
                          self.rng, user_vector)

    def log_slate(self, drawn: SlateDraw) -> dict:
        """Log a drawn slate as a pending impression (a WAL record) and return the /recommend body."""
        if drawn.slate is None:
            return {"impression_id": None, "policy": drawn.arm.name, "items": []}
        if not self.model_version and drawn.model_version:
            self._record({"t": "model", "version": drawn.model_version})  # the first model this state serves
        imp = pending_impression(drawn, self.next_serial, self.now_ms())
        self._record(imp.record())
        return {"impression_id": self.signer.issue(imp.serial, imp.issued_ms), "policy": drawn.arm.name,
                "items": slate_items(imp)}

    def check_feedback(self, impression_id: str, item_id: int) -> tuple[PendingImpression, int]:
        """The pending impression and slot feedback refers to; raises Unknown (404) or Expired (410)."""
        try:
            ref = self.signer.verify(impression_id)
        except InvalidImpressionId as err:
            raise UnknownImpression(f"impression_id {impression_id!r}: {err}") from None
        if ref.issued_ms + self.window_ms <= self.now_ms():
            raise ExpiredImpression(
                f"impression_id {impression_id!r}: the {self.config.reward_window_s:g} s reward window has closed; "
                "the impression counted with reward 0"
            )
        imp = self.pending.get(ref.serial)
        if imp is None or imp.issued_ms != ref.issued_ms:
            raise UnknownImpression(f"impression_id {impression_id!r}: no such impression was served")
        slots = np.flatnonzero(imp.item_ids == int(item_id))
        if not len(slots):
            raise UnknownImpression(f"item_id {item_id} was not shown in impression {impression_id!r}")
        return imp, int(slots[0])

    async def recommend(self, user_id: int, ctx: Context | None, k: int, model_version: str = "",
                        user_vector: np.ndarray | None = None) -> dict:
        """``select`` with its draws in a worker thread, answered only once the slate's impression record
        is fsynced (the same group commit as feedback): a crash after the answer never loses an
        impression a shopper saw.

        One writer, two threads: the draw reads the posteriors (and fills a policy's caches) in a
        worker thread while the event loop goes on; every change of the state, the slate's own log
        record included, happens on the loop. ``writing`` keeps the two apart: it is held from the
        draw until its slate is logged, and every other change waits for it (``feedback``,
        ``use_model``, and the ``Bandit`` deployment's ticks and reconfigures). The WAL is only ever
        touched on the loop; only its fsync runs in a thread (``WriteAheadLog.commit``).
        """
        async with self.writing:
            with self.timed("bandit_select"):
                drawn = await asyncio.to_thread(self.draw, user_id, ctx, k, model_version, user_vector)
            with self.timed("wal_append"):
                body = self.log_slate(drawn)
        with self.timed("wal_commit"):
            await self.wal.commit(self.lsn)
        return body

    def record_feedback(self, impression_id: str, item_id: int, reward: float | None = None,
                        event: str | None = None) -> tuple[str, int]:
        """Apply one event (or raw reward) once per (impression, item, event): ("accepted" | "duplicate", the
        lsn to commit before saying so). The slot keeps the strongest reward seen."""
        if event is not None and event not in EVENT_REWARDS:
            raise ValueError(f"event {event!r} is not one of {', '.join(EVENT_REWARDS)}")
        self.expire()
        imp, slot = self.check_feedback(impression_id, item_id)
        if imp.seen[slot] & event_bit(event):
            return "duplicate", self.wal.appended_lsn
        value = EVENT_REWARDS[event] if reward is None else float(reward)
        self._feedback_rows(imp, np.array([slot]), np.array([value]))  # validate before logging
        return "accepted", self._record({"t": "fb", "serial": imp.serial, "slot": slot, "reward": value,
                                         "event": event, "ms": self.now_ms()})

    async def feedback(self, impression_id: str, item_id: int, reward: float | None = None,
                       event: str | None = None) -> str:
        """``record_feedback``, answered once the WAL fsync covers it."""
        async with self.writing:
            with self.timed("wal_append"):
                status, lsn = self.record_feedback(impression_id, item_id, reward, event)
        with self.timed("wal_commit"):
            await self.wal.commit(lsn)
        if status == "accepted":
            await self.maybe_snapshot_async()
        return status

    async def use_model(self, version: str) -> bool:
        """Serve ``version`` from now on (a scorer announces its model before it swaps to it).

        A different version resets every linear posterior; per-item evidence is kept. Returns whether
        it changed anything, once the WAL record is durable. The same version again is a no-op.
        """
        if not isinstance(version, str) or not version:
            raise ValueError(f"use_model: model version {version!r} must be a non-empty string")
        async with self.writing:
            if version == self.model_version:
                return False
            lsn = self._record({"t": "model", "version": version})
        await self.wal.commit(lsn)
        return True

    # -- time-driven work --------------------------------------------------------------------------
    def expire(self) -> int:
        """Finalize every impression whose window closed; return how many."""
        serials = self.pending.expired(self.now_ms(), self.window_ms)
        if serials:
            self._record({"t": "exp", "serials": serials})
        return len(serials)

    def tick(self, snapshot: bool = True) -> None:
        """Periodic work: expiry, impression-log parts, time-based snapshots (unless ``snapshot`` is False: the
        deployment writes them off the loop with ``maybe_snapshot_async``).

        It runs on the replica's event loop (it changes the state and the WAL, which only the loop
        touches); ``log_flush`` and ``snapshot`` in the stage timings say how long it holds the loop.
        """
        self.expire()
        if self.log.due():
            with self.timed("log_flush"):
                self._record({"t": "flush", "part": self.log.next_part})
        if snapshot:
            self.maybe_snapshot()

    def snapshot_due(self) -> bool:
        """``snapshot_every`` records or ``snapshot_interval_s`` seconds have passed, and none is being written."""
        since = self.lsn - self.snapshot_lsn
        overdue = since > 0 and self.clock() - self._last_snapshot_time >= self.config.snapshot_interval_s
        return not self._snapshotting and (since >= self.config.snapshot_every or overdue)

    def maybe_snapshot(self) -> bool:
        """Snapshot now when one is due (the synchronous form: start-up, tests)."""
        if not self.snapshot_due():
            return False
        with self.timed("snapshot"):
            self.snapshot()
        return True

    async def maybe_snapshot_async(self) -> bool:
        """Snapshot when one is due, holding the event loop only to copy the state (``snapshot``, a few ms);
        the files are written in a worker thread (``snapshot_write``) while requests go on, and the WAL
        segments it covers are dropped once it is on disk."""
        async with self.writing:
            if not self.snapshot_due():
                return False
            with self.timed("snapshot"):
                lsn, write = self.begin_snapshot()
        try:
            with self.timed("snapshot_write"):
                await asyncio.to_thread(write)
        except BaseException:
            self._snapshotting = False  # the WAL still holds everything; the next tick tries again
            raise
        async with self.writing:
            self.end_snapshot(lsn)
        return True

    def begin_snapshot(self) -> tuple[int, Callable[[], Path]]:
        """Rotate the WAL and copy what a snapshot holds; returns its lsn and the write, which needs no lock."""
        self.wal.rotate()
        lsn = self.lsn
        header = {
            "lsn": lsn, "arms": [a.as_mapping() for a in self.arms], "next_serial": self.next_serial,
            "last_ms": self.last_ms, "counts": {n: asdict(c) for n, c in self.counts.items()}, "log": self.log.state(),
            "model_version": self.model_version,
        }
        policies = {key: copy_state(policy) for key, policy in self.policies.items()}
        pending, purchases = self.pending.frozen(), self.purchases.arrays()
        root = self.config.state_dir / "snapshots"
        self._snapshotting, self._last_snapshot_time = True, self.clock()

        def write() -> Path:
            path = write_snapshot(root, lsn, header, policies, pending(), purchases)
            prune_snapshots(root, keep=2)
            return path

        return lsn, write

    def end_snapshot(self, lsn: int) -> None:
        """The snapshot ``lsn`` is on disk: drop the WAL segments it covers."""
        self.wal.drop_through(lsn)
        self.snapshot_lsn = max(self.snapshot_lsn, lsn)  # an operator's snapshot may have finished meanwhile
        self._snapshotting = False

    def snapshot(self) -> Path:
        """Write a snapshot covering every record so far, then drop the WAL segments it covers."""
        lsn, write = self.begin_snapshot()
        try:
            path = write()
        except BaseException:
            self._snapshotting = False
            raise
        self.end_snapshot(lsn)
        return path

    def reconfigure(self, arms: list[Arm]) -> None:
        """Change arms, policies or exploration parameters live; every posterior is kept."""
        if not arms:
            raise ValueError("user_config.arms: give at least one arm, e.g. [{name: main, policy: thompson}]")
        if arms == self.arms:
            return
        names = [a.name for a in arms]
        if len(set(names)) != len(names):
            raise ValueError(f"user_config.arms: arm names {names} must be unique")
        for arm in arms:  # fail before anything is logged if a policy or parameter is wrong
            arm.check_servable()
        self._record({"t": "config", "arms": [a.as_mapping() for a in arms]})

    def check_health(self) -> None:
        """Raise while the WAL writer is stopped or the state directory is not writable (Serve then
        replaces the replica, whose ``__init__`` replays the WAL)."""
        if self.wal.failed is not None:
            raise RuntimeError(f"bandit WAL stopped after {self.wal.failed!r}; a new replica replays it")
        if not os.access(self.config.state_dir, os.W_OK):
            raise RuntimeError(f"bandit state_dir {self.config.state_dir} is not writable")

    # -- reports -----------------------------------------------------------------------------------
    def stats(self) -> dict:
        """The policies' state for ``GET /stats``."""
        arms = []
        for arm in self.arms:
            policy = self.policies[(arm.name, arm.policy)]
            _, header = policy.state_dict()
            arms.append({"arm": arm.name, "policy": arm.policy, "params": arm.params, "weight": arm.weight,
                         "counts": asdict(self.counts.get(arm.name, ArmCounts())), "state": header})
        return {"arms": arms, "model_version": self.model_version, "pending_impressions": len(self.pending),
                "wal_lsn": self.lsn,
                "durable_lsn": self.wal.durable_lsn, "snapshot_lsn": self.snapshot_lsn,
                "replayed_on_start": self.replayed, "log_parts": self.log.next_part, "log_rows_waiting": self.log.waiting,
                "reward_window_s": self.config.reward_window_s}

    def experiments(self) -> list[dict]:
        """Per-arm CTR, interval, lift and p-value for ``GET /experiments``."""
        return experiment_report([(a.name, a.policy, self.counts.get(a.name, ArmCounts())) for a in self.arms])

    def close(self) -> None:
        """Snapshot, close the WAL and release the state directory (a graceful shutdown)."""
        if self.closed:
            return
        self.closed = True
        try:
            if self.log.waiting:
                self._record({"t": "flush", "part": self.log.next_part})
            self.snapshot()
            self.wal.close()
        finally:
            self.lock.release()
