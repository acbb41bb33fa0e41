"""Per-epoch validation: full-ranking metrics over the validation users (sharded across workers and
summed), and, on rank 0, the click-probability calibration of validation scores.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from recsys.metrics import auc, rank_chunk
from recsys.model import TwoTower, fit_calibration
from recsys.model.calibration import Calibrator
from training.batches import TextCache
from training.config import TrainConfig
from training.run_data import RunData
from training.session import Session

KS = (10, 20)
REPORTED = ("ndcg@10", "recall@10", "hit@10", "mrr@10", "ndcg@20", "recall@20")


def validation_users(data: RunData, cfg: TrainConfig) -> np.ndarray:
    """The validation users of every epoch (a seeded sample when ``eval_users`` caps them)."""
    users = np.unique(data.valid["user_id"].to_numpy(np.int64))
    if cfg.eval_users and len(users) > cfg.eval_users:
        users = np.sort(np.random.default_rng(cfg.seed).choice(users, cfg.eval_users, replace=False))
    return users


@torch.no_grad()
def validate(core: TwoTower, cache: TextCache, data: RunData, cfg: TrainConfig, session: Session,
             chunk: int = 256) -> tuple[dict[str, float], np.ndarray, Calibrator | None]:
    """Validation metrics ("val_ndcg10", ...), the catalog's item vectors, and rank 0's calibrator."""
    was_training = core.training
    core.eval()
    cache.refresh(core)  # the epoch changed the fine-tuned layers; the next epoch's histories use this too
    item_vecs = cache.item_vectors(core)
    users = validation_users(data, cfg)[session.rank :: session.world_size]
    valid_user = data.valid["user_id"].to_numpy(np.int64)
    valid_col = data.rows_of(data.item_ids, data.valid["item_id"].to_numpy(np.int64))
    sums = torch.zeros(len(REPORTED) + 1, dtype=torch.float64)
    cal_scores, cal_labels = [], []
    rng = np.random.default_rng(cfg.seed)
    for lo in range(0, len(users), chunk):
        batch_users = users[lo : lo + chunk]
        rows, events, mask = data.history.gather(batch_users, cfg.history_len)
        device = item_vecs.device
        user_vecs = core.encode_users(
            item_vecs[torch.as_tensor(rows, device=device)], torch.as_tensor(events, device=device),
            torch.as_tensor(mask, device=device),
        )
        scores = core.scores(user_vecs, item_vecs).float().cpu()
        seen = data.history.items_of(batch_users)
        at = pd.Index(batch_users).get_indexer(valid_user)
        positives = (at[at >= 0], valid_col[at >= 0])
        per_user = rank_chunk(scores, seen, positives, KS)
        ok = ~np.isnan(per_user["ndcg@10"])
        sums[0] += float(ok.sum())
        for i, name in enumerate(REPORTED, start=1):
            sums[i] += float(per_user[name][ok].sum())
        if session.rank == 0:
            _calibration_sample(scores, seen, positives, cfg.neg_ratio or 1, rng, cal_scores, cal_labels)
    sums = session.all_reduce(sums)
    metrics = {f"val_{name.replace('@', '')}": float(sums[i] / max(float(sums[0]), 1.0))
               for i, name in enumerate(REPORTED, start=1)}
    metrics["val_users"] = int(sums[0])
    calibrator = None
    if session.rank == 0 and cal_scores:
        s, y = np.concatenate(cal_scores), np.concatenate(cal_labels)
        if len(np.unique(y)) == 2:
            calibrator = fit_calibration(s, y, cfg.calibration,
                                         source=f"validation positives vs 1:{cfg.neg_ratio or 1} sampled unseen items")
            metrics["val_auc"] = auc(y, s)
    core.train(was_training)
    return metrics, item_vecs.float().cpu().numpy(), calibrator


def _calibration_sample(scores: torch.Tensor, seen, positives, ratio: int, rng: np.random.Generator,
                        out_scores: list, out_labels: list) -> None:
    """Scores of validation positives and of ``ratio`` random unseen items per positive."""
    pos_u, pos_c = positives
    if not len(pos_u):
        return
    out_scores.append(scores[torch.as_tensor(pos_u), torch.as_tensor(pos_c)].numpy())
    out_labels.append(np.ones(len(pos_u)))
    neg_u = np.repeat(pos_u, ratio)
    neg_c = rng.integers(0, scores.shape[1], len(neg_u))
    n = scores.shape[1]
    taken = np.concatenate([np.asarray(seen[0]) * n + np.asarray(seen[1]), pos_u * n + pos_c])
    keep = ~np.isin(neg_u * n + neg_c, taken)
    out_scores.append(scores[torch.as_tensor(neg_u[keep]), torch.as_tensor(neg_c[keep])].numpy())
    out_labels.append(np.zeros(int(keep.sum())))
