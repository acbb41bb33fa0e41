"""The deployment graph and its two entry points: ``serve run/deploy`` (``build_app``) and ``serendip serve``.

``app = Ingress.bind(Scorer.bind(config, bandit), bandit)`` with ``bandit = Bandit.bind(config)``:
one bandit replica (the only writer), scorer replicas that may autoscale, and the HTTP ingress.
``num_cpus`` is declared on every deployment, so the defaults (0.25 + 0.5 + 0.25) fit a 2-CPU
machine and the same graph scales out on a cluster.

The model travels twice: in ``args`` (what a replica loads at start) and in the scorer's
``user_config`` (``{"model": PATH}``). ``serendip deploy --model NEW`` (``deploy_model``) changes
only the latter, so Serve reconfigures the scorers in place and restarts nothing.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ray import serve
from ray.serve import Application

from serving import ingress_mode
from serving.bandit import Bandit
from serving.config import LIVE_FIELDS, ServeConfig, check_exposure, single_bandit_message
from serving.ingress import Ingress
from serving.scorer import Scorer

log = logging.getLogger("ray.serve")


def scorer_options(cfg: ServeConfig) -> dict[str, Any]:
    """Replicas (or autoscaling) and the in-flight limit, which must admit a full ``@serve.batch``."""
    options: dict[str, Any] = {
        "ray_actor_options": {"num_cpus": cfg.scorer_num_cpus},
        # Serve caps a @serve.batch at max_ongoing_requests: leave room for a second batch to queue.
        "max_ongoing_requests": 2 * cfg.max_batch_size,
    }
    if cfg.scorer_max_replicas > cfg.scorer_replicas:
        options["autoscaling_config"] = {
            "min_replicas": cfg.scorer_replicas,
            "max_replicas": cfg.scorer_max_replicas,
            "target_ongoing_requests": cfg.max_batch_size,
        }
    else:
        options["num_replicas"] = cfg.scorer_replicas
    return options


def scorer_user_config(model: Path) -> dict[str, str]:
    """The scorer's Serve ``user_config``: the model it serves, changed live by ``serendip deploy``."""
    return {"model": str(model)}


def graph(cfg: ServeConfig) -> Application:
    """The bound three-deployment application for ``cfg``.

    Secrets never travel as arguments (Serve keeps those in its checkpoints): each replica reads
    ``SERENDIP_SECRET`` / ``SERENDIP_API_TOKEN`` from its own environment (the driver's for
    ``serendip serve``, ``runtime_env.env_vars`` on a cluster).
    """
    # Arms travel only in the bandit's user_config: changing them is a live reconfigure, not a restart.
    args = {k: v for k, v in cfg.to_args().items() if k not in LIVE_FIELDS}
    bandit = Bandit.options(
        num_replicas=1, ray_actor_options={"num_cpus": cfg.bandit_num_cpus}, user_config=cfg.user_config()
    ).bind(args)
    scorer = Scorer.options(**scorer_options(cfg), user_config=scorer_user_config(cfg.model)).bind(args, bandit)
    return Ingress.options(
        num_replicas=cfg.ingress_replicas, ray_actor_options={"num_cpus": cfg.ingress_num_cpus},
    ).bind(scorer, bandit, cfg.token_env, cfg.score_timeout_s, cfg.score_attempts, cfg.operator_token_env,
           cfg.call_timeout_s)


def check_single_bandit(app: dict[str, Any]) -> None:
    """Refuse an application config (``serve deploy`` YAML or REST) that scales the Bandit beyond one replica."""
    for d in app.get("deployments", []):
        if d.get("name") != "Bandit":
            continue
        if d.get("autoscaling_config") not in (None, {}):
            raise ValueError(single_bandit_message(f"application {app.get('name')!r}: Bandit autoscaling_config"))
        if d.get("num_replicas", 1) != 1:
            raise ValueError(single_bandit_message(f"application {app.get('name')!r}: Bandit num_replicas="
                                                   f"{d['num_replicas']}"))


def build_app(args: dict[str, Any]) -> Application:
    """Serve's application builder: ``import_path: serving.app:build_app`` with ``args`` = ServeConfig fields.

    It runs in a process of the cluster, whose environment tells the ingress mode the cluster's Serve runs.
    """
    cfg = ServeConfig.from_args(args)
    if (running := ingress_mode.running_mode()) != cfg.ingress_mode:
        log.warning("ingress_mode=%s asked, but this cluster's Serve runs the %s ingress: set %s in every "
                    "node's environment before Ray starts (or ingress_mode: %s)", cfg.ingress_mode, running,
                    " ".join(f"{k}=1" for k in ingress_mode.SWITCHES), running)
    return graph(cfg)


