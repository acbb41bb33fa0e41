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
