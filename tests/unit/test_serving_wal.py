"""The write-ahead log: group commit, torn tails, rotation, and the single-writer lock."""

import asyncio
import os

import pytest

import serving.wal as wal_module
from serving.wal import WriteAheadLog, WriterLock, replay


def test_records_replay_in_order_after_a_new_writer_opens(tmp_path):
    log = WriteAheadLog(tmp_path, next_lsn=1)
    for i in range(5):
        log.append({"t": "fb", "i": i})
    log.sync()
    assert [(lsn, r["i"]) for lsn, r in replay(tmp_path)] == [(i + 1, i) for i in range(5)]
    assert [lsn for lsn, _ in replay(tmp_path, after_lsn=3)] == [4, 5]


def test_concurrent_commits_share_fsyncs(tmp_path, monkeypatch):
    calls = []
    real = os.fsync
    monkeypatch.setattr(wal_module.os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    log = WriteAheadLog(tmp_path, next_lsn=1, group_size=1000, group_wait_s=0.01)
    calls.clear()

    async def write(i):
        await log.commit(log.append({"i": i}))

    async def main():
        await asyncio.gather(*(write(i) for i in range(50)))

    asyncio.run(main())
    assert log.durable_lsn == 50
    assert 1 <= len(calls) <= 3  # one group, not 50 fsyncs


def test_a_full_group_commits_without_waiting(tmp_path):
    log = WriteAheadLog(tmp_path, next_lsn=1, group_size=4, group_wait_s=5.0)

    async def main():
        lsns = [log.append({"i": i}) for i in range(4)]
        await asyncio.wait_for(log.commit(lsns[-1]), timeout=1.0)

    asyncio.run(main())
    assert log.durable_lsn == 4


def test_a_torn_last_line_is_cut_and_never_replayed(tmp_path):
    log = WriteAheadLog(tmp_path, next_lsn=1)
    log.append({"i": 0})
    log.sync()
    segment = next(tmp_path.glob("wal-*.jsonl"))
    with segment.open("ab") as f:
        f.write(b'{"lsn": 2, "i": ')  # the crash cut this record
    assert [lsn for lsn, _ in replay(tmp_path)] == [1]
    # A writer that restarts in the same segment name must not glue records to the torn line.
    (tmp_path / "wal-000000000002.jsonl").write_bytes(b'{"lsn": 2, "i"')
    log2 = WriteAheadLog(tmp_path, next_lsn=2)
    log2.append({"i": 1})
    log2.sync()
    assert [(lsn, r["i"]) for lsn, r in replay(tmp_path)] == [(1, 0), (2, 1)]


def test_rotation_and_dropping_covered_segments(tmp_path):
    log = WriteAheadLog(tmp_path, next_lsn=1)
    log.append({"i": 0})
    log.append({"i": 1})
    log.rotate()
    log.append({"i": 2})
    log.sync()
    assert sorted(p.name for p in tmp_path.glob("wal-*")) == ["wal-000000000001.jsonl", "wal-000000000003.jsonl"]
    assert log.drop_through(2) == 1
    assert [lsn for lsn, _ in replay(tmp_path)] == [3]


def test_a_second_writer_waits_for_the_lock(tmp_path):
    first = WriterLock(tmp_path)
    with pytest.raises(TimeoutError, match="LOCK: another bandit holds the state directory after 0.1 s"):
        WriterLock(tmp_path, timeout_s=0.1)
    first.release()
    WriterLock(tmp_path, timeout_s=0.1).release()


def acknowledged(log, n, start=0):
    """Append and commit ``n`` records; the indices whose commit returned (the acknowledged ones)."""
    done = []

    async def main():
        for i in range(start, start + n):
            try:
                await log.commit(log.append({"t": "fb", "i": i}))
            except wal_module.WalFailed:
                continue
            done.append(i)

    asyncio.run(main())
    return done


def test_short_writes_are_completed_so_nothing_acknowledged_is_lost(tmp_path, monkeypatch):
    """A full disk or a signal can make os.write write part of the line: the rest must follow."""
    real = os.write
    monkeypatch.setattr(wal_module.os, "write", lambda fd, data: real(fd, bytes(data[: max(1, len(data) // 2)])))
    acked = acknowledged(WriteAheadLog(tmp_path, next_lsn=1, group_wait_s=0), 20)
    assert [r["i"] for _, r in replay(tmp_path)] == acked == list(range(20))


def test_a_failed_write_stops_the_writer_and_loses_no_acknowledged_record(tmp_path, monkeypatch):
    real, calls = os.write, []

    def full_disk(fd, data):
        calls.append(fd)
        if len(calls) == 8:  # half a line reaches the disk, then the disk is full
            real(fd, bytes(data[: len(data) // 2]))
            raise OSError(28, "No space left on device")
        return real(fd, data)

    monkeypatch.setattr(wal_module.os, "write", full_disk)
    log = WriteAheadLog(tmp_path, next_lsn=1, group_wait_s=0)
    acked = acknowledged(log, 20)
    assert acked == list(range(7)) and isinstance(log.failed, OSError)  # refused from the failure on
    monkeypatch.setattr(wal_module.os, "write", real)
    replayed = [(lsn, r["i"]) for lsn, r in replay(tmp_path)]
    assert [i for _, i in replayed] == acked  # none lost, none twice, the torn half-line never replayed
    restarted = WriteAheadLog(tmp_path, next_lsn=replayed[-1][0] + 1, group_wait_s=0)
    assert acknowledged(restarted, 3, start=100) == [100, 101, 102]
    assert [r["i"] for _, r in replay(tmp_path)] == [*acked, 100, 101, 102]


def test_an_fsync_error_refuses_every_later_acknowledgement(tmp_path, monkeypatch):
    """After EIO from fsync the kernel may have dropped the pages: a retry must not be acknowledged."""
    real, calls = os.fsync, []

    def failing(fd):
        calls.append(fd)
        if len(calls) == 5:
            raise OSError(5, "Input/output error")
        return real(fd)

    log = WriteAheadLog(tmp_path, next_lsn=1, group_wait_s=0)
    monkeypatch.setattr(wal_module.os, "fsync", failing)
    acked = acknowledged(log, 10)
    assert acked == [0, 1, 2, 3] and log.failed is not None
    with pytest.raises(wal_module.WalFailed, match="nothing is acknowledged until the bandit restarts"):
        log.sync()
    monkeypatch.setattr(wal_module.os, "fsync", real)
    assert [r["i"] for _, r in replay(tmp_path)][:4] == acked
