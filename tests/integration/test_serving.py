"""The Serve app over real HTTP on the session's Ray: the loop, durability, live changes, abuse.

One app (a tiny two-tower model on a tiny shop) is deployed once for the module, declaratively as
``serve deploy`` does; the tests run in file order and share it: a crash and a redeploy must not
lose what came before them.
"""

from __future__ import annotations

import re
import subprocess
import time

import httpx
import numpy as np
import pandas as pd
import pytest

from recsys.data import write_table
from recsys.model import Calibrator, TwoTower, TwoTowerConfig, build_tiny_base
from serving import ingress_mode
from serving.app import deploy
from serving.config import ServeConfig

WINDOW_S = 6.0
WORDS = ["trail", "wool", "steel", "leather", "canvas", "rain", "yoga", "ceramic", "desk", "sun"]
THINGS = ["shoe", "scarf", "bottle", "wallet", "tote", "jacket", "mat", "mug", "lamp", "hat"]


def shop_items(ids) -> pd.DataFrame:
    return pd.DataFrame({
        "item_id": ids, "title": [f"{WORDS[i % 10]} {THINGS[(i // 10) % 10]} {i}" for i in ids],
        "category": [THINGS[(i // 10) % 10] for i in ids], "brand": "Northpeak", "price": 20.0 + np.asarray(ids),
        "attributes": '{"colour": "grey"}',
    })


def build_model_and_shop(root):
    """A tiny untrained two-tower model for items 0..39 and a shop of items 0..44 (five not yet embedded)."""
    config = TwoTowerConfig(base=str(build_tiny_base(root / "base")), dim=16, user_heads=2, user_layers=1,
                            id_embeddings=False, history_len=8)
    model = TwoTower.from_base(config).eval()
    model.calibrator = Calibrator("platt", {"a": 0.02, "b": -2.5})
    model.save_pretrained(root / "model", item_table=model.item_table(shop_items(list(range(40)))))
    (root / "shop").mkdir()
    write_table(shop_items(list(range(45))), root / "shop" / "items.parquet", "items")
    events = pd.DataFrame({"user_id": [1, 1], "item_id": [3, 4], "event": ["purchase", "click"],
                           "ts": pd.to_datetime([1_700_000_000_000] * 2, unit="ms", utc=True)})
    write_table(events, root / "shop" / "events.parquet", "events")
    return root / "model", root / "shop"


@pytest.fixture(scope="module")
def served(tmp_path_factory, serve_port):
    root = tmp_path_factory.mktemp("serving")
    model, shop = build_model_and_shop(root)
    cfg = ServeConfig(
        model=model, data=shop, state_dir=root / "state",
        arms=("control=greedy@1", "explore=epsilon_greedy:epsilon=0@1", "linear=linucb:alpha=0.1@1"),
        scorer_num_cpus=0.1, bandit_num_cpus=0.1, ingress_num_cpus=0.1, reward_window_s=WINDOW_S,
        # No snapshot during the module: a killed or redeployed bandit must rebuild everything from its WAL
        # (snapshot + tail replay is unit-tested in test_serving_state.py).
        snapshot_every=100_000, snapshot_interval_s=3600.0,
        retrieve_n=60, app_name="serendip-test",
    )
    deploy(cfg)
    with httpx.Client(base_url=f"http://127.0.0.1:{serve_port}", timeout=30) as client:
        early = recommend(client, 11, k=2)  # expires while the other tests run
        yield cfg, client, early, time.monotonic()
    from ray import serve

    serve.delete(cfg.app_name)


def recommend(client, user_id, **body):
    r = client.post("/recommend", json={"user_id": user_id, **body})
    assert r.status_code == 200, r.text
    return r.json()


def feedback(client, impression_id, item_id, **body):
    return client.post("/feedback", json={"impression_id": impression_id, "item_id": item_id, **body})


def total_feedback(client) -> int:
    return sum(arm["counts"]["feedback"] for arm in client.get("/stats").json()["arms"])


def test_recommend_then_feedback_shows_in_stats(served):
    _, client, _, _ = served
    before = client.get("/stats").json()
    slate = recommend(client, 7, history=[1, 2, 3], k=5)
    assert len(slate["items"]) == 5 and slate["impression_id"] and slate["model_version"].startswith("model")
    assert [i["position"] for i in slate["items"]] == list(range(5))
    assert all(0 < i["propensity"] <= 1 for i in slate["items"])
    r = feedback(client, slate["impression_id"], slate["items"][0]["item_id"], event="click")
    assert r.status_code == 200 and r.json() == {"status": "accepted"}
    after = client.get("/stats").json()
    arm = next(a for a in after["arms"] if a["arm"] == slate["policy"])
    arm_before = next(a for a in before["arms"] if a["arm"] == slate["policy"])
    assert arm["counts"]["feedback"] == arm_before["counts"]["feedback"] + 1
    assert arm["state"]["state"]["n_updates"] == arm_before["state"]["state"]["n_updates"] + 1
    stages = after["stages_ms"]  # what each stage costs
    assert {"user_tower", "retrieval"} <= set(stages["scorer"]) and {"recommend", "feedback"} <= set(stages["ingress"])
    assert {"bandit_select", "wal_append", "wal_commit"} <= set(stages["bandit"])


def listening_sockets() -> list[tuple[str, int, str]]:
    """(address, port, process) of every TCP listener of this process tree, from ``ss -ltnpH``."""
    import psutil  # Ray's vendored copy (ray/thirdparty_files, on sys.path once ray is imported)

    ours = {}
    for proc in [psutil.Process(), *psutil.Process().children(recursive=True)]:
        try:
            ours[proc.pid] = proc.name()  # the full title; ss shows the kernel's 15-character one
        except psutil.NoSuchProcess:
            continue
    found = set()
    for line in subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout.splitlines():
        address, port = line.split()[3].rsplit(":", 1)
        for pid in re.findall(r"pid=(\d+)", line):
            if int(pid) in ours:
                found.add((address.strip("[]"), int(port), ours[int(pid)]))
    return sorted(found)


def test_fast_mode_keeps_the_api_on_loopback_and_lists_every_listener(served, serve_port, ingress_changes):
    """Serve runs in the fast mode (HAProxy, direct ingress): the API's ports are loopback-only; the only
    listeners HAProxy adds beyond loopback are its read-only stats page and Prometheus metrics."""
    _, client, _, _ = served
    assert client.get("/stats").json()["ingress_mode"] == "fast"
    listeners = listening_sockets()
    print("\n".join(f"{address:>15} {port:>5} {name}" for address, port, name in listeners))
    frontend = [(a, name) for a, p, name in listeners if p == serve_port]
    assert frontend == [("127.0.0.1", "haproxy")], frontend
    stats_port, metrics_port = (int(ingress_changes[k]) for k in (ingress_mode.STATS_PORT, ingress_mode.METRICS_PORT))
    haproxy_wide = {p for a, p, name in listeners if name == "haproxy" and a not in ("127.0.0.1", "::1")}
    assert haproxy_wide == {stats_port, metrics_port}, "Ray 2.60 binds these two *:PORT; if that changed, update the README"
    stats_page = httpx.get(f"http://127.0.0.1:{stats_port}/stats", timeout=10)
    assert stats_page.status_code == 200 and "Statistics Report" in stats_page.text
    assert httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text.startswith("# HELP")
    # Each ingress replica's direct-ingress HTTP port: on the app's host, serving the API itself.
    direct = [(a, p) for a, p, name in listeners if name.startswith("ray::ServeReplica") and 30000 <= p < 31000]
    assert direct and all(a == "127.0.0.1" for a, _ in direct), direct
    for _, port in direct:
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=10).json() == {"status": "ok"}


def linear_arm(client) -> dict:
    return next(a for a in client.get("/stats").json()["arms"] if a["arm"] == "linear")


def test_a_linear_policy_learns_from_feedback_over_http(served):
    """LinUCB on the model's embedding features (serving.retrieval builds them): clicks on the item
    it ranks last move its posterior until that item leads the slate."""
    _, client, _, _ = served
    user = next(u for u in range(400, 500) if recommend(client, u, k=1)["policy"] == "linear")
    candidates = list(range(20, 28))
    first = recommend(client, user, candidates=candidates, k=len(candidates))
    assert first["policy"] == "linear" and all(0 < i["propensity"] <= 1 for i in first["items"])
    target = first["items"][-1]["item_id"]
    before = linear_arm(client)
    rows, slate = 0, first
    for _ in range(8):
        for item in slate["items"]:
            reward = 1.0 if item["item_id"] == target else 0.0
            assert feedback(client, slate["impression_id"], item["item_id"], reward=reward).status_code == 200
            rows += 1
        slate = recommend(client, user, candidates=candidates, k=len(candidates))
        if slate["items"][0]["item_id"] == target:
            break
    after = linear_arm(client)
    assert after["state"]["state"]["n_updates"] == before["state"]["state"]["n_updates"] + rows
    assert after["counts"]["feedback"] == before["counts"]["feedback"] + rows
    assert slate["items"][0]["item_id"] == target, [i["item_id"] for i in slate["items"]]


def test_purchased_excluded_and_shop_items_embedded_at_start(served):
    _, client, _, _ = served
    items = {i["item_id"] for i in recommend(client, 1, k=44)["items"]}
    assert 3 not in items and 4 in items  # user 1 bought 3 in the shop log
    assert {40, 41, 42, 43, 44} <= items  # in the shop, not in the model's table: embedded by the bandit


def test_duplicate_feedback_is_not_applied_twice(served):
    _, client, _, _ = served
    slate = recommend(client, 8, k=3)
    item = slate["items"][1]["item_id"]
    assert feedback(client, slate["impression_id"], item, event="view").json() == {"status": "accepted"}
    assert feedback(client, slate["impression_id"], item, event="click").json() == {"status": "accepted"}
    count = total_feedback(client)
    assert feedback(client, slate["impression_id"], item, event="click").json() == {"status": "duplicate"}
    assert total_feedback(client) == count
    # a purchase after the click is a new event: it counts, and the item is never recommended to user 8 again
    assert feedback(client, slate["impression_id"], item, event="purchase").json() == {"status": "accepted"}
    assert item not in {i["item_id"] for i in recommend(client, 8, k=44)["items"]}


def test_forged_and_unknown_ids_get_404(served):
    _, client, _, _ = served
    slate = recommend(client, 9, k=3)
    iid = slate["impression_id"]
    forged = iid[:-1] + ("A" if iid[-1] != "A" else "B")
    assert feedback(client, forged, slate["items"][0]["item_id"], reward=1.0).status_code == 404
    assert feedback(client, "1.2.3", 1, reward=1.0).status_code == 404
    r = feedback(client, iid, 999_999, reward=1.0)
    assert r.status_code == 404 and "was not shown" in r.json()["detail"]


def test_new_items_are_recommendable_at_once(served):
    _, client, _, _ = served
    r = client.put("/items", json={"items": [{"item_id": 500, "title": "glacier waterproof trail shoe",
                                              "category": "shoe", "price": 120.0, "attributes": {"colour": "blue"}}]})
    assert r.status_code == 200 and r.json()["added"] == 1
    slate = recommend(client, 10, candidates=[500, 1, 2], k=3)
    shown = {i["item_id"]: i for i in slate["items"]}
    assert 500 in shown and 0 < shown[500]["propensity"] <= 1


def test_experiments_report_each_arm(served):
    _, client, _, _ = served
    for user in range(20, 40):
        slate = recommend(client, user, k=3)
        if user % 2:
            feedback(client, slate["impression_id"], slate["items"][0]["item_id"], reward=1.0)
    arms = client.get("/experiments").json()["arms"]
    assert [a["arm"] for a in arms] == ["control", "explore", "linear"] and arms[0]["is_control"]
    for arm in arms:
        assert arm["impressions"] > 0 and arm["ctr_ci95"][0] <= arm["ctr"] <= arm["ctr_ci95"][1]
        assert 0.0 <= arm["p_value_vs_control"] <= 1.0


def test_custom_metrics_reach_prometheus(served, metrics_port):
    _, client, _, _ = served
    slate = recommend(client, 21, k=3)
    feedback(client, slate["impression_id"], slate["items"][0]["item_id"], event="click")
    wanted = ("serendip_impressions", "serendip_items_shown", "serendip_feedback", "serendip_stage_latency_ms")
    deadline, text = time.monotonic() + 60, ""
    while time.monotonic() < deadline:
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).text
        if all(name in text for name in wanted):
            break
        time.sleep(1.0)
    missing = [name for name in wanted if name not in text]
    assert not missing, f"not exported at :{metrics_port}/metrics: {missing}"
    shown = [line for line in text.splitlines() if "serendip_impressions" in line and not line.startswith("#")]
    assert any(float(line.rsplit(" ", 1)[1]) >= 1 for line in shown), shown


def explored_share(client, users) -> float:
    flags = [i["explored"] for u in users for i in recommend(client, u, k=5)["items"]]
    return float(np.mean(flags))


def test_reconfigure_changes_epsilon_live(served):
    cfg, client, _, _ = served
    users = [u for u in range(100, 200) if client.post("/recommend", json={"user_id": u, "k": 1}).json()["policy"]
             == "explore"][:15]
    assert explored_share(client, users) < 0.1
    before = client.get("/stats").json()
    cfg.arms = ("control=greedy@1", "explore=epsilon_greedy:epsilon=1@1", "linear=linucb:alpha=0.1@1")
    deploy(cfg)
    after = client.get("/stats").json()
    assert after["replica_started"] == before["replica_started"]  # no restart
    assert next(a for a in after["arms"] if a["arm"] == "explore")["params"] == {"epsilon": 1}
    assert [a["counts"] for a in after["arms"]] == [a["counts"] for a in before["arms"]]  # state kept
    assert explored_share(client, users) > 0.5


def kill_bandit(app_name: str) -> None:
    import ray

    names = [a for a in ray.util.list_named_actors(all_namespaces=True)
             if "#Bandit#" in a["name"] and app_name in a["name"]]
    assert len(names) == 1, names
    ray.kill(ray.get_actor(names[0]["name"], namespace=names[0]["namespace"]), no_restart=True)


def wait_for_stats(client, timeout_s=60.0) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            r = client.get("/stats")
            if r.status_code == 200:
                return r.json()
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError("the bandit did not come back")


def test_killed_bandit_recovers_every_acknowledged_feedback(served):
    cfg, client, _, _ = served
    acked = 0
    for user in range(300, 320):
        slate = recommend(client, user, k=4)
        for item in slate["items"][:2]:
            if feedback(client, slate["impression_id"], item["item_id"], reward=1.0).json() == {"status": "accepted"}:
                acked += 1
    expected = total_feedback(client)
    assert acked == 40
    started = client.get("/stats").json()["replica_started"]
    kill_bandit(cfg.app_name)
    time.sleep(1.0)
    stats = wait_for_stats(client)
    assert stats["replica_started"] != started and stats["replayed_on_start"] > 0
    assert sum(a["counts"]["feedback"] for a in stats["arms"]) == expected


def test_an_expired_impression_gets_410(served):
    _, client, early, served_at = served
    time.sleep(max(0.0, served_at + WINDOW_S + 0.5 - time.monotonic()))
    r = feedback(client, early["impression_id"], early["items"][0]["item_id"], reward=1.0)
    assert r.status_code == 410 and "reward window has closed" in r.json()["detail"]


def test_fuzzed_requests_never_get_a_5xx(served):
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from hypothesis.errors import Unsatisfiable

    _, client, _, _ = served
    schema = schemathesis.openapi.from_dict(client.get("/openapi.json").json())
    base_url = str(client.base_url).rstrip("/")
    failures = []
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):

            @settings(max_examples=25, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck), derandomize=True)
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case):
                response = case.call(base_url=base_url, timeout=30)
                if response.status_code >= 500:
                    failures.append((case.operation.label, case.method, response.status_code, case.body))

            try:
                check()
            except Unsatisfiable:  # an operation without inputs has no invalid requests to make
                assert mode is schemathesis.GenerationMode.NEGATIVE
    assert not failures, failures[:3]


