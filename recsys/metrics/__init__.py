"""Offline metrics: full-ranking top-K metrics, click-prediction metrics, and the evaluation protocols."""

from recsys.metrics.classification import auc, expected_calibration_error, log_loss
from recsys.metrics.ease import EASEConfig, train_ease
from recsys.metrics.protocols import (
    ProtocolError,
    evaluate_cold_items,
    evaluate_leave_one_out,
    evaluate_random_split,
    popularity_scorer,
)
from recsys.metrics.ranking import full_ranking, rank_chunk

__all__ = [
    "EASEConfig",
    "ProtocolError",
    "auc",
    "evaluate_cold_items",
    "evaluate_leave_one_out",
    "evaluate_random_split",
    "expected_calibration_error",
    "full_ranking",
    "log_loss",
    "popularity_scorer",
    "rank_chunk",
    "train_ease",
]
