"""The ``Scorer`` deployment: batched candidate retrieval and context building (a shell over ``Retriever``).

Replicas scale with ``autoscaling_config``; ``@serve.batch`` groups concurrent requests into one
user-tower pass and one matrix product. Each replica holds the item matrix in memory and pulls
catalog versions it misses from the bandit (the catalog's only writer).

A new model arrives live through the scorer's ``user_config`` (``{"model": PATH}``, what
``serendip deploy --model`` sets): ``reconfigure`` loads it in a worker thread, tells the bandit,
re-embeds the products added through ``PUT /items`` with the new item tower, and only then swaps
it in, in one assignment. Batches in flight finish on the model they started with; the bandit and
its pending impressions are untouched.

With ``rerank_model`` set, a cross-encoder reorders each request's top ``rerank_top_n`` candidates
after retrieval and before the bandit (``recsys.model.cross_encoder.Reranker``), in the same worker
thread. It reads item text: the shop's items, and the products added through PUT /items that this
replica embeds; other candidates keep their two-tower place. Off by default: on CPU it costs a BERT
pass per reranked candidate.
"""

from __future__ import annotations

import asyncio
import json
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from ray import serve
from ray.serve.handle import DeploymentHandle

from recsys.data import read_table
from recsys.model import ItemTable, TwoTower, load_item_table
from recsys.model.cross_encoder import CrossEncoder, Reranker
from serving.catalog import CatalogDelta, CatalogStore, EmbeddedItems
from serving.config import ServeConfig
from serving.messages import Candidates, ScoreRequest
from serving.quantization import quantized_copy
from serving.retrieval import ItemEmbedder, PurchaseIndex, Retriever, model_version
from serving.telemetry import ServingMetrics

log = logging.getLogger("ray.serve")


def shop_backlog(cfg: ServeConfig, model: TwoTower, table: ItemTable) -> tuple[np.ndarray, np.ndarray, list[dict]] | None:
    """Embed the shop's items that the model's table and the stored catalog lack (ids, vectors, rows).

    The bandit stores them (``only_new``) on the first batch; the local catalog is read only to skip
    items a previous start already embedded (a model change re-embeds those through the catalog).
    """
    path = cfg.data / "items.parquet" if cfg.data else None
    if path is None or not path.exists():
        return None
    items = read_table(path, "items")
    stored = CatalogStore(cfg.state_dir / "catalog").item_ids()
    missing = items[~items["item_id"].isin(np.union1d(table.item_ids, stored))]
    if missing.empty:
        return None
    rows = json.loads(missing.to_json(orient="records"))
    return missing["item_id"].to_numpy(np.int64), model.embed_items(missing), rows


@dataclass
class ServedModel:
    """One model as a replica serves it: retrieval over its item vectors, its item tower, its start-up work."""

    path: Path
    """The model directory it was loaded from."""
    retriever: Retriever
    """User tower, item matrix (model table + catalog) and the bandit's input."""
    embedder: ItemEmbedder
    """The item tower for products added while serving (a worker thread)."""
    backlog: tuple[np.ndarray, np.ndarray, list[dict]] | None
    """Shop items missing from the model's table, embedded at load and stored on the first sync."""
    synced: bool = False
    """Whether the bandit knows this model and its catalog has been pulled once."""

    @property
    def version(self) -> str:
        """The model version every Candidates and catalog entry of this model carries."""
        return self.retriever.version


def load_served_model(cfg: ServeConfig, path: Path, purchases: PurchaseIndex | None) -> ServedModel:
    """Load a model directory for serving (blocking: seconds of disk and BERT; run it off the event loop)."""
    model = TwoTower.from_pretrained(path)
    table = load_item_table(path)
    retriever = Retriever(
        model, table, retrieve_n=cfg.retrieve_n, history_len=cfg.history_len, purchases=purchases,
        query_model=quantized_copy(model) if cfg.quantize else None, version=model_version(path, model, table),
    )
    return ServedModel(Path(path), retriever, ItemEmbedder(model), shop_backlog(cfg, model, table))


def load_reranker(cfg: ServeConfig) -> Reranker | None:
    """The cross-encoder stage when ``cfg.rerank_model`` is set, knowing the text of the shop's items; else None."""
    if not cfg.rerank_model:
        return None
    path = cfg.data / "items.parquet" if cfg.data else None
    items = read_table(path, "items") if path is not None and path.exists() else None
    return Reranker(CrossEncoder.from_pretrained(cfg.rerank_model), items, cfg.rerank_top_n)


def rerank_candidates(reranker: Reranker | None, requests: list[ScoreRequest], found: list[Candidates]) -> list[Candidates]:
    """Each request's candidates with the top ones reordered by ``reranker`` (unchanged when it is None)."""
    if reranker is None:
        return found
    for request, candidates in zip(requests, found, strict=True):
        if candidates.context is not None:
            candidates.context = reranker.rerank(candidates.context, request.history, request.query)
    return found