def test_hostile_requests_get_a_4xx(served):
    """Inputs a fuzzer rarely makes, as raw HTTP: every one is refused with a 4xx, none reaches a 5xx."""
    _, client, _, _ = served
    slate = recommend(client, 12, k=2)
    item = slate["items"][0]["item_id"]
    json_type = {"content-type": "application/json"}

    def raw(path, body: bytes, method="POST", **headers):
        return client.request(method, path, content=body, headers={**json_type, **headers})

    def chunks():
        yield b'{"impression_id": "x", '
        yield b'"item_id": 1, "reward": 1.0}'

    cases = {
        "non-ASCII id": feedback(client, "\u00e7\u00e9\u6f22\u5b57\U0001f642.1.2", item, reward=1.0),
        "valid id + non-ASCII": feedback(client, slate["impression_id"] + "\u00e9", item, reward=1.0),
        "escaped lone surrogate": raw("/feedback", b'{"impression_id": "\\ud800abc", "item_id": 1, "reward": 1.0}'),
        "raw surrogate bytes": raw("/feedback", b'{"impression_id": "\xed\xa0\x80", "item_id": 1, "reward": 1.0}'),
        "NaN reward": raw("/feedback", b'{"impression_id": "x", "item_id": 1, "reward": NaN}'),
        "Infinity reward": raw("/feedback", b'{"impression_id": "x", "item_id": 1, "reward": Infinity}'),
        "NaN k": raw("/recommend", b'{"user_id": 1, "k": NaN}'),
        "NaN price": raw("/items", b'{"items": [{"item_id": 9, "title": "t", "price": -Infinity}]}', "PUT"),
        "chunked, no length": client.post("/feedback", content=chunks(), headers=json_type),
        "body over 1 MiB": raw("/feedback", b'{"impression_id": "' + b"x" * (1 << 20) + b'", "item_id": 1}'),
    }
    answers = {name: (r.status_code, r.text[:120]) for name, r in cases.items()}
    assert all(400 <= status < 500 for status, _ in answers.values()), answers
    assert answers["chunked, no length"][0] == 411 and answers["body over 1 MiB"][0] == 413, answers