def app_config(cfg: ServeConfig, runtime_env: dict[str, Any] | None = None) -> dict[str, Any]:
    """The Serve config (one ``applications`` entry) of ``cfg``: what ``serve deploy`` reads.

    The arms go to the bandit's ``user_config``, not to ``args``: Serve restarts replicas when
    ``args`` change and only calls ``reconfigure`` when a ``user_config`` changes. Secrets
    (``SERENDIP_API_TOKEN``, ``SERENDIP_SECRET``) belong in ``runtime_env.env_vars``, filled from a
    secret store on a cluster, never in ``args``.
    """
    return {**({"runtime_env": runtime_env} if runtime_env else {}),
        "name": cfg.app_name,
        "route_prefix": "/",
        "import_path": "serving.app:build_app",
        "args": {k: v for k, v in cfg.to_args().items() if k not in LIVE_FIELDS},
        "deployments": [{"name": "Bandit", "user_config": cfg.user_config()},
                        {"name": "Scorer", "user_config": scorer_user_config(cfg.model)}],
    }


def dashboard_url() -> str:
    """The connected Ray's dashboard address, where Serve's declarative REST API lives."""
    import ray

    if not ray.is_initialized():
        raise RuntimeError("dashboard_url: connect to Ray first (ray.init or serendip serve)")
    # Ray's documented way to read the address; with ignore_reinit_error it starts nothing.
    return "http://" + ray.init(ignore_reinit_error=True).address_info["webui_url"]


def deploy(cfg: ServeConfig, dashboard: str | None = None, runtime_env: dict[str, Any] | None = None,
           timeout_s: float = 300.0) -> None:
    """Deploy (or update) the app declaratively, as ``serve deploy`` does, and wait until it runs.

    A changed arm is applied live through ``reconfigure``; any other change restarts replicas.
    """
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    def last_deployed() -> float | None:
        app = serve.status().applications.get(cfg.app_name)
        return None if app is None else app.last_deployed_time_s

    before = last_deployed()
    app = app_config(cfg, runtime_env)
    check_single_bandit(app)
    ServeSubmissionClient(dashboard or dashboard_url()).deploy_applications({"applications": [app]})
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        app = serve.status().applications.get(cfg.app_name)
        if app is not None and app.last_deployed_time_s != before and app.status == "RUNNING":
            return
        if app is not None and app.status == "DEPLOY_FAILED":
            raise RuntimeError(f"serve app {cfg.app_name!r} failed to deploy: {app.message}")
        time.sleep(0.25)
    raise TimeoutError(f"serve app {cfg.app_name!r} not RUNNING after {timeout_s:g} s; see `serve status`")


@dataclass
class DeployConfig:
    """``serendip deploy``: put a new model into a running app without restarting the bandit."""

    model: Path
    """Model directory (``serendip train`` / ``retrain``) at a path every scorer replica can read."""
    app_name: str = "serendip"
    """The running Serve application."""
    dashboard: str = "http://127.0.0.1:8265"
    """The Ray dashboard, where Serve's REST API lives (``serendip serve`` binds it on loopback)."""
    timeout_s: float = 300.0
    """How long to wait for every scorer replica to load the model and re-embed added products."""

    def __post_init__(self) -> None:
        self.model = Path(self.model)
        if not self.timeout_s > 0:
            raise ValueError(f"DeployConfig.timeout_s={self.timeout_s} must be > 0")


def with_model(app: dict[str, Any], model: Path) -> dict[str, Any]:
    """A copy of a deployed application config whose scorer serves ``model``; nothing else changes."""
    deployments = [dict(d) for d in app.get("deployments", []) if d.get("name") != "Scorer"]
    scorer = next((dict(d) for d in app.get("deployments", []) if d.get("name") == "Scorer"), {"name": "Scorer"})
    return {**app, "deployments": [*deployments, {**scorer, "user_config": scorer_user_config(model)}]}


