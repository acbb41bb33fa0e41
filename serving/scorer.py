"""The ``Scorer`` deployment: batched candidate retrieval and context building (a shell over ``Retriever``).

Replicas scale with ``autoscaling_config``; ``@serve.batch`` groups concurrent requests into one
user-tower pass and one matrix product. Each replica holds the item matrix in memory and pulls
catalog versions it misses from the bandit (the catalog's only writer).
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import torch
from ray import serve
from ray.serve.handle import DeploymentHandle

from recsys.data import read_table
from recsys.model import ItemTable, TwoTower, load_item_table
from serving.bandit_state import Candidates
from serving.catalog import CatalogStore
from serving.config import ServeConfig
from serving.quantization import quantized_copy
from serving.retrieval import ItemEmbedder, PurchaseIndex, Retriever, model_version
from serving.telemetry import ServingMetrics


def shop_backlog(cfg: ServeConfig, model: TwoTower, table: ItemTable) -> tuple[np.ndarray, np.ndarray, list[dict]] | None:
    """Embed the shop's items that the model's table and the stored catalog lack (ids, vectors, rows).

    The bandit stores them (``only_new``) on the first batch; the local catalog is read only to skip
    items a previous start already embedded.
    """
    path = cfg.data / "items.parquet" if cfg.data else None
    if path is None or not path.exists():
        return None
    items = read_table(path, "items")
    stored = CatalogStore(cfg.state_dir / "catalog").since(0).item_ids
    missing = items[~items["item_id"].isin(np.union1d(table.item_ids, stored))]
    if missing.empty:
        return None
    rows = json.loads(missing.to_json(orient="records"))
    return missing["item_id"].to_numpy(np.int64), model.embed_items(missing), rows


@serve.deployment(max_ongoing_requests=32, ray_actor_options={"num_cpus": 0.5})
class Scorer:
    """User vector, top-N candidates, neural-linear features and model prior for each request."""

    def __init__(self, config: dict, bandit: DeploymentHandle) -> None:
        cfg = ServeConfig.from_args(config)
        torch.set_num_threads(max(1, int(cfg.scorer_num_cpus)))
        model = TwoTower.from_pretrained(cfg.model)
        table = load_item_table(cfg.model)
        self._backlog = shop_backlog(cfg, model, table)
        self.retriever = Retriever(
            model, table, retrieve_n=cfg.retrieve_n, history_len=cfg.history_len,
            purchases=PurchaseIndex.from_shop(cfg.data) if cfg.data else None,
            query_model=quantized_copy(model) if cfg.quantize else None, version=model_version(cfg.model, model),
        )
        self.embedder = ItemEmbedder(model)
        self.bandit = bandit
        self._synced = False
        self._score_batch.set_max_batch_size(cfg.max_batch_size)
        self._score_batch.set_batch_wait_timeout_s(cfg.batch_wait_s)
        self.metrics = ServingMetrics()

    async def score(self, request: dict, catalog_version: int, with_features: bool = True) -> Candidates:
        """The bandit context for one /recommend body (batched with concurrent calls)."""
        return await self._score_batch(request, catalog_version, with_features)

    @serve.batch(max_batch_size=16, batch_wait_timeout_s=0.002)
    async def _score_batch(self, requests: list[dict], catalog_versions: list[int],
                           with_features: list[bool]) -> list[Candidates]:
        await self._sync_catalog(max(catalog_versions))
        with self.metrics.timed("scorer_batch"):
            return self.retriever.candidates(requests, with_features)

    async def _sync_catalog(self, wanted: int) -> None:
        """Pull the products this replica misses (on its first batch, and whenever a request is newer)."""
        if self._synced and wanted <= self.retriever.catalog_version:
            return
        if self._backlog is not None:
            await self.bandit.add_items.remote(*self._backlog, only_new=True)
            self._backlog = None
        self.retriever.apply(await self.bandit.catalog_since.remote(self.retriever.catalog_version))
        self._synced = True

    async def embed(self, rows: list[dict]) -> tuple[np.ndarray, int]:
        """Item vectors of new or changed products (fp32 item tower) and how many were already known.

        The item tower runs in a worker thread: /recommend batches on this replica go on meanwhile.
        """
        items = pd.DataFrame(rows)
        with self.metrics.timed("embed_items"):
            vectors = await self.embedder.embed(items)
        known = len(self.retriever.rows(items["item_id"].to_numpy(np.int64)))
        return vectors, known
