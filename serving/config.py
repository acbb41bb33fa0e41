"""The one typed configuration of the Serve app: ``serendip serve`` flags and ``serving/config.yaml`` map onto it.

``ServeConfig`` holds every knob; each A/B arm is a ``recsys.policies.Arm`` (a policy, its exploration
parameters, a name and a weight). The CLI writes arms as ``NAME=POLICY[:param=value,...][@WEIGHT]``
strings, the YAML as mappings; both end in the same dataclasses, validated on construction.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from recsys.policies.arm import Arm, ArmError

LIVE_FIELDS = ("policy", "policy_params", "arms")
"""Fields that reach the bandit through its Serve ``user_config`` and change without a restart."""


class ServeConfigError(ValueError):
    """A serving configuration value is out of range; the message names the field and the fix."""


@dataclass
class ServeConfig:
    """Everything ``serendip serve`` and ``serving.app:build_app`` need to run the deployment graph."""

    model: Path
    """Model directory written by training (HF BERT + serendip.json + item-embedding table)."""
    data: Path | None = None
    """Optional shop directory: items missing from the model's table are embedded at start; purchases are excluded."""
    policy: str = "thompson"
    """Policy of the single arm when ``arms`` is empty."""
    policy_params: dict[str, float] = field(default_factory=dict)
    """Exploration parameters of that policy (e.g. epsilon 0.1)."""
    arms: tuple[str, ...] = ()
    """A/B arms as NAME=POLICY[:param=value,...][@WEIGHT] (``recsys.policies.Arm``); the first is the control."""
    host: str = "127.0.0.1"
    """HTTP bind address; loopback unless told otherwise."""
    port: int = 8000
    """HTTP port."""
    ingress_mode: Literal["fast", "default"] = "fast"
    """How HTTP reaches the app (``serving.ingress_mode``): ``fast`` = HAProxy in front, straight to the ingress
    replicas, user code on their main event loop; ``default`` = Serve's Python proxy. Set in the environment before
    ``serendip serve`` starts its local Ray; on a cluster the nodes' environment decides."""
    metrics_port: int | None = None
    """Prometheus port of the embedded Ray (``/metrics``); None = Ray picks one (``serendip serve`` only)."""
    state_dir: Path = Path("runs/serve-state")
    """Durable bandit state: WAL, snapshots, HMAC key, added items, impression log (a PVC or NFS on a cluster)."""
    app_name: str = "serendip"
    """Serve application name."""
    scorer_replicas: int = 1
    """Scorer replicas at start (the minimum when autoscaling)."""
    scorer_max_replicas: int = 1
    """Autoscaling ceiling; above ``scorer_replicas`` turns autoscaling on."""
    scorer_num_cpus: float = 0.5
    """CPUs reserved per scorer replica."""
    bandit_num_cpus: float = 0.25
    """CPUs reserved by the single bandit replica."""
    bandit_replicas: int = 1
    """Must be 1: the bandit is the only writer of the posteriors and holds the pending impressions."""
    ingress_num_cpus: float = 0.25
    """CPUs reserved per ingress replica."""
    ingress_replicas: int = 1
    """HTTP ingress replicas."""
    max_batch_size: int = 16
    """Largest scorer batch (``@serve.batch``); the scorer accepts at least this many ongoing requests."""
    batch_wait_s: float = 0.002
    """How long the scorer waits to fill a batch."""
    score_timeout_s: float = 10.0
    """Deadline of one scorer call; past it the ingress retries on another replica (a node that died hard)."""
    score_attempts: int = 3
    """Calls of an idempotent handle (scorer, feedback, reports) before the ingress answers 503."""
    call_timeout_s: float = 10.0
    """Deadline of every other handle call of the ingress (bandit, embedding, catalog, reports); past it 503."""
    request_timeout_s: float = 60.0
    """Serve's HTTP request timeout (``http_options.request_timeout_s``) where ``serendip serve`` starts Serve."""
    retrieve_n: int = 200
    """Candidates retrieved by dot product and handed to the bandit."""
    history_len: int = 50
    """Newest history items the user tower reads (requests may send up to 200)."""
    reward_window_s: float = 3600.0
    """Delayed-reward window: after it an impression counts with reward 0 and late feedback gets 410."""
    max_pending_mb: float = 1024.0
    """Memory the pending impressions may hold (linear arms keep their slates' features); past it /recommend gets 429."""
    max_catalog_items: int = 200_000
    """Products ``PUT /items`` may add (each scorer replica holds all their vectors); past it 429."""
    snapshot_every: int = 10_000
    """Snapshot the bandit state after this many WAL records ..."""
    snapshot_interval_s: float = 60.0
    """... or after this many seconds with new records, whichever comes first."""
    wal_group_size: int = 64
    """Group commit: fsync as soon as this many records wait ..."""
    wal_group_wait_s: float = 0.002
    """... or after this many seconds."""
    log_batch_rows: int = 5000
    """Impression-log rows per Parquet part."""
    log_interval_s: float = 30.0
    """Write a Parquet part at least this often when rows are waiting."""
    quantize: bool = False
    """Run the query encoder in int8 on CPU (dynamic quantization)."""
    rerank_model: str | None = None
    """A cross-encoder reranker directory (``python -m training.cross_encoder``) that reorders the two-tower's
    top ``rerank_top_n`` before the bandit; None = off (it costs a BERT pass per reranked candidate)."""
    rerank_top_n: int = 20
    """Candidates the reranker reorders (the two-tower's top ones), when ``rerank_model`` is set."""
    seed: int = 0
    """Seed of the bandit's sampling."""
    token_env: str = "SERENDIP_API_TOKEN"
    """Environment variable holding the shop's bearer token (/recommend, /feedback, /healthz, /docs)."""
    operator_token_env: str = "SERENDIP_OPERATOR_TOKEN"
    """Environment variable holding the operator's bearer token (PUT /items, /stats, /experiments)."""
    insecure: bool = False
    """Serve a non-loopback ``host`` without a shop token (``serendip serve`` refuses that otherwise)."""
    secret_env: str = "SERENDIP_SECRET"
    """Environment variable holding the HMAC key of impression ids (else a 0600 key file in state_dir)."""
    blocking: bool = True
    """``serendip serve`` waits until Ctrl-C; False returns once the app is running (tests, demo)."""

    def __post_init__(self) -> None:
        self.model = Path(self.model)
        self.data = None if self.data is None else Path(self.data)
        self.state_dir = Path(self.state_dir)
        self.arms = tuple(self.arms)
        try:
            self.policy_params = Arm(self.policy, self.policy_params).params
        except ArmError as err:
            raise ServeConfigError(f"ServeConfig.policy: {err}") from None
        try:
            arms = self.served_arms()
        except ArmError as err:
            raise ServeConfigError(f"ServeConfig.arms: {err}") from None
        positive_ints = ("port", "scorer_replicas", "ingress_replicas", "max_batch_size", "retrieve_n",
                         "history_len", "snapshot_every", "wal_group_size", "log_batch_rows", "score_attempts",
                         "max_catalog_items")
        for name in positive_ints:
            if int(getattr(self, name)) < 1:
                raise ServeConfigError(f"ServeConfig.{name}={getattr(self, name)} must be >= 1")
        positive_floats = ("scorer_num_cpus", "bandit_num_cpus", "ingress_num_cpus", "reward_window_s",
                           "snapshot_interval_s", "log_interval_s", "score_timeout_s", "call_timeout_s",
                           "request_timeout_s", "max_pending_mb")
        for name in positive_floats:
            if not float(getattr(self, name)) > 0:
                raise ServeConfigError(f"ServeConfig.{name}={getattr(self, name)} must be > 0")
        for name in ("batch_wait_s", "wal_group_wait_s"):
            if not 0 <= float(getattr(self, name)) <= 1:
                raise ServeConfigError(f"ServeConfig.{name}={getattr(self, name)} must be in [0, 1] seconds")
        if self.ingress_mode not in ("fast", "default"):
            raise ServeConfigError(f"ServeConfig.ingress_mode={self.ingress_mode!r} must be 'fast' or 'default'")
        if self.bandit_replicas != 1:
            raise ServeConfigError(single_bandit_message(f"ServeConfig.bandit_replicas={self.bandit_replicas}"))
        if self.port > 65535:
            raise ServeConfigError(f"ServeConfig.port={self.port} must be <= 65535")
        if self.scorer_max_replicas < self.scorer_replicas:
            raise ServeConfigError(
                f"ServeConfig.scorer_max_replicas={self.scorer_max_replicas} is below scorer_replicas="
                f"{self.scorer_replicas}; raise it or lower scorer_replicas"
            )
        if self.history_len > 200:
            raise ServeConfigError(f"ServeConfig.history_len={self.history_len} must be <= 200 (the request bound)")
        names = [a.name for a in arms]
        if len(set(names)) != len(names):
            raise ServeConfigError(f"ServeConfig.arms: arm names {names} must be unique")
        for arm in arms:
            try:
                arm.check_servable()
            except ArmError as err:
                raise ServeConfigError(f"ServeConfig.arms: {err}") from None

    def check_paths(self) -> None:
        """Fail before Ray starts when the model or shop directory is not what serving reads."""
        if not (self.model / "serendip.json").is_file() or not (self.model / "item_table.safetensors").is_file():
            raise ServeConfigError(
                f"ServeConfig.model={self.model}: no serendip.json or item_table.safetensors; "
                "pass a directory written by `serendip train`"
            )
        if self.data is not None and not (self.data / "items.parquet").is_file():
            raise ServeConfigError(
                f"ServeConfig.data={self.data}: no items.parquet; pass a shop directory (`serendip simulate --out DIR`)"
            )

    def served_arms(self) -> list[Arm]:
        """The arms in order (control first); one arm named after the policy when none are given."""
        if not self.arms:
            return [Arm(self.policy, self.policy_params)]
        return [Arm.from_value(a) for a in self.arms]

    def user_config(self) -> dict[str, Any]:
        """The bandit's Serve ``user_config``: what ``reconfigure`` changes live."""
        return {"arms": [a.as_mapping() for a in self.served_arms()]}

    def to_args(self) -> dict[str, Any]:
        """A JSON/YAML-friendly dict that ``ServeConfig.from_args`` turns back into this config."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            out[f.name] = str(value) if isinstance(value, Path) else list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_args(cls, args: dict[str, Any]) -> ServeConfig:
        """Build from a Serve YAML ``args`` mapping; unknown keys are an error naming them."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(args) - known)
        if unknown:
            raise ServeConfigError(f"serving args: unknown keys {unknown}; valid keys are {sorted(known)}")
        args = dict(args)
        if "arms" in args:
            try:
                args["arms"] = tuple(a if isinstance(a, str) else Arm.from_value(a).spec() for a in args["arms"])
            except ArmError as err:
                raise ServeConfigError(f"serving args: arms: {err}") from None
        return cls(**args)


def single_bandit_message(what: str) -> str:
    """Why the bandit runs as exactly one replica, for every place that refuses another count."""
    return (f"{what}: the bandit must run as exactly one replica. It is the only writer of the posteriors and "
            "holds the pending impressions, so a second replica would answer about half of all feedback with 404 "
            "and both would write one WAL. Scale the scorer instead (scorer_replicas / scorer_max_replicas).")


LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost")


def check_exposure(cfg: ServeConfig, environ: dict[str, str]) -> None:
    """Refuse to serve a non-loopback host with no shop token unless ``cfg.insecure`` says so."""
    if cfg.host in LOOPBACK_HOSTS or cfg.host.startswith("127.") or cfg.insecure:
        return
    if not environ.get(cfg.token_env):
        raise ServeConfigError(
            f"ServeConfig.host={cfg.host!r} is reachable beyond this machine but {cfg.token_env} is not set: anyone "
            f"could request slates and post rewards. Set {cfg.token_env} (and {cfg.operator_token_env} for PUT /items, "
            "/stats, /experiments), bind 127.0.0.1, or pass --insecure to serve it open anyway"
        )