def test_a_redeploy_keeps_the_state_and_a_set_token_is_required(served):
    cfg, client, _, _ = served
    auth = {"Authorization": "Bearer s3cret-token"}
    # Open impressions close on the bandit's timer (reward 0 after the window) and would change the
    # state during the redeploy: wait until none is left.
    deadline = time.monotonic() + WINDOW_S + 30
    while (before := client.get("/stats").json())["pending_impressions"] and time.monotonic() < deadline:
        time.sleep(0.5)
    assert before["pending_impressions"] == 0, before
    # A new runtime_env is a new code version: Serve restarts every deployment.
    deploy(cfg, runtime_env={"env_vars": {"SERENDIP_API_TOKEN": "s3cret-token", "SERENDIP_OPERATOR_TOKEN": "op-token"}})
    operator = {"Authorization": "Bearer op-token"}
    after = client.get("/stats", headers=operator).json()
    assert after["replica_started"] != before["replica_started"]
    assert [a["counts"] for a in after["arms"]] == [a["counts"] for a in before["arms"]]
    assert [a["state"] for a in after["arms"]] == [a["state"] for a in before["arms"]]
    assert client.post("/recommend", json={"user_id": 1}).status_code == 401
    assert client.get("/healthz").status_code == 401
    assert client.get("/stats", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.post("/recommend", json={"user_id": 1}, headers=auth).status_code == 200
    # the shop's token opens no business data and no writes; the operator's opens no shop endpoint
    assert client.get("/stats", headers=auth).status_code == 401
    assert client.get("/experiments", headers=auth).status_code == 401
    item = {"items": [{"item_id": 501, "title": "rain canvas hat"}]}
    assert client.put("/items", json=item, headers=auth).status_code == 401
    assert client.put("/items", json=item, headers=operator).status_code == 200
    assert client.post("/recommend", json={"user_id": 1}, headers=operator).status_code == 401
