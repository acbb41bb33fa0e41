"""The two baselines of ``bench_serving.py``: Serve's no-work floor and a seed-style cross-encoder server."""

# No ``from __future__ import annotations``: FastAPI must see the request model on the methods below.
import numpy as np


def floor_app(num_cpus: dict[str, float], max_batch_size: int, batch_wait_s: float):
    """The same three-deployment graph, same batching and CPUs, doing no work."""
    from fastapi import FastAPI
    from ray import serve

    from serving.api import RecommendRequest

    api = FastAPI()
    reply = {"impression_id": "0.0.x", "policy": "floor", "model_version": "floor",
             "items": [{"item_id": i, "position": i, "score": 0.0, "propensity": 1.0, "explored": False}
                       for i in range(10)]}

    @serve.deployment(max_ongoing_requests=2 * max_batch_size, ray_actor_options={"num_cpus": num_cpus["scorer"]})
    class FloorScorer:
        async def score(self, request: dict, version: int) -> dict:
            return await self.batch(request, version)

        @serve.batch(max_batch_size=max_batch_size, batch_wait_timeout_s=batch_wait_s)
        async def batch(self, requests: list[dict], versions: list[int]) -> list[dict]:
            return [{} for _ in requests]

    @serve.deployment(max_ongoing_requests=256, ray_actor_options={"num_cpus": num_cpus["bandit"]})
    class FloorBandit:
        async def select(self, user_id: int, candidates: dict, k: int) -> dict:
            return {**reply, "catalog_version": 0}

    @serve.deployment(max_ongoing_requests=128, ray_actor_options={"num_cpus": num_cpus["ingress"]})
    @serve.ingress(api)
    class FloorIngress:
        def __init__(self, scorer, bandit):
            self.scorer, self.bandit = scorer, bandit

        @api.post("/recommend")
        async def recommend(self, body: RecommendRequest) -> dict:
            candidates = await self.scorer.score.remote(body.model_dump(), 0)  # awaited here, as the real ingress does
            result = await self.bandit.select.remote(body.user_id, candidates, body.k)
            result.pop("catalog_version")
            return result

    return FloorIngress.bind(FloorScorer.bind(), FloorBandit.bind())


def crossenc_app(items_path: str, candidates: int, num_cpus: float):
    """A seed-style server: BERT reads (history, candidate) pairs for every candidate of every request."""
    from fastapi import FastAPI
    from ray import serve

    from serving.api import RecommendRequest

    api = FastAPI()

    @serve.deployment(max_ongoing_requests=8, ray_actor_options={"num_cpus": num_cpus})
    @serve.ingress(api)
    class CrossEncoder:
        def __init__(self):
            import pandas as pd
            import torch
            from transformers import AutoTokenizer, BertForSequenceClassification

            from recsys.model import default_base_path
            from recsys.text import render_items

            torch.set_num_threads(2)  # the whole 2-CPU machine: the baseline gets every chance
            base = str(default_base_path())
            self.tokenizer = AutoTokenizer.from_pretrained(base)
            self.model = BertForSequenceClassification.from_pretrained(
                base, num_labels=1, use_safetensors=True, trust_remote_code=False).eval()
            items = pd.read_parquet(items_path)
            self.ids = items["item_id"].to_numpy()
            self.text = dict(zip(self.ids.tolist(), render_items(items), strict=True))
            self.rng = np.random.default_rng(0)

        @api.post("/recommend")
        def recommend(self, body: RecommendRequest) -> dict:
            import torch

            history = " ; ".join(self.text.get(i, "") for i in body.history[:10])
            cands = self.rng.choice(self.ids, size=candidates, replace=False)
            batch = self.tokenizer([history] * len(cands), [self.text[int(i)] for i in cands], truncation=True,
                                   max_length=128, padding=True, return_tensors="pt")
            with torch.no_grad():
                logits = self.model(**batch).logits[:, 0].numpy()
            top = np.argsort(-logits)[: body.k]
            return {"impression_id": None, "policy": "crossenc", "model_version": "crossenc",
                    "items": [{"item_id": int(cands[i]), "position": p, "score": float(logits[i]), "propensity": 1.0,
                               "explored": False} for p, i in enumerate(top)]}

    return CrossEncoder.bind()
