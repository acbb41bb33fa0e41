"""Offline metrics: full-ranking top-K metrics, click-prediction metrics, and the evaluation protocols."""

from recsys.metrics.classification import auc, expected_calibration_error, log_loss
from recsys.metrics.ease import EASEConfig as EASEConfig, train_ease as train_ease
from recsys.metrics.protocols import (
    ProtocolError,
    evaluate_cold_items,
    evaluate_leave_one_out,
    evaluate_random_split,
    popularity_scorer,
)
from recsys.metrics.ranking import full_ranking, rank_chunk

__all__ = [
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
]
