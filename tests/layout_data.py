"""Generated class-clustered features for the layout tests and bench/layouts.py: a Gaussian mixture on a curved
low-dimensional manifold, so that t-SNE/UMAP have local structure to keep and classes that touch (a kNN accuracy
below 1 that can drop when placement is poor)."""
from __future__ import annotations

import numpy as np


def curved_clusters(count: int, dims: int = 64, classes: int = 10, spread: float = 0.7,
                    seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(features (count, dims) float32, labels (count,) int64).

    Each class is a Gaussian (std ``spread``) around a centre in a 3-D latent space, the centres placed along a
    helix so that neighbouring classes touch; the latent points go through a random tanh layer to ``dims`` values
    (a curved 3-D manifold in ``dims`` dimensions) plus a little isotropic noise.
    """
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, classes, size=count)
    angle = np.linspace(0.0, 3.0 * np.pi, classes)
    centres = np.stack([np.cos(angle), np.sin(angle), np.linspace(-1.0, 1.0, classes)], axis=1) * 2.0
    latent = centres[labels] + spread * rng.normal(size=(count, 3))
    hidden = np.tanh(latent @ rng.normal(size=(3, 32)) * 0.7 + rng.normal(size=32) * 0.3)
    features = hidden @ rng.normal(size=(32, dims)) + 0.05 * rng.normal(size=(count, dims))
    return features.astype(np.float32), labels
