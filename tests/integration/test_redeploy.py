"""A live model update over real HTTP: serve with model A, add a product, switch to model B with
``serendip deploy``'s function, and nothing in flight is lost while the embedding space changes."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import httpx
import numpy as np
import pandas as pd
import pytest
import torch

from recsys.model import Calibrator, TwoTower, TwoTowerConfig, build_tiny_base
from serving.app import DeployConfig, dashboard_url, deploy, deploy_model
from serving.catalog import CatalogStore
from serving.config import ServeConfig

NEW_ITEM = {"item_id": 90, "title": "storm shell jacket", "category": "jacket", "brand": "Northpeak", "price": 120.0,
            "attributes": {"colour": "red"}}


def tiny_model(base, out, seed):
    """An untrained tiny two-tower model for items 0..29 (seeds give different embedding spaces)."""
    torch.manual_seed(seed)
    config = TwoTowerConfig(base=str(base), dim=16, user_heads=2, user_layers=1, id_embeddings=False, history_len=8)
    model = TwoTower.from_base(config).eval()
    model.calibrator = Calibrator("platt", {"a": 0.02, "b": -2.5})
    ids = list(range(30))
    items = pd.DataFrame({"item_id": ids, "title": [f"wool scarf {i}" for i in ids], "category": "scarf",
                          "brand": "Northpeak", "price": 20.0, "attributes": "{}"})
    model.save_pretrained(out, item_table=model.item_table(items))
    return out


@pytest.fixture(scope="module")
def served(tmp_path_factory, serve_port):
    root = tmp_path_factory.mktemp("redeploy")
    base = build_tiny_base(root / "base")
    model_a, model_b = tiny_model(base, root / "model-a", 0), tiny_model(base, root / "model-b", 1)
    cfg = ServeConfig(
        model=model_a, state_dir=root / "state", arms=("items=greedy@1", "linear=linucb:alpha=0.1@1"),
        scorer_num_cpus=0.1, bandit_num_cpus=0.1, ingress_num_cpus=0.1, retrieve_n=40,
        snapshot_every=100_000, snapshot_interval_s=3600.0, app_name="serendip-redeploy",
    )
    deploy(cfg)
    with httpx.Client(base_url=f"http://127.0.0.1:{serve_port}", timeout=30) as client:
        yield cfg, model_b, client
    from ray import serve

    serve.delete(cfg.app_name)


def arms(client) -> dict[str, dict]:
    return {a["arm"]: a for a in client.get("/stats").json()["arms"]}


def slate_of(client, arm, **body):
    """A slate from ``arm`` (users are split by a hash of their id)."""
    for user in range(1000):
        r = client.post("/recommend", json={"user_id": user, "k": 3, **body})
        assert r.status_code == 200, r.text
        if r.json()["policy"] == arm:
            return r.json()
    raise AssertionError(f"no user of arm {arm!r} in 1000")


def traffic(base_url, done) -> list[int]:
    """Status of every /recommend sent until ``done`` is set."""
    with httpx.Client(base_url=base_url, timeout=30) as client:
        statuses = []
        while not done.is_set():
            statuses.append(client.post("/recommend", json={"user_id": len(statuses), "k": 3}).status_code)
        return statuses


def click(client, slate, n=1):
    for item in slate["items"][:n]:
        r = client.post("/feedback", json={"impression_id": slate["impression_id"], "item_id": item["item_id"],
                                           "reward": 1.0})
        assert r.status_code == 200 and r.json() == {"status": "accepted"}, r.text


def test_a_new_model_goes_live_without_losing_the_bandit(served):
    cfg, model_b, client = served
    assert client.put("/items", json={"items": [NEW_ITEM]}).status_code == 200
    for arm in ("items", "linear"):  # evidence learned under model A
        click(client, slate_of(client, arm), n=2)
    in_flight = {arm: slate_of(client, arm, candidates=[90, 1, 2, 3]) for arm in ("items", "linear")}
    before = client.get("/stats").json()
    learned = arms(client)
    assert before["model_version"].startswith("model-a") and learned["linear"]["state"]["state"]["n_updates"] == 2

    with ThreadPoolExecutor(1) as pool:  # shoppers keep asking while the scorer switches models
        statuses = pool.submit(traffic, str(client.base_url), done := threading.Event())
        deploy_model(DeployConfig(model=model_b, app_name=cfg.app_name, dashboard=dashboard_url(), timeout_s=120))
        done.set()
        assert set(statuses.result()) == {200}, statuses.result()

    after = client.get("/stats").json()
    assert after["model_version"].startswith("model-b") and after["model_version"] != before["model_version"]
    assert after["replica_started"] == before["replica_started"]  # the bandit was not restarted
    assert after["pending_impressions"] >= before["pending_impressions"]  # plus the slates served meanwhile
    now = arms(client)
    assert now["linear"]["state"]["state"]["n_updates"] == 0  # a fresh posterior for B's embedding space
    assert now["items"]["state"]["state"]["n_updates"] == learned["items"]["state"]["state"]["n_updates"]
    # impressions served by A still take feedback; the linear one no longer teaches the posterior
    for arm in ("items", "linear"):
        click(client, in_flight[arm])
    now = arms(client)
    assert now["linear"]["state"]["state"]["n_updates"] == 0
    assert now["items"]["state"]["state"]["n_updates"] == learned["items"]["state"]["state"]["n_updates"] + 1
    # the product added under A is served with B's vector, filed under B's version
    fresh = slate_of(client, "linear", candidates=[90, 1, 2, 3], k=4)
    assert fresh["model_version"] == after["model_version"] and 90 in [i["item_id"] for i in fresh["items"]]
    delta = CatalogStore(cfg.state_dir / "catalog").since(0, after["model_version"])
    assert delta.item_ids.tolist() == [90] and delta.to_embed == []
    row = pd.DataFrame([{**NEW_ITEM, "attributes": '{"colour": "red"}'}])
    expected = TwoTower.from_pretrained(model_b).embed_items(row)
    np.testing.assert_allclose(delta.vectors, expected, rtol=1e-4, atol=1e-5)
    click(client, fresh)  # B's slates teach B's posterior
    assert arms(client)["linear"]["state"]["state"]["n_updates"] == 1
