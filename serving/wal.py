"""The bandit's write-ahead log: append-only JSON-lines segments, fsynced in small groups.

Every record gets a log sequence number (lsn). ``append`` hands the line to the operating system
at once (``os.write``), so a killed process loses nothing it appended; ``commit(lsn)`` returns once
an fsync covered that record. Concurrent commits share one fsync: the first waiter holds the group
open for ``group_wait_s`` or until ``group_size`` records wait (group commit, DeWitt et al. 1984,
"Implementation techniques for main memory database systems").

A segment ``wal-<first lsn>.jsonl`` starts at every snapshot (``rotate``); segments wholly covered
by a durable snapshot are deleted (``drop_through``). Replay reads the segments in order and stops
a segment at its first torn line: a line cut by a crash was never acknowledged.

Any write or fsync error stops the writer for good (``WalFailed``): after a failed fsync Linux
may drop the dirty pages and report the next fsync as a success, so nothing written since the last
good fsync can be trusted (the "fsyncgate" finding; Rebello et al., USENIX ATC 2020). The bandit
then refuses to acknowledge, reports itself unhealthy, and its restarted replica replays the WAL.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SEGMENT_GLOB = "wal-*.jsonl"


class WalFailed(RuntimeError):
    """A write or fsync of the WAL failed; nothing more is acknowledged until the writer restarts."""


def write_all(fd: int, data: bytes) -> None:
    """``os.write`` until every byte is written: a write may be short (a full disk, a signal)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:
            raise OSError(28, "no space left on device: a write of the WAL made no progress")
        view = view[written:]


def _segments(directory: Path) -> list[tuple[int, Path]]:
    """The segments in ``directory`` with their first lsn, oldest first."""
    out = []
    for path in Path(directory).glob(SEGMENT_GLOB):
        try:
            out.append((int(path.stem.split("-", 1)[1]), path))
        except ValueError:
            log.warning("%s: not a WAL segment name (wal-<lsn>.jsonl); ignored", path)
    return sorted(out)


def replay(directory: Path, after_lsn: int = 0) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(lsn, record)`` for every intact record with lsn > ``after_lsn``, in lsn order."""
    last = after_lsn
    for _, path in _segments(directory):
        with path.open("rb") as f:
            for lineno, raw in enumerate(f):
                try:
                    record = json.loads(raw)
                    lsn = int(record.pop("lsn"))
                except (ValueError, KeyError, TypeError):
                    log.warning("%s line %d: torn or unreadable record; the rest of this segment is skipped",
                                path, lineno)
                    break
                if lsn > last:
                    last = lsn
                    yield lsn, record


def _cut_torn_tail(path: Path) -> None:
    """Truncate a segment after its last intact line, so new appends never join a line cut by a crash."""
    data = path.read_bytes()
    keep = 0
    for line in data.splitlines(keepends=True):
        try:
            json.loads(line)
        except ValueError:
            break
        if not line.endswith(b"\n"):
            break
        keep += len(line)
    if keep < len(data):
        log.warning("%s: cut %d bytes of a torn record at the end", path, len(data) - keep)
        os.truncate(path, keep)


def fsync_dir(directory: Path) -> None:
    """Make a rename or a new file in ``directory`` durable (POSIX needs the directory fsynced too)."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriteAheadLog:
    """One writer's log. Open it after replay with the next lsn to use."""

    def __init__(self, directory: Path, next_lsn: int, group_size: int = 64, group_wait_s: float = 0.002) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.group_size = group_size
        self.group_wait_s = group_wait_s
        self.appended_lsn = next_lsn - 1
        self.durable_lsn = next_lsn - 1
        self._fd = self._open_segment(next_lsn)
        self._retired: list[int] = []
        self._syncing: asyncio.Future | None = None
        self._group_full: asyncio.Event | None = None
        self.failed: OSError | None = None
        """The write or fsync error that stopped this writer (None while it is healthy)."""

    def _check(self) -> None:
        if self.failed is not None:
            raise WalFailed(f"{self.directory}: the write-ahead log stopped after {self.failed!r}; nothing is "
                            "acknowledged until the bandit restarts and replays it (free disk space, check the volume)")

    def _fail(self, err: OSError) -> None:
        self.failed = err
        log.error("%s: write-ahead log failed (%r); refusing further writes", self.directory, err)
        self._check()

    def _open_segment(self, first_lsn: int) -> int:
        path = self.directory / f"wal-{first_lsn:012d}.jsonl"
        if path.exists():
            _cut_torn_tail(path)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        fsync_dir(self.directory)
        return fd

    def append(self, record: dict[str, Any]) -> int:
        """Write ``record`` to the OS and return its lsn; it is durable after ``commit``/``sync``."""
        self._check()
        lsn = self.appended_lsn + 1
        line = json.dumps({"lsn": lsn, **record}, separators=(",", ":"), allow_nan=False) + "\n"
        try:
            write_all(self._fd, line.encode("utf-8"))
        except OSError as err:  # a partial line may be on disk: replay cuts it, nothing after it is written
            self._fail(err)
        self.appended_lsn = lsn
        if self._group_full is not None and self.appended_lsn - self.durable_lsn >= self.group_size:
            self._group_full.set()
        return lsn

    def sync(self) -> None:
        """fsync now (blocking): everything appended so far is durable."""
        self._check()
        try:
            os.fsync(self._fd)
        except OSError as err:
            self._fail(err)
        self.durable_lsn = self.appended_lsn

    async def commit(self, lsn: int) -> None:
        """Return once record ``lsn`` is fsynced, sharing the fsync with concurrent callers."""
        while self.durable_lsn < lsn:
            self._check()
            if self._syncing is None:
                self._syncing = asyncio.ensure_future(self._sync_group())
            await asyncio.shield(self._syncing)

    async def _sync_group(self) -> None:
        try:
            if self.appended_lsn - self.durable_lsn < self.group_size and self.group_wait_s > 0:
                self._group_full = asyncio.Event()
                try:
                    await asyncio.wait_for(self._group_full.wait(), self.group_wait_s)
                except asyncio.TimeoutError:
                    pass
                self._group_full = None
            target, fd = self.appended_lsn, self._fd
            try:
                await asyncio.to_thread(os.fsync, fd)
            except OSError as err:
                self._fail(err)
            self.durable_lsn = max(self.durable_lsn, target)
        finally:
            self._syncing = None
            self._close_retired()

    def rotate(self) -> None:
        """Make everything durable and start a new segment at the next lsn (called at each snapshot)."""
        self.sync()
        self._retired.append(self._fd)
        self._fd = self._open_segment(self.appended_lsn + 1)
        if self._syncing is None:
            self._close_retired()

    def _close_retired(self) -> None:
        while self._retired:
            os.close(self._retired.pop())

    def drop_through(self, lsn: int) -> int:
        """Delete segments whose records all have lsn <= ``lsn`` (a durable snapshot covers them)."""
        segments = _segments(self.directory)
        dropped = 0
        for (_, path), (next_first, _) in zip(segments, segments[1:], strict=False):
            if next_first - 1 <= lsn:
                path.unlink()
                dropped += 1
        return dropped

    def close(self) -> None:
        """fsync and close the log."""
        self.sync()
        self._retired.append(self._fd)
        self._close_retired()


