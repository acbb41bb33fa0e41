"""Offline metrics: full-ranking top-K metrics, click-prediction metrics, the evaluation protocols,
and the A/B statistics of served arms (``ab``).

Each name loads its module on first use (PEP 562), so the serving bandit reads ``recsys.metrics.ab``
without importing torch (``ranking``) or scikit-learn (``classification``) into its replica.
"""

from importlib import import_module

_HOME = {
    "ArmCounts": "ab",
    "EASEConfig": "ease",
    "ProtocolError": "protocols",
    "auc": "classification",
    "evaluate_cold_items": "protocols",
    "evaluate_leave_one_out": "protocols",
    "evaluate_random_split": "protocols",
    "expected_calibration_error": "classification",
    "experiment_report": "ab",
    "full_ranking": "ranking",
    "lift_interval": "ab",
    "log_loss": "classification",
    "popularity_scorer": "protocols",
    "rank_chunk": "ranking",
    "train_ease": "ease",
    "two_proportion_p_value": "ab",
    "wilson_interval": "ab",
}
"""Exported name -> the module of this package that defines it."""

__all__ = sorted(_HOME)


def __getattr__(name: str):
    """Import the module behind ``name`` when it is first asked for."""
    if name not in _HOME:
        raise AttributeError(f"module 'recsys.metrics' has no attribute {name!r}")
    return getattr(import_module(f"recsys.metrics.{_HOME[name]}"), name)


def __dir__() -> list[str]:
    """The exported names, loaded or not."""
    return __all__
