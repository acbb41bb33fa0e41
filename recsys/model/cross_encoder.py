"""The seed article's cross-encoder, as an optional reranking stage after the two-tower retrieval.

A ``BertForSequenceClassification`` with one output reads a pair: the shopper's behaviour (their
search query, if any, and the text of their newest history items) and one candidate's text (the
same :func:`recsys.text.render_items` line the item tower reads), and gives one click logit (the
monoBERT reranker of Nogueira & Cho 2019, here on behaviour instead of a query). BERT reads every
pair, so it costs a BERT pass per candidate: it reranks only the two-tower's top N.

The reranked slate keeps the two-tower's scores and prior as a set: the item the cross-encoder puts
first takes the top score (and its prior), the second the next one, and so on. So the bandit sees
the cross-encoder's order with the score and calibrated-prior scale it was tuned on.

A saved reranker is a Hugging Face directory (``config.json``, ``model.safetensors``, tokenizer
files) plus ``reranker.json``; loading uses ``trust_remote_code=False`` and safetensors only.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from torch import nn
from transformers import AutoTokenizer, BertForSequenceClassification

from recsys.model.base import check_base
from recsys.policies import Context
from recsys.policies.base import top_k
from recsys.text import TEXT_TEMPLATE, render_items

RERANKER_FILE = "reranker.json"
NO_HISTORY = "a new shopper"
"""The behaviour text of a shopper with no history and no query."""


class RerankerError(ValueError):
    """A reranker directory or setting is unusable; the message names the file or field and the fix."""


@dataclass(frozen=True)
class CrossEncoderConfig:
    """What the cross-encoder reads; stored in reranker.json with every saved reranker."""

    base: str = ""
    """BERT-family checkpoint it starts from ("" = MiniLM-L6)."""
    history_items: int = 5
    """Newest history items whose text makes the behaviour side of a pair."""
    max_len: int = 128
    """Tokens of a (behaviour, candidate) pair; the longer side is truncated first."""

    def __post_init__(self) -> None:
        for name in ("history_items", "max_len"):
            if int(getattr(self, name)) < 1:
                raise RerankerError(f"CrossEncoderConfig.{name}={getattr(self, name)}: must be >= 1")

    @classmethod
    def from_dict(cls, data: dict) -> CrossEncoderConfig:
        """Build from a dict, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def behaviour_text(history_texts: list[str], query: str | None = None) -> str:
    """The behaviour side of a pair: ``search: QUERY ; newest item ; next item ...``."""
    parts = ([f"search: {query}"] if query else []) + [t for t in history_texts if t]
    return " ; ".join(parts) or NO_HISTORY


