"""The bandit replica's process SIGKILLed under concurrent /feedback, then again while its successor replays.

Its own small app on the session's Serve (the model and helpers of ``test_serving.py``), with snapshots
off for the run, so every restart rebuilds the state from the whole WAL and the replay takes long
enough to be hit. Every (impression, item) pair is sent until it is acknowledged; afterwards each pair
must count once: none lost (re-sending an acknowledged pair answers ``duplicate``) and none applied
twice (the feedback counters grew by exactly the number of pairs).
"""

from __future__ import annotations

import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from test_serving import build_model_and_shop, feedback, recommend, total_feedback, wait_for_stats

from serving.app import deploy
from serving.config import ServeConfig

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/locks").exists(), reason="finds the replica's process in /proc")]

APP = "serendip-crash"
WARM_SLATES = 250
"""Slates (each with 2 feedbacks) written before the first kill: a WAL of about 750 records to replay."""
LIVE_SLATES = 60
"""Slates served by the concurrent clients across the kills."""


@pytest.fixture(scope="module")
def crash_app(tmp_path_factory, serve_port):
    root = tmp_path_factory.mktemp("serving-crash")
    model, shop = build_model_and_shop(root)
    cfg = ServeConfig(
        model=model, data=shop, state_dir=root / "state", arms=("control=greedy@1", "linear=linucb:alpha=0.1@1"),
        scorer_num_cpus=0.1, bandit_num_cpus=0.1, ingress_num_cpus=0.1, reward_window_s=3600.0,
        snapshot_every=1_000_000, snapshot_interval_s=36_000.0,  # no snapshot: each restart replays the whole WAL
        retrieve_n=40, app_name=APP, call_timeout_s=5.0, score_timeout_s=5.0,
    )
    deploy(cfg)
    with httpx.Client(base_url=f"http://127.0.0.1:{serve_port}", timeout=30) as client:
        yield cfg, client
    from ray import serve

    serve.delete(APP)


def bandit_pids() -> set[int]:
    """The live processes of this app's Bandit replica (Ray titles them ``ray::ServeReplica:APP:Bandit...``)."""
    title = f"ray::ServeReplica:{APP}:Bandit".encode()
    pids = set()
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as f:
                    if f.read().startswith(title):
                        pids.add(int(entry.name))
            except OSError:
                pass
    return pids


def holds_lock(pid: int, lock_inode: int) -> bool:
    """Whether ``pid`` holds the flock on ``state_dir/LOCK`` (BanditState's first step, before the replay)."""
    with open("/proc/locks") as f:
        return any(line.split()[4] == str(pid) and line.split()[5].endswith(f":{lock_inode}")
                   for line in f if "FLOCK" in line and "->" not in line)  # "->": a waiter, not a holder


def reading_wal(pid: int) -> str | None:
    """``"read BYTES of SIZE"`` while ``pid`` has a WAL segment open read-only, i.e. replays it (the live WAL
    is opened for append), else None."""
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            target = os.readlink(f"/proc/{pid}/fd/{fd}")
            if "/wal/wal-" in target:
                with open(f"/proc/{pid}/fdinfo/{fd}") as f:
                    info = dict(line.split(":", 1) for line in f if ":" in line)
                if int(info["flags"], 8) & os.O_ACCMODE == os.O_RDONLY:
                    return f"read {int(info['pos'])} of {os.path.getsize(target)} bytes"
    except (OSError, KeyError, ValueError):
        pass
    return None


def kill_during_replay(old_pid: int, lock: Path, timeout_s: float = 90.0) -> dict:
    """Wait for the replica that replaces ``old_pid``; SIGKILL it while it reads the WAL (polling every ms)."""
    deadline = time.monotonic() + timeout_s
    pid = None
    while time.monotonic() < deadline:
        pid = pid or next(iter(bandit_pids() - {old_pid}), None)
        if pid is not None:
            appeared = time.monotonic()
            while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
                if wal := reading_wal(pid):
                    locked = holds_lock(pid, lock.stat().st_ino)
                    os.kill(pid, signal.SIGKILL)
                    return {"pid": pid, "held_lock": locked, "wal": wal, "ms_after_process_appeared":
                            round(1000 * (time.monotonic() - appeared))}
                time.sleep(0.001)
            raise AssertionError(f"bandit replica {pid} finished replaying (or died) before it could be killed")
        time.sleep(0.005)
    raise AssertionError(f"no new bandit replica in {timeout_s:g} s after killing {old_pid}")


