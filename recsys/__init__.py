"""Serendip's domain core: data, simulator, text, model, policies, off-policy evaluation, metrics.

Nothing in this package imports Ray; the Ray layers (training, tuning, serving) are thin shells around it.
"""