@serve.deployment(max_ongoing_requests=32, ray_actor_options={"num_cpus": 0.5})
class Scorer:
    """User vector, top-N candidates, neural-linear features and model prior for each request."""

    def __init__(self, config: dict, bandit: DeploymentHandle) -> None:
        self.cfg = ServeConfig.from_args(config)
        torch.set_num_threads(max(1, int(self.cfg.scorer_num_cpus)))
        self.purchases = PurchaseIndex.from_shop(self.cfg.data) if self.cfg.data else None
        self.served = load_served_model(self.cfg, self.cfg.model, self.purchases)
        self.reranker = load_reranker(self.cfg)
        self.bandit = bandit
        self._switching = asyncio.Lock()
        self._score_batch.set_max_batch_size(self.cfg.max_batch_size)
        self._score_batch.set_batch_wait_timeout_s(self.cfg.batch_wait_s)
        self.metrics = ServingMetrics()
        self.served.retriever.timed = self.metrics.timed
        # One thread scores, one batch at a time: the user tower and the matrix product release the GIL,
        # so the replica's event loop (its requests, health checks and queue-length probes, and in
        # throughput mode Serve's own request handling) goes on meanwhile; and the model's tokenizer
        # (free-text queries) is only ever used by this one thread.
        self._scoring = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scorer")

    async def reconfigure(self, user_config: dict | None) -> None:
        """``{"model": PATH}``: serve that model from now on, without a restart (a no-op for the loaded one).

        Serve calls this at start (a replica restarted after a live update loads its model twice) and
        on every ``user_config`` change. Loading and re-embedding run off the event loop, so requests
        go on being scored by the current model until the new one is ready.
        """
        if not isinstance(user_config, dict) or set(user_config) - {"model"}:
            raise ValueError(f"Scorer user_config {user_config!r}: give {{model: PATH}} (a `serendip train` directory)")
        path = Path(user_config.get("model") or self.cfg.model)
        async with self._switching:
            if path == self.served.path:
                return
            try:
                with self.metrics.timed("model_load"):
                    served = await asyncio.to_thread(load_served_model, self.cfg, path, self.purchases)
            except Exception:
                # Raising here would make Serve stop this replica and every replacement (each calls
                # reconfigure with the same config): a bad path must not take serving down.
                log.exception("scorer: model %s did not load; still serving %s", path, self.served.version)
                return
            served.retriever.timed = self.metrics.timed
            await self._sync(served, 0)
            old, self.served = self.served.version, served  # the swap: the next batch scores with the new model
        log.info("scorer: model %s replaced by %s (%d items)", old, served.version, len(served.retriever.table.item_ids))

    async def score(self, request: ScoreRequest) -> Candidates:
        """The bandit context for one /recommend (batched with concurrent calls)."""
        return await self._score_batch(request)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
    async def _score_batch(self, requests: list[ScoreRequest]) -> list[Candidates]:
        served = self.served  # one model for the whole batch, even if a swap lands meanwhile
        await self._sync(served, max(r.catalog_version for r in requests))
        with self.metrics.timed("scorer_batch"):
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(self._scoring, self._candidates, served, requests)

    def _candidates(self, served: ServedModel, requests: list[ScoreRequest]) -> list[Candidates]:
        """Retrieval, then the optional reranking stage (blocking: runs in the scoring thread)."""
        found = served.retriever.candidates(requests)
        if self.reranker is None:
            return found
        with self.metrics.timed("rerank"):
            return rerank_candidates(self.reranker, requests, found)

    async def _sync(self, served: ServedModel, wanted: int) -> None:
        """Tell the bandit the model (once) and pull the products ``served`` misses, re-embedding the ones
        another model embedded (on the first batch, at a model change, and whenever a request is newer)."""
        retriever = served.retriever
        if served.synced and wanted <= retriever.catalog_version:
            return
        if not served.synced:
            await self.bandit.use_model.remote(served.version)
        if served.backlog is not None:
            await self.bandit.add_items.remote(*served.backlog, only_new=True, model=served.version)
            served.backlog = None
        delta = await self.bandit.catalog_since.remote(retriever.catalog_version, served.version)
        retriever.apply(delta)
        if delta.to_embed:
            if self.reranker is not None:
                self.reranker.remember(pd.DataFrame(delta.to_embed))
            ids = np.asarray([row["item_id"] for row in delta.to_embed], np.int64)
            vectors = await served.embedder.embed(pd.DataFrame(delta.to_embed))
            await self.bandit.add_items.remote(ids, vectors, delta.to_embed, model=served.version)
            retriever.apply(CatalogDelta(delta.version, ids, vectors))
        served.synced = True

    async def stage_summary(self) -> dict:
        """This replica's time in each stage (user tower, retrieval, batch, embedding, model load)."""
        return self.metrics.stage_summary()

    async def embed(self, rows: list[dict]) -> EmbeddedItems:
        """Item vectors of new or changed products (fp32 item tower), how many were already known, and
        the model that embedded them.

        The item tower runs in a worker thread: /recommend batches on this replica go on meanwhile.
        """
        served, items = self.served, pd.DataFrame(rows)
        if self.reranker is not None:
            self.reranker.remember(items)
        with self.metrics.timed("embed_items"):
            vectors = await served.embedder.embed(items)
        known = len(served.retriever.rows(items["item_id"].to_numpy(np.int64)))
        return EmbeddedItems(vectors, known, served.version)
