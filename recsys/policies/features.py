"""Neural-linear features: the model's embeddings turned into inputs for the linear policies.

Riquelme, Tucker & Snoek (2018), "Deep Bayesian Bandits Showdown": a Bayesian linear model on
the last layer of a trained network explores well at a fraction of a full Bayesian net's cost.
"""

from __future__ import annotations

import numpy as np


def neural_linear_features(user_vec: np.ndarray, item_vecs: np.ndarray) -> np.ndarray:
    """(n, d) element-wise products u * v_i of the user vector and each item vector.

    A linear model on these features generalizes the two-tower score: weights w = 1/temperature
    reproduce u . v_i / temperature, and the posterior learns which embedding directions the
    shop's feedback re-weights.
    """
    user = np.asarray(user_vec, dtype=np.float64)
    items = np.asarray(item_vecs, dtype=np.float64)
    if user.ndim != 1 or items.ndim != 2 or items.shape[1] != user.shape[0]:
        raise ValueError(f"neural_linear_features: user_vec {user.shape} and item_vecs {items.shape} must be (d,) "
                         "and (n, d) with the same d; pass the model's user and item embeddings")
    return items * user