def send_until_acknowledged(client, pair: tuple[str, int], deadline: float) -> tuple[str, int]:
    """POST the feedback until the bandit answers accepted or duplicate; returns (final answer, tries)."""
    tries = 0
    while time.monotonic() < deadline:
        tries += 1
        try:
            r = feedback(client, *pair, reward=1.0)
            if r.status_code == 200:
                return r.json()["status"], tries
            assert r.status_code in (502, 503, 504), (r.status_code, r.text)  # the bandit is away; never a 4xx
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"feedback {pair} never acknowledged")


def recommend_until_served(client, user: int, deadline: float) -> dict:
    while True:
        try:
            r = client.post("/recommend", json={"user_id": user, "k": 4})
            if r.status_code == 200:
                return r.json()
            assert r.status_code in (502, 503, 504), (r.status_code, r.text)
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, f"/recommend for user {user} never answered"
        time.sleep(0.2)


def test_bandit_killed_under_feedback_and_again_while_replaying_loses_nothing(crash_app, serve_port):
    cfg, client = crash_app
    pairs: list[tuple[str, int]] = []
    for user in range(WARM_SLATES):  # a long WAL tail: impressions and feedback, never snapshotted
        slate = recommend(client, 1000 + user, k=4)
        for item in slate["items"][:2]:
            pairs.append((slate["impression_id"], item["item_id"]))
            assert feedback(client, *pairs[-1], reward=1.0).json() == {"status": "accepted"}
    before = client.get("/stats").json()
    assert sum(a["counts"]["feedback"] for a in before["arms"]) == len(pairs)
    (first_pid,) = bandit_pids()

    answers: list[tuple[str, int]] = []
    lock = threading.Lock()
    deadline = time.monotonic() + 240

    def shopper(user: int) -> None:  # a slate, then two clicks, each sent until acknowledged
        with httpx.Client(base_url=f"http://127.0.0.1:{serve_port}", timeout=30) as own:
            slate = recommend_until_served(own, 2000 + user, deadline)
            for item in slate["items"][:2]:
                pair = (slate["impression_id"], item["item_id"])
                answer = send_until_acknowledged(own, pair, deadline)
                with lock:
                    pairs.append(pair)
                    answers.append(answer)

    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(shopper, user) for user in range(LIVE_SLATES)]
        while sum(f.done() for f in futures) < LIVE_SLATES // 4:
            time.sleep(0.05)
        os.kill(first_pid, signal.SIGKILL)  # under concurrent /feedback
        second = kill_during_replay(first_pid, cfg.state_dir / "LOCK")
        for f in futures:
            f.result()
    print("killed", first_pid, "under traffic, then", second, "; answers:",
          {s: sum(a == s for a, _ in answers) for s in ("accepted", "duplicate")},
          "retried:", sum(t > 1 for _, t in answers))
    assert second["held_lock"]  # it had begun to rebuild the state when it died

    stats = wait_for_stats(client, timeout_s=120)
    assert stats["replica_started"] != before["replica_started"]
    assert not bandit_pids() & {first_pid, second["pid"]}
    assert stats["replayed_on_start"] >= 3 * WARM_SLATES  # the whole WAL, twice interrupted, replayed once more
    # none applied twice: each pair counts exactly once, whatever the kills did to its acknowledgement
    assert total_feedback(client) == len(pairs) == len(set(pairs)), (total_feedback(client), len(pairs))
    # none lost: every acknowledged pair is known to the recovered bandit
    resent = [feedback(client, *pair, reward=1.0).json()["status"] for pair in pairs[:: max(1, len(pairs) // 80)]]
    assert set(resent) == {"duplicate"}, resent
