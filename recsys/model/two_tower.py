"""The two-tower recommender: item tower (BERT over item text, + optional ID vectors) and user tower
(a small transformer over cached item vectors). Score = user . item / temperature.

A model directory holds the fine-tuned encoder in Hugging Face format (``config.json``,
``model.safetensors``, tokenizer files), the towers' own weights in ``towers.safetensors``,
``serendip.json`` (see :mod:`recsys.model.manifest`) and ``item_table.safetensors``. Loading
uses ``trust_remote_code=False`` and safetensors only: nothing is unpickled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from recsys.model.base import check_base, load_encoder
from recsys.model.calibration import Calibrator
from recsys.model.config import TwoTowerConfig
from recsys.model.item_table import ItemTable, save_item_table
from recsys.model.item_tower import ItemTower
from recsys.model.manifest import read_manifest, write_manifest
from recsys.model.user_tower import UserTower
from recsys.text import TEXT_TEMPLATE, render_items

TOWERS_FILE = "towers.safetensors"
ENCODER_PREFIX = "item_tower.encoder."


class TwoTower(nn.Module):
    """Item tower + user tower. Build with :meth:`from_base` (training) or :meth:`from_pretrained`."""

    def __init__(self, config: TwoTowerConfig, encoder: nn.Module, tokenizer, id_vocab: np.ndarray | None = None):
        super().__init__()
        vocab = np.unique(np.asarray([] if id_vocab is None else id_vocab, dtype=np.int64))
        self.config = config
        self.tokenizer = tokenizer
        self.item_tower = ItemTower(encoder, config, n_ids=len(vocab))
        self.user_tower = UserTower(config)
        self.bce_bias = nn.Parameter(torch.zeros(()))
        self.register_buffer("id_vocab", torch.as_tensor(vocab, dtype=torch.long))
        self.calibrator: Calibrator | None = None
        self.manifest: dict = {}

    @property
    def temperature(self) -> float:
        """Divides every dot product: score = user . item / temperature."""
        return float(self.config.temperature)

    @classmethod
    def from_base(cls, config: TwoTowerConfig, item_ids: np.ndarray | None = None) -> TwoTower:
        """A fresh model on a pretrained base; ``item_ids`` get learned ID vectors (hybrid tower)."""
        base = check_base(config.base)
        encoder, tokenizer = load_encoder(base)
        return cls(config, encoder, tokenizer, item_ids if config.id_embeddings else None)

    # ---- items -------------------------------------------------------------------------------
    def id_rows(self, item_ids: np.ndarray) -> torch.Tensor:
        """Row of each item's ID vector (0 = no ID vector: cold or unknown item)."""
        vocab = self.id_vocab.cpu().numpy()
        ids = np.asarray(item_ids, dtype=np.int64)
        if not len(vocab):
            return torch.zeros(ids.shape, dtype=torch.long)
        pos = np.clip(np.searchsorted(vocab, ids), 0, len(vocab) - 1)
        return torch.as_tensor(np.where(vocab[pos] == ids, pos + 1, 0), dtype=torch.long)

    def tokenize(self, texts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Token ids and attention mask (bool), padded to the longest text, truncated to max_text_len."""
        batch = self.tokenizer(
            list(texts), padding=True, truncation=True, max_length=self.config.max_text_len, return_tensors="pt"
        )
        return batch["input_ids"], batch["attention_mask"].bool()

    @torch.no_grad()
    def frozen_text_states(self, texts: list[str], batch_size: int = 256) -> tuple[torch.Tensor, torch.Tensor]:
        """States after the frozen encoder layers for each text, padded to max_text_len (the catalog cache)."""
        width = self.config.max_text_len
        states, masks = [], []
        for lo in range(0, len(texts), batch_size):
            ids, mask = self.tokenize(texts[lo : lo + batch_size])
            out = self.item_tower.frozen_states(ids.to(self.device), mask.to(self.device))
            if out.dim() == 3:
                out = nn.functional.pad(out, (0, 0, 0, width - out.shape[1]))
            states.append(out)
            masks.append(nn.functional.pad(mask, (0, width - mask.shape[1])).to(self.device))
        return torch.cat(states), torch.cat(masks)

    @property
    def device(self) -> torch.device:
        """Where the model's weights are."""
        return self.bce_bias.device

    @torch.no_grad()
    def embed_items(self, items_df: pd.DataFrame, batch_size: int = 64) -> np.ndarray:
        """Item vectors (n, d) float32 for an items table: BERT over :func:`render_items` + ID vectors."""
        texts = render_items(items_df)
        ids = items_df["item_id"].to_numpy(np.int64)
        out = []
        for lo in range(0, len(texts), batch_size):
            states, mask = self.frozen_text_states(texts[lo : lo + batch_size], batch_size)
            pooled = self.item_tower.pooled(states, mask)
            out.append(self.item_tower.vectors(pooled, self.id_rows(ids[lo : lo + batch_size]).to(self.device)))
        return torch.cat(out).float().cpu().numpy() if out else np.zeros((0, self.config.dim), np.float32)

    @torch.no_grad()
    def embed_queries(self, texts: list[str]) -> np.ndarray:
        """Query vectors (n, d): the item tower's text path over free text (no ID vectors)."""
        if not len(texts):
            return np.zeros((0, self.config.dim), np.float32)
        states, mask = self.frozen_text_states(list(texts))
        return self.query_vectors(states, mask).float().cpu().numpy()

    def query_vectors(self, states: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Query tokens (n, d) from the frozen states of query texts: the item tower's text path, no ID
        vector, normalised like items. Serving (``embed_queries``) and training both run this."""
        vecs = self.item_tower.text_vectors(self.item_tower.pooled(states, mask))
        return nn.functional.normalize(vecs, dim=-1) if self.config.normalize else vecs

    def item_table(self, items_df: pd.DataFrame, batch_size: int = 64) -> ItemTable:
        """The catalog's :class:`ItemTable` under this model."""
        return ItemTable(items_df["item_id"].to_numpy(np.int64), self.embed_items(items_df, batch_size))

    # ---- users and scores --------------------------------------------------------------------
    def encode_users(
        self,
        history_vecs: torch.Tensor,
        history_events: torch.Tensor,
        mask: torch.Tensor,
        query_vecs: torch.Tensor | None = None,
        query_mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """User vectors (B, d) from cached history item vectors (B, L, d), events (B, L), mask (B, L)."""
        return self.user_tower(history_vecs, history_events, mask, query_vecs, query_mask)

    def forward(
        self,
        history_pooled: torch.Tensor,
        history_id_rows: torch.Tensor,
        history_slots: torch.Tensor,
        history_events: torch.Tensor,
        history_mask: torch.Tensor,
        item_states: torch.Tensor,
        item_mask: torch.Tensor,
        item_id_rows: torch.Tensor,
        query_vecs: torch.Tensor | None = None,
        query_mask: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: (user vectors (B, d), candidate item vectors (U, d), history item vectors (H, d)).

        History items arrive as the cached pooled text (H, hidden) of the batch's H distinct history
        items, refreshed once per epoch, and ``history_slots`` (B, L) indexing into them; so BERT runs
        only over the U candidates (their frozen states (U, T, hidden)). The projection and the ID
        vectors of history items are live: they learn every step, computed once per distinct item.
        ``query_vecs`` (B, d) (from :meth:`query_vectors`) join the rows ``query_mask`` (B,) marks.
        """
        history_items = self.item_tower.vectors(history_pooled, history_id_rows)
        users = self.user_tower(history_items[history_slots], history_events, history_mask, query_vecs, query_mask)
        items = self.item_tower.vectors(self.item_tower.pooled(item_states, item_mask), item_id_rows)
        return users, items, history_items

    def scores(self, user_vecs: torch.Tensor, item_vecs: torch.Tensor) -> torch.Tensor:
        """user . item / temperature for every pair (B, n)."""
        return user_vecs @ item_vecs.T / self.temperature

    def click_probability(self, scores: np.ndarray) -> np.ndarray:
        """Calibrated P(click) for scores (fitted on validation; see serendip.json "calibration")."""
        if self.calibrator is None:
            raise ValueError("this model has no calibration; train it with `serendip train` to fit one on validation")
        return self.calibrator(scores)

    # ---- persistence -------------------------------------------------------------------------
    def towers_state(self) -> dict[str, torch.Tensor]:
        """Every weight outside the encoder (projection, ID vectors, user tower, biases, vocab)."""
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if not k.startswith(ENCODER_PREFIX)}

    def save_pretrained(self, model_dir: str | Path, *, item_table: ItemTable | None = None, manifest: dict | None = None) -> Path:
        """Write the model directory (HF encoder + tokenizer, towers, serendip.json[, item table])."""
        model_dir = Path(model_dir)
        model_dir.mkdir(parents=True, exist_ok=True)
        self.item_tower.encoder.save_pretrained(model_dir, safe_serialization=True)
        self.tokenizer.save_pretrained(model_dir)
        save_file(self.towers_state(), str(model_dir / TOWERS_FILE))
        body = dict(self.manifest)
        body.update(manifest or {})
        body.update(
            base_model=body.get("base_model", self.config.base),
            text_template=TEXT_TEMPLATE,
            model_config=self.config.to_dict(),
            calibration=self.calibrator.to_dict() if self.calibrator else None,
        )
        write_manifest(model_dir, body)
        self.manifest = body
        if item_table is not None:
            save_item_table(model_dir, item_table)
        return model_dir

    @classmethod
    def from_pretrained(cls, model_dir: str | Path) -> TwoTower:
        """Load a saved model directory (safetensors only, ``trust_remote_code=False``), in eval mode."""
        manifest = read_manifest(model_dir)
        config = TwoTowerConfig.from_dict(manifest["model_config"])
        encoder, tokenizer = load_encoder(model_dir)
        towers = load_file(str(Path(model_dir) / TOWERS_FILE))
        model = cls(config, encoder, tokenizer, towers["id_vocab"].numpy())
        missing, unexpected = model.load_state_dict(towers, strict=False)
        missing = [k for k in missing if not k.startswith(ENCODER_PREFIX)]
        if missing or unexpected:
            raise ValueError(f"{model_dir}/{TOWERS_FILE}: missing {missing}, unexpected {unexpected}; re-export the model")
        if manifest.get("calibration"):
            model.calibrator = Calibrator.from_dict(manifest["calibration"])
        model.manifest = manifest
        return model.eval()