def deploy_model(cfg: DeployConfig) -> int:
    """Switch the running app's scorers to ``cfg.model`` live and wait until every replica serves it.

    Only the Scorer's ``user_config`` changes (``args`` stay byte-identical), so Serve calls its
    ``reconfigure`` in place: the bandit, its WAL and the impressions in flight are untouched. The
    other applications on the cluster are resubmitted unchanged (Serve's REST API replaces the set).
    """
    from ray.dashboard.modules.serve.sdk import ServeSubmissionClient

    model = cfg.model.resolve()
    ServeConfig(model=model).check_paths()
    client = ServeSubmissionClient(cfg.dashboard)
    apps = client.get_serve_details().get("applications", {})
    if cfg.app_name not in apps:
        raise SystemExit(f"serendip deploy: no Serve app {cfg.app_name!r} at {cfg.dashboard} (running: {sorted(apps)})")
    configs = {name: app.get("deployed_app_config") for name, app in apps.items()}
    if any(config is None for config in configs.values()):
        raise SystemExit(f"serendip deploy: apps {sorted(n for n, c in configs.items() if c is None)} were started with "
                         "serve.run, not declaratively; redeploy them with `serendip serve` or `serve deploy` first")
    before = apps[cfg.app_name]["last_deployed_time_s"]
    configs[cfg.app_name] = with_model(configs[cfg.app_name], model)
    check_single_bandit(configs[cfg.app_name])
    client.deploy_applications({"applications": list(configs.values())})
    deadline = time.monotonic() + cfg.timeout_s
    while time.monotonic() < deadline:
        app = client.get_serve_details()["applications"].get(cfg.app_name, {})
        if app.get("last_deployed_time_s") != before and app.get("status") == "RUNNING":
            print(f"serendip deploy: {cfg.app_name} serves {model}; GET /stats shows its model_version", flush=True)
            return 0
        if app.get("status") == "DEPLOY_FAILED":
            raise SystemExit(f"serendip deploy: {cfg.app_name} failed to deploy: {app.get('message')}")
        time.sleep(0.25)
    raise SystemExit(f"serendip deploy: {cfg.app_name} not RUNNING after {cfg.timeout_s:g} s; see `serve status`")


def require_cluster(environ: dict[str, str]) -> str:
    """The ``RAY_ADDRESS`` that ``python -m serving`` joins, or an exit naming the two ways to serve.

    It never starts a local Ray: ``serendip serve`` does, through ``training.local_ray.init_ray``,
    with Ray's token auth on (its GCS, raylet and dashboard agent listen beyond loopback).
    """
    address = environ.get("RAY_ADDRESS", "").strip()
    if not address:
        raise SystemExit(
            "python -m serving: no Ray to serve on; set RAY_ADDRESS to join a running cluster, or run "
            "`serendip serve`, which starts a local Ray with token auth on (a 0600 token in --state-dir)"
        )
    return address


def serve_main(cfg: ServeConfig) -> int:
    """Serve on ``cfg.host:cfg.port`` and the app, on the Ray this process is connected to.

    A local Ray is started in one place, ``training.local_ray.init_ray`` (with its token auth), which
    ``serendip serve`` and the demo call first; serving may not import training, so called without
    Ray (``python -m serving``) this joins the cluster at ``RAY_ADDRESS`` and starts none.
    """
    import ray

    cfg.check_paths()
    check_exposure(cfg, dict(os.environ))
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if not ray.is_initialized():
        address = require_cluster(dict(os.environ))
        ray.init(address=address, log_to_driver=False)
    print("serendip serve:", json.dumps(cfg.to_args(), sort_keys=True), flush=True)
    running = ray.get(ray.remote(num_cpus=0)(ingress_mode.running_mode).remote())
    if running != cfg.ingress_mode:
        print(f"serendip serve: ingress_mode={cfg.ingress_mode} asked, but this Ray's processes run Serve's "
              f"{running} ingress (its environment was set before Ray started; see serving/ingress_mode.py)",
              flush=True)
    serve.start(http_options={"host": cfg.host, "port": cfg.port, "request_timeout_s": cfg.request_timeout_s})
    # Declarative, like `serve deploy`: a later `serve deploy` with new arms reconfigures live.
    deploy(cfg)
    print(f"Serendip is serving on http://{cfg.host}:{cfg.port} (API docs at /docs)", flush=True)
    if not cfg.blocking:
        return 0
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print("shutting down: the bandit writes a final snapshot", flush=True)
        serve.shutdown()
    return 0
