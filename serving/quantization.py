"""The int8 query encoder for CPUs: dynamic quantization of BERT's linear layers.

Dynamic quantization stores the weights of every ``nn.Linear`` in int8 and quantizes activations
on the fly (Jacob et al. 2018; PyTorch ``quantize_dynamic``). Only the copy that encodes free-text
queries is quantized: item vectors stay fp32, so the catalog and the query live in one space and
the agreement with fp32 can be measured on the same inputs (``agreement``).
"""

from __future__ import annotations

import copy
import time
import warnings

import numpy as np
import torch
from torch import nn

from recsys.model import TwoTower


def quantized_copy(model: TwoTower) -> TwoTower:
    """A copy of ``model`` whose BERT encoder runs int8 linear layers (the towers' heads stay fp32)."""
    clone = copy.deepcopy(model).eval()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization announces its move to torchao
        # inplace: the item tower keeps references to the encoder's layer objects; only their
        # Linear children are swapped.
        torch.ao.quantization.quantize_dynamic(clone.item_tower.encoder, {nn.Linear}, dtype=torch.qint8, inplace=True)
    return clone


def _timed_queries(model: TwoTower, texts: list[str], repeats: int) -> tuple[np.ndarray, float]:
    model.embed_queries(texts[:2])  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        vecs = model.embed_queries(texts)
    return vecs, (time.perf_counter() - start) / repeats


def agreement(model: TwoTower, quantized: TwoTower, texts: list[str], item_vectors: np.ndarray,
              k: int = 10, repeats: int = 3) -> dict[str, float]:
    """Speed-up of the int8 query encoder and how closely its rankings follow fp32.

    Returns seconds per batch for both, their ratio, the mean cosine between fp32 and int8 query
    vectors, and the mean overlap of the top-``k`` items each retrieves from ``item_vectors``.
    """
    fp32, t32 = _timed_queries(model, texts, repeats)
    int8, t8 = _timed_queries(quantized, texts, repeats)
    cos = (fp32 * int8).sum(1) / (np.linalg.norm(fp32, axis=1) * np.linalg.norm(int8, axis=1) + 1e-12)
    top32 = np.argsort(-(fp32 @ item_vectors.T), axis=1)[:, :k]
    top8 = np.argsort(-(int8 @ item_vectors.T), axis=1)[:, :k]
    overlap = [len(set(a) & set(b)) / k for a, b in zip(top32, top8, strict=True)]
    return {
        "fp32_query_s": t32,
        "int8_query_s": t8,
        "quant_speedup": t32 / t8 if t8 > 0 else float("nan"),
        "quant_cosine": float(cos.mean()),
        f"quant_top{k}_overlap": float(np.mean(overlap)),
    }
