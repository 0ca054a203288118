"""How sure a ranking over a sample of images is: bootstrap intervals of each method's mean, and how often each
method comes first when the images are drawn again.

Values are ``(n_images, n_methods)`` arrays of one score per image and method (an area under a curve, a rank
correlation). The images are resampled with replacement, all methods together (the scores of one image go
together), ``resamples`` times from a seeded generator, so the same sample gives the same intervals.
"""
from __future__ import annotations

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


def resampled_means(values: np.ndarray, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """``(resamples, n_methods)`` means of the columns of ``values (n, M)`` over images drawn with replacement."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2 or values.shape[0] == 0:
        raise ValueError(f"expected values of shape (n_images >= 1, n_methods), got {values.shape}")
    draws = np.random.default_rng(seed).integers(0, values.shape[0], size=(resamples, values.shape[0]))
    return values[draws].mean(axis=1)


def mean_interval(values: np.ndarray, resamples: int = RESAMPLES, seed: int = 0,
                  level: float = LEVEL) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each column's mean and its percentile-bootstrap interval at ``level``: ``(mean, low, high)``, each (M,)."""
    means = resampled_means(values, resamples, seed)
    tail = (1 - level) / 2
    return (np.asarray(values, dtype=np.float64).mean(axis=0), np.quantile(means, tail, axis=0),
            np.quantile(means, 1 - tail, axis=0))


def first_share(values: np.ndarray, higher_is_better: bool, resamples: int = RESAMPLES, seed: int = 0) -> np.ndarray:
    """``(M,)`` the share of resamples in which each column has the best mean (ties share the win): how sure it is
    that a method comes first on the population the images were drawn from, not only on this sample."""
    means = resampled_means(values, resamples, seed)
    best = means.max(axis=1, keepdims=True) if higher_is_better else means.min(axis=1, keepdims=True)
    winners = means == best
    return (winners / winners.sum(axis=1, keepdims=True)).mean(axis=0)


def ranks(means: np.ndarray, higher_is_better: bool) -> np.ndarray:
    """``(M,)`` 1 for the best mean, 2 for the next, ... (ties by position)."""
    order = np.argsort(-np.asarray(means) if higher_is_better else np.asarray(means), kind="stable")
    positions = np.empty(len(order), dtype=np.int64)
    positions[order] = np.arange(1, len(order) + 1)
    return positions
