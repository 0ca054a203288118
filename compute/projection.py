"""PCA to a few dozen dimensions by randomized SVD in torch: the pre-reduction before every 2-D embedding; and the
exact PCA (a full SVD in numpy) of the few dimensions left, for the 2-D PCA layout.

scikit-learn's randomized PCA took 1.5 s for the digits CNN's first conv layer (1,797 x 16,384 floats) on two
cores, most of the wait before a new layer's first scatter; the same algorithm (Halko, Martinsson and Tropp 2011,
as ``sklearn.utils.extmath.randomized_svd``) in torch takes a quarter of that, on the compute process's own threads.
The data are centred implicitly (``X @ G - mean @ G``), so a large memory-mapped feature file is never copied.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

OVERSAMPLES = 10  # extra random directions: the top components converge faster (sklearn's default)
POWER_ITERATIONS = 4  # sklearn's "auto" for few components; enough for the leading 50 of a conv layer


@dataclass
class Projection:
    """A fitted linear projection: ``transform(features (M, D)) -> (M, k)``, as a fitted sklearn PCA's."""

    mean: np.ndarray  # (D,) float32
    components: np.ndarray  # (k, D) float32, orthonormal rows, by decreasing variance
    explained_variance: np.ndarray  # (k,) float32

    def transform(self, features) -> np.ndarray:
        features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
        return ((features - self.mean) @ self.components.T).astype(np.float32)


def _largest_entry_positive(components: np.ndarray) -> np.ndarray:
    """(k, D) components, each flipped where needed so that its largest entry (in absolute value) is positive: one
    sign convention for every PCA here, so the same data give the same picture, not a mirror image."""
    largest = np.abs(components).argmax(axis=1)
    flips = np.where(components[np.arange(len(components)), largest] < 0, -1, 1).astype(components.dtype)
    return components * flips[:, None]


def exact_pca(features, dims: int) -> tuple[Projection, np.ndarray]:
    """The top ``dims`` principal components of ``features`` (N, D) by a full SVD in numpy (float64), and the
    projected features (N, dims) float32: for narrow data (the <= 50 pre-reduced dimensions). Where the data have
    fewer than ``dims`` components (a layer with one value per image), the missing ones are zero."""
    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    mean = x.mean(axis=0)
    _, singular, rows = np.linalg.svd(x - mean, full_matrices=False)
    kept = min(dims, len(rows))
    components = np.zeros((dims, x.shape[1]))
    components[:kept] = _largest_entry_positive(rows[:kept])
    variance = np.zeros(dims)
    variance[:kept] = singular[:kept] ** 2 / max(len(x) - 1, 1)
    projection = Projection(mean.astype(np.float32), components.astype(np.float32), variance.astype(np.float32))
    return projection, ((x - mean) @ components.T).astype(np.float32)


def randomized_pca(features, dims: int, seed: int = 0) -> tuple[Projection, np.ndarray]:
    """The top ``dims`` principal components of ``features`` (N, D) and the projected features (N, dims) float32.

    Deterministic for a fixed ``seed``; each component's sign is fixed so its largest entry is positive.
    """
    x = torch.as_tensor(np.ascontiguousarray(features, dtype=np.float32).reshape(len(features), -1))
    count, width = x.shape
    mean = x.mean(dim=0)
    rank = min(dims + OVERSAMPLES, count, width)

    def times(matrix: torch.Tensor) -> torch.Tensor:  # centred X @ matrix
        return x @ matrix - mean @ matrix

    def transposed_times(matrix: torch.Tensor) -> torch.Tensor:  # centred X.T @ matrix
        return x.T @ matrix - torch.outer(mean, matrix.sum(dim=0))

    generator = torch.Generator().manual_seed(seed)
    sketch = times(torch.randn(width, rank, generator=generator))
    for _ in range(POWER_ITERATIONS):
        basis = torch.linalg.qr(sketch).Q
        sketch = times(torch.linalg.qr(transposed_times(basis)).Q)
    basis = torch.linalg.qr(sketch).Q  # (N, rank): spans the top of X's column space
    _u, singular, rows = torch.linalg.svd(transposed_times(basis).T, full_matrices=False)
    components = torch.from_numpy(np.ascontiguousarray(_largest_entry_positive(rows[:dims].numpy())))
    projection = Projection(mean.numpy(), components.numpy(), (singular[:dims] ** 2 / max(count - 1, 1)).numpy())
    return projection, times(components.T).contiguous().numpy()
