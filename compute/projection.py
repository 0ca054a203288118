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


STREAM_CHUNK_ROWS = 65_536  # rows read at a time by the streamed PCA: 16 MB of a 64-wide float32 file
STREAMED_MAX_WIDTH = 4096  # its (D, D) float64 scatter matrix is 128 MB here; wider data take the randomized SVD


def _chunks(count: int, chunk_rows: int):
    for start in range(0, count, chunk_rows):
        yield start, min(count, start + chunk_rows)


def streamed_pca(features, dims: int, chunk_rows: int = STREAM_CHUNK_ROWS, progress=None) -> Projection:
    """The exact top ``dims`` principal components of ``features`` (N, D) — a memory-mapped file, say — in one pass
    over its rows, ``chunk_rows`` at a time: never more than one chunk (and a (D, D) matrix) in memory.

    Each chunk's mean and centred scatter matrix are merged into the running ones (Chan, Golub and LeVeque's
    pairwise update, in float64): no raw sums of squares, so a large common offset (ReLU features all positive)
    costs no precision. The components are the eigenvectors of the covariance, signed as :func:`exact_pca`'s.
    ``progress(fraction, text)`` is called after each chunk (it may raise to cancel).
    """
    count, width = len(features), int(np.prod(features.shape[1:]))
    mean = np.zeros(width)
    scatter = np.zeros((width, width))
    seen = 0
    for start, end in _chunks(count, chunk_rows):
        chunk = np.asarray(features[start:end], dtype=np.float64).reshape(end - start, width)
        chunk_mean = chunk.mean(axis=0)
        centred = chunk - chunk_mean
        delta = chunk_mean - mean
        total = seen + len(chunk)
        scatter += centred.T @ centred + np.outer(delta, delta) * (seen * len(chunk) / total)
        mean += delta * (len(chunk) / total)
        seen = total
        if progress:
            progress(seen / count, f"PCA: {seen:,}/{count:,} rows read")
    variance, vectors = np.linalg.eigh(scatter / max(count - 1, 1))  # ascending
    kept = min(dims, width)
    components = np.zeros((dims, width))
    components[:kept] = _largest_entry_positive(vectors[:, ::-1][:, :kept].T)
    explained = np.zeros(dims)
    explained[:kept] = np.maximum(variance[::-1][:kept], 0.0)
    return Projection(mean.astype(np.float32), components.astype(np.float32), explained.astype(np.float32))


def project_in_chunks(projection: Projection, features, chunk_rows: int = STREAM_CHUNK_ROWS,
                      progress=None) -> np.ndarray:
    """``projection.transform`` of ``features`` (N, D) read ``chunk_rows`` at a time: (N, k) float32, the only
    array of N rows held in memory."""
    count = len(features)
    projected = np.empty((count, len(projection.components)), dtype=np.float32)
    for start, end in _chunks(count, chunk_rows):
        projected[start:end] = projection.transform(features[start:end])
        if progress:
            progress(end / count, f"projecting: {end:,}/{count:,} rows")
    return projected
