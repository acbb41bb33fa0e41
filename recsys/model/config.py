"""The shape of the two-tower model in one dataclass (the model's ``GPTConfig``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields

from recsys.data.schemas import EVENT_TYPES


class ModelConfigError(ValueError):
    """A TwoTowerConfig field is out of range; the message names the field and the fix."""


@dataclass(frozen=True)
class TwoTowerConfig:
    """Architecture of the two-tower recommender; stored in serendip.json with every model."""

    base: str = ""
    """Path or hub name of the BERT-family checkpoint the item tower starts from ("" = MiniLM-L6)."""
    dim: int = 128
    """Width of item and user vectors; scores are dot products in this space."""
    max_text_len: int = 32
    """Tokens of item text the item tower reads (longer texts are truncated)."""
    train_layers: int = 1
    """Top BERT layers that are fine-tuned (0 = frozen BERT); the lower ones are cached per catalog."""
    text_tower: bool = True
    """Item vectors read the item text; False leaves only the ID vectors (an ablation: cold items get none)."""
    id_embeddings: bool = True
    """Hybrid item tower: add a learned item-ID vector for items seen in training (none for cold items)."""
    id_dropout: float = 0.2
    """Training-time probability of hiding an item's ID vector, so the text path learns to stand alone."""
    history_len: int = 50
    """Most recent history items the user tower reads (newest first)."""
    user_layers: int = 2
    """Transformer encoder layers in the user tower."""
    user_heads: int = 4
    """Attention heads per user-tower layer; must divide ``dim``."""
    dropout: float = 0.1
    """Dropout inside the user tower and on history vectors."""
    temperature: float = 0.05
    """Softmax temperature: score = user . item / temperature."""
    normalize: bool = True
    """L2-normalise user and item vectors, so scores are cosine similarities over the temperature."""

    def __post_init__(self) -> None:
        positive = {"dim": self.dim, "max_text_len": self.max_text_len, "history_len": self.history_len,
                    "user_layers": self.user_layers, "user_heads": self.user_heads}
        for name, value in positive.items():
            if int(value) < 1:
                raise ModelConfigError(f"TwoTowerConfig.{name}={value}: must be >= 1")
        if self.train_layers < 0:
            raise ModelConfigError(f"TwoTowerConfig.train_layers={self.train_layers}: must be >= 0 (0 = frozen BERT)")
        if not self.text_tower and (not self.id_embeddings or self.train_layers):
            raise ModelConfigError(
                f"TwoTowerConfig.text_tower=False with id_embeddings={self.id_embeddings}, train_layers="
                f"{self.train_layers}: an item tower without text needs id_embeddings=True and train_layers=0"
            )
        if self.dim % self.user_heads:
            raise ModelConfigError(
                f"TwoTowerConfig.user_heads={self.user_heads}: must divide dim={self.dim}; pick e.g. user_heads=4"
            )
        for name in ("id_dropout", "dropout"):
            value = getattr(self, name)
            if not 0.0 <= value < 1.0:
                raise ModelConfigError(f"TwoTowerConfig.{name}={value}: must be in [0, 1)")
        if not self.temperature > 0:
            raise ModelConfigError(f"TwoTowerConfig.temperature={self.temperature}: must be > 0")

    @property
    def n_event_types(self) -> int:
        """Number of event kinds the user tower can mark on a history item."""
        return len(EVENT_TYPES)

    def to_dict(self) -> dict:
        """Plain JSON-ready dict of every field."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> TwoTowerConfig:
        """Build from a dict, ignoring keys this version does not know (forward compatibility)."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})