def quarantine(state_dir: Path, lsn: int, record: dict[str, Any], err: BaseException) -> Path:
    """Set aside a record that failed to apply: ``state_dir/quarantine/lsn-<lsn>.json`` (the same file
    on every replay, so a restart loop never fills the disk). Replay goes on without it."""
    directory = Path(state_dir) / "quarantine"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"lsn-{lsn:012d}.json"
    tmp = directory / f".{path.name}"
    tmp.write_text(json.dumps({"lsn": lsn, "error": f"{type(err).__name__}: {err}", "record": record},
                              default=str))
    os.replace(tmp, path)
    log.error("WAL record lsn %d (%s) failed to apply and is quarantined in %s: %r",
              lsn, record.get("t"), path, err)
    return path


class WriterLock:
    """An exclusive ``flock`` on ``state_dir/LOCK``: one bandit writes a state directory at a time.

    A redeployed or restarted replica waits here until the previous one is gone; the kernel drops
    the lock when a process dies, even by SIGKILL.

    The lock is only as good as the filesystem's ``flock``. On a local disk it holds between the
    processes of one node. Across nodes it holds only where NFS lock semantics do (NFSv4, or NFSv3
    with a working lockd; Linux maps ``flock`` to byte-range locks there): the lock then lives on
    the server and outlives the node that took it until its lease expires. A filesystem without
    them (many FUSE mounts, some CSI drivers, NFS mounted ``nolock``) grants every node the lock,
    and two bandits would each write the WAL. That is why the app refuses a second bandit replica
    (``serving.app.check_single_bandit``) instead of relying on this lock alone.
    """

    def __init__(self, directory: Path, timeout_s: float = 60.0, poll_s: float = 0.05) -> None:
        import fcntl
        import time

        path = Path(directory) / "LOCK"
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() > deadline:
                    os.close(self._fd)
                    raise TimeoutError(
                        f"{path}: another bandit holds the state directory after {timeout_s:g} s; "
                        "stop it or give this app its own state_dir"
                    ) from None
                time.sleep(poll_s)

    def release(self) -> None:
        """Let the next writer in."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
