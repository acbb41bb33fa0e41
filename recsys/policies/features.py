"""Linear-policy features: the model's embeddings and click prior turned into inputs for LinUCB/LinTS.

Riquelme, Tucker & Snoek (2018), "Deep Bayesian Bandits Showdown": a Bayesian linear model on
the last layer of a trained network explores well at a fraction of a full Bayesian net's cost.
Serving (``serving.retrieval``), the tuning sweep and the replay's model observer
(``recsys.model_observer``) all build features with :func:`linear_policy_features`, so a policy
tuned offline sees exactly the columns it will see when served.
"""

from __future__ import annotations

import numpy as np

LEADING_COLUMNS = 2
"""Columns before the embedding product: a bias and the model's click prior."""


def linear_policy_features(user_vec: np.ndarray, item_vecs: np.ndarray, prior: np.ndarray | None) -> np.ndarray:
    """(n, 2 + d) rows ``[1, prior_i, u * v_i]`` for one user vector ``u`` (d,) and item vectors (n, d).

    Why these columns: the posterior starts at zero weights, so a policy on ``u * v_i`` alone ranks
    at random until it has learned d weights. With the bias and the calibrated click prior (a
    probability, on the reward's own scale) one weight near 1 reproduces the model at once, and
    the product columns (whose weights 1/temperature reproduce ``u . v_i / temperature``) learn
    which embedding directions the shop's feedback re-weights. ``prior`` None (an uncalibrated
    model) gives a zero prior column, so the width never depends on calibration.
    """
    user = np.asarray(user_vec, dtype=np.float64)
    items = np.asarray(item_vecs, dtype=np.float64)
    if user.ndim != 1 or items.ndim != 2 or items.shape[1] != user.shape[0]:
        raise ValueError(f"linear_policy_features: user_vec {user.shape} and item_vecs {items.shape} must be (d,) "
                         "and (n, d) with the same d; pass the model's user and item embeddings")
    n = items.shape[0]
    column = np.zeros(n) if prior is None else np.asarray(prior, dtype=np.float64)
    if column.shape != (n,):
        raise ValueError(f"linear_policy_features: prior {column.shape} must be ({n},), one click probability "
                         "per item vector; pass the model's calibrated prior of these candidates or None")
    return np.hstack([np.ones((n, 1)), column[:, None], items * user])