class CrossEncoder(nn.Module):
    """(behaviour text, candidate text) -> click logit; build with :meth:`from_base` or :meth:`from_pretrained`."""

    def __init__(self, model: BertForSequenceClassification, tokenizer, config: CrossEncoderConfig) -> None:
        super().__init__()
        if model.config.num_labels != 1:
            raise RerankerError(f"cross-encoder: num_labels={model.config.num_labels}; a reranker has one output (a logit)")
        self.model, self.tokenizer, self.config = model, tokenizer, config

    @classmethod
    def from_base(cls, config: CrossEncoderConfig) -> CrossEncoder:
        """A fresh cross-encoder on a pretrained encoder (its classification head starts untrained)."""
        base = check_base(config.base)
        model = BertForSequenceClassification.from_pretrained(base, num_labels=1, trust_remote_code=False,
                                                              use_safetensors=True)
        return cls(model, AutoTokenizer.from_pretrained(base, trust_remote_code=False), config)

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> CrossEncoder:
        """Load a saved reranker (safetensors only, ``trust_remote_code=False``), in eval mode."""
        directory = Path(directory)
        if not (directory / RERANKER_FILE).is_file():
            raise RerankerError(f"{directory}: no {RERANKER_FILE}; pass a directory written by `python -m training.cross_encoder`")
        config = CrossEncoderConfig.from_dict(json.loads((directory / RERANKER_FILE).read_text())["config"])
        model = BertForSequenceClassification.from_pretrained(str(directory), trust_remote_code=False,
                                                              use_safetensors=True)
        return cls(model, AutoTokenizer.from_pretrained(str(directory), trust_remote_code=False), config).eval()

    def save_pretrained(self, directory: str | Path, manifest: dict | None = None) -> Path:
        """Write the reranker directory (HF model + tokenizer as safetensors, reranker.json)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory, safe_serialization=True)
        self.tokenizer.save_pretrained(directory)
        body = {"config": asdict(self.config), "text_template": TEXT_TEMPLATE, **(manifest or {})}
        (directory / RERANKER_FILE).write_text(json.dumps(body, indent=2, default=str))
        return directory

    @property
    def device(self) -> torch.device:
        """Where the weights are."""
        return next(self.model.parameters()).device

    def forward(self, behaviours: list[str], candidates: list[str]) -> torch.Tensor:
        """Click logits (n,) of n (behaviour, candidate) pairs."""
        batch = self.tokenizer(list(behaviours), list(candidates), truncation="longest_first", padding=True,
                               max_length=self.config.max_len, return_tensors="pt").to(self.device)
        return self.model(**batch).logits[:, 0]

    @torch.no_grad()
    def score(self, behaviour: str, candidates: list[str]) -> np.ndarray:
        """Click logits (n,) of one shopper's candidates."""
        return self.forward([behaviour] * len(candidates), candidates).float().cpu().numpy()


def rerank_context(context: Context, relevance, top_n: int, rerankable: np.ndarray | None = None) -> Context:
    """``context`` with its top ``top_n`` candidates by score reordered by ``relevance(indices) -> (m,)``.

    The reordered candidates take the scores and priors of the slots they move into (the item ranked
    first by relevance gets the highest score among them), so the score and prior scales are kept.
    ``rerankable`` (n,) bool leaves the others where they are (e.g. items without text). Ties keep
    the two-tower's order: the result is deterministic.
    """
    top = top_k(context.scores, min(top_n, context.n))
    if rerankable is not None:
        top = top[rerankable[top]]
    if len(top) < 2:
        return context
    order = np.argsort(-np.asarray(relevance(top), dtype=np.float64), kind="stable")
    scores = context.scores.copy()
    scores[top[order]] = context.scores[top]
    prior = None
    if context.prior is not None:
        prior = context.prior.copy()
        prior[top[order]] = context.prior[top]
    return Context(item_ids=context.item_ids, scores=scores, features=context.features, prior=prior)


class Reranker:
    """The serving stage: a cross-encoder and the text of every item it may read."""

    def __init__(self, encoder: CrossEncoder, items: pd.DataFrame | None = None, top_n: int = 20) -> None:
        if top_n < 2:
            raise RerankerError(f"rerank_top_n={top_n}: must be >= 2 (reranking fewer candidates changes nothing)")
        self.encoder, self.top_n = encoder, int(top_n)
        self.texts: dict[int, str] = {}
        if items is not None:
            self.remember(items)

    def remember(self, items: pd.DataFrame) -> None:
        """Learn (or update) the text of these items (an items table)."""
        self.texts.update(zip(items["item_id"].astype(int).tolist(), render_items(items), strict=True))

    def behaviour(self, history: list[int], query: str | None = None) -> str:
        """Behaviour text of a request: its query and its newest known history items (newest first)."""
        known = [self.texts[i] for i in history if i in self.texts]
        return behaviour_text(known[: self.encoder.config.history_items], query)

    def rerank(self, context: Context, history: list[int], query: str | None = None) -> Context:
        """The context with its top ``top_n`` reordered by the cross-encoder (items without text stay put)."""
        behaviour = self.behaviour(list(history), query)
        ids = context.item_ids.tolist()
        rerankable = np.fromiter((i in self.texts for i in ids), bool, len(ids))
        return rerank_context(context, lambda rows: self.encoder.score(behaviour, [self.texts[ids[r]] for r in rows]),
                              self.top_n, rerankable)
