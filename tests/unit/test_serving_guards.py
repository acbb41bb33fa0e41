"""Nobody in, nothing unbounded, without Ray: one bandit replica only, a deadline on every
handle call, a bounded catalog, the operator's token apart from the shop's, no open non-loopback host."""

import asyncio
from types import SimpleNamespace

import numpy as np
import pytest

from serving.app import app_config, check_single_bandit
from serving.bandit import refuse_replicas
from serving.catalog import CatalogFull, CatalogStore
from serving.config import ServeConfig, ServeConfigError, check_exposure
from serving.ingress import DeadlinePassed, Guard, call_with_deadline, http_error, token_check

# -- 5. one bandit replica -----------------------------------------------------------------------------------------


def test_a_second_bandit_replica_is_refused_in_the_config():
    with pytest.raises(ServeConfigError, match="bandit_replicas=2: the bandit must run as exactly one replica"):
        ServeConfig(model="m", bandit_replicas=2)


@pytest.mark.parametrize("override", [{"num_replicas": 2}, {"autoscaling_config": {"min_replicas": 1, "max_replicas": 3}}])
def test_a_serve_config_that_scales_the_bandit_is_refused(override):
    app = app_config(ServeConfig(model="m"))
    check_single_bandit(app)
    app["deployments"] = [{**d, **override} if d["name"] == "Bandit" else d for d in app["deployments"]]
    with pytest.raises(ValueError, match="exactly one replica.*404"):
        check_single_bandit(app)


def test_a_bandit_replica_started_as_one_of_two_refuses_to_start():
    refuse_replicas(SimpleNamespace(world_size=1, _deployment_config=SimpleNamespace(autoscaling_config=None)))
    with pytest.raises(RuntimeError, match="exactly one replica"):
        refuse_replicas(SimpleNamespace(world_size=2, _deployment_config=SimpleNamespace(autoscaling_config=None)))


# -- 6. deadlines --------------------------------------------------------------------------------------------------------


def test_a_call_past_its_deadline_is_retried_only_as_asked_then_answers_503():
    async def go(attempts):
        loop, calls = asyncio.get_running_loop(), []

        def hung():
            calls.append(loop.create_future())  # a replica that never answers
            return calls[-1]

        with pytest.raises(DeadlinePassed, match="feedback gave no answer in 0.05 s"):
            await call_with_deadline("feedback", hung, 0.05, attempts)
        assert all(c.cancelled() for c in calls)
        return len(calls)

    assert asyncio.run(go(1)) == 1 and asyncio.run(go(3)) == 3
    answer = http_error("feedback", DeadlinePassed("feedback gave no answer in 0.05 s"))
    assert answer.status_code == 503 and answer.headers["Retry-After"].isdigit()


# -- 7. the catalog is bounded ----------------------------------------------------------------------------------------


def test_the_catalog_refuses_products_past_its_bound(tmp_path):
    store = CatalogStore(tmp_path)
    store.add(np.arange(3), np.zeros((3, 2)), [{"item_id": i} for i in range(3)])
    store.check_room(np.arange(3), 4)  # updates of held products take no room
    store.check_room(np.arange(4), 4)
    with pytest.raises(CatalogFull, match="max_catalog_items=4"):
        store.check_room(np.arange(5), 4)
    assert http_error("catalog", CatalogFull("full")).status_code == 429


# -- 8. tokens ------------------------------------------------------------------------------------------------------------

SHOP, OPERATOR = "Bearer shop-token", "Bearer operator-token"


@pytest.mark.parametrize(("tokens", "method", "path", "auth", "status"), [
    (("shop-token", "operator-token"), "POST", "/recommend", SHOP, None),
    (("shop-token", "operator-token"), "POST", "/feedback", "", 401),
    (("shop-token", "operator-token"), "POST", "/recommend", OPERATOR, 401),
    (("shop-token", "operator-token"), "PUT", "/items", SHOP, 401),
    (("shop-token", "operator-token"), "GET", "/stats", SHOP, 401),
    (("shop-token", "operator-token"), "GET", "/experiments/", SHOP, 401),
    (("shop-token", "operator-token"), "GET", "/stats", OPERATOR, None),
    (("shop-token", "operator-token"), "PUT", "/items", OPERATOR, None),
    (("shop-token", None), "GET", "/stats", SHOP, 403),  # no operator token set: business data stays closed
    (("shop-token", None), "POST", "/feedback", SHOP, None),
    ((None, "operator-token"), "GET", "/experiments", "", 401),
    ((None, "operator-token"), "POST", "/recommend", "", None),
    ((None, None), "PUT", "/items", "", None),  # nothing set: the loopback default
])
def test_each_route_takes_its_own_token(monkeypatch, tokens, method, path, auth, status):
    monkeypatch.setattr(Guard, "token", tokens[0])
    monkeypatch.setattr(Guard, "operator_token", tokens[1])
    answer = token_check(method, path, auth)
    assert (None if answer is None else answer.status_code) == status


@pytest.mark.parametrize(("host", "insecure", "env", "refused"), [
    ("127.0.0.1", False, {}, False),
    ("localhost", False, {}, False),
    ("0.0.0.0", False, {}, True),
    ("10.0.0.7", False, {"SERENDIP_OPERATOR_TOKEN": "x"}, True),
    ("0.0.0.0", False, {"SERENDIP_API_TOKEN": "x"}, False),
    ("0.0.0.0", True, {}, False),
])
def test_a_non_loopback_host_needs_a_token_or_insecure(host, insecure, env, refused):
    cfg = ServeConfig(model="m", host=host, insecure=insecure)
    if refused:
        with pytest.raises(ServeConfigError, match="SERENDIP_API_TOKEN is not set.*--insecure"):
            check_exposure(cfg, env)
    else:
        check_exposure(cfg, env)


# -- 9. a 422 that echoes a lone surrogate still serializes -----------------------------------------------------------


def test_a_lone_surrogate_gets_a_422_not_a_500():
    from fastapi import FastAPI
    from fastapi.exceptions import RequestValidationError
    from fastapi.testclient import TestClient

    from serving.api import FeedbackRequest
    from serving.ingress import _invalid

    app = FastAPI()
    app.add_exception_handler(RequestValidationError, _invalid)

    @app.post("/fb")
    async def fb(body: FeedbackRequest) -> dict:
        return {}

    client = TestClient(app, raise_server_exceptions=False)
    for raw in (b'{"impression_id": "\\ud800x", "item_id": 1, "reward": 1.0}', b'{"impression_id": "\xed\xa0\x80"}'):
        r = client.post("/fb", content=raw, headers={"content-type": "application/json"})
        assert r.status_code == 422, r.text
