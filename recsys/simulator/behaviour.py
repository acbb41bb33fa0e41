"""How a shopper acts: examination by position, attraction, satiation and taste drift. Pure maths.

Clicks follow the position-based model (Richardson, Dominowska & Ragno 2007; Craswell et al. 2008):
P(click at position j) = examination(j) * attraction(user, item), with attraction independent of
the position and the rest of the slate. Satiation (as in RecSim's interest models, Ie et al. 2019)
scales a category's attraction down after clicks and purchases and recovers visit by visit. Taste
drift is an Ornstein-Uhlenbeck process sampled exactly over any time step.
"""

from __future__ import annotations

import numpy as np


def examination(k: int, decay: float) -> np.ndarray:
    """P(a shopper examines position j), j = 0..k-1: ``(1 + j) ** -decay``; position 0 is always examined."""
    return (1.0 + np.arange(k)) ** -decay


def satiation_factor(satiation: np.ndarray, strength: float) -> np.ndarray:
    """Share of attraction a satiated category keeps: exp(-strength * satiation)."""
    return np.exp(-strength * np.asarray(satiation, dtype=np.float64))


def attraction(logits: np.ndarray, factor: np.ndarray) -> np.ndarray:
    """P(click | examined) = sigmoid(logits) * factor (factor = satiation_factor); overwrites ``logits``."""
    out = np.exp(np.negative(logits, out=logits), out=logits)
    out += 1.0
    return np.divide(factor, out, out=out)


def satiation_decay(half_life: float, visits: np.ndarray | float = 1.0) -> np.ndarray | float:
    """Factor that satiation keeps after ``visits`` visits: 2 ** (-visits / half_life)."""
    return np.exp2(-np.asarray(visits, dtype=np.float64) / half_life)


def drift_step(drift: np.ndarray, elapsed_days: np.ndarray, sd: float, days: float,
               noise: np.ndarray) -> np.ndarray:
    """Ornstein-Uhlenbeck taste drift after ``elapsed_days`` (per row), exact for any step.

    x(t + dt) = x(t) e^(-dt/tau) + sd * sqrt(1 - e^(-2 dt/tau)) * N(0, 1), stationary N(0, sd^2)
    (Uhlenbeck & Ornstein 1930). ``noise`` is the standard normal draw, shaped like ``drift``.
    """
    keep = np.exp(-np.asarray(elapsed_days, dtype=np.float64) / days)[:, None]
    return (drift * keep + sd * np.sqrt(1.0 - keep**2) * noise).astype(drift.dtype)

