"""Placing many points into a 2-D layout fitted on a sample: each point goes where its nearest sampled neighbours are.

t-SNE and UMAP are fitted on a sample of ~10,000 points (their cost grows with N); the other points, up to a
million, are placed by a rule that costs one approximate nearest-neighbour query each (pynndescent, which
umap-learn brings): the kernel-weighted mean of the 2-D positions of its ``k`` nearest sampled points in the
(PCA-reduced) feature space. openTSNE's and UMAP's own ``transform`` optimise every new point against the layout,
which is better for one uploaded image but hundreds of times slower per point (bench/layouts.py).

The neighbours are found once; the placement is then a gather and a weighted sum for any layout of the sample, so
while t-SNE converges every point can be shown where the sample's current layout puts it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compute.progress import Progress

PLACEMENT_NEIGHBOURS = 10
QUERY_CHUNK_ROWS = 65_536  # points queried between two progress reports (a cancel is seen within one chunk)


@dataclass
class Neighbours:
    """Each placed point's ``k`` nearest sampled points: ``indices`` (M, k) int32 positions in the sample and
    ``weights`` (M, k) float32, each row summing to 1."""

    indices: np.ndarray
    weights: np.ndarray

    def place(self, sample_coordinates: np.ndarray) -> np.ndarray:
        """(M, 2) float32: each point at the weighted mean of its neighbours' rows of ``sample_coordinates`` (S, 2)."""
        coordinates = np.asarray(sample_coordinates, dtype=np.float32)
        return np.einsum("mk,mkd->md", self.weights, coordinates[self.indices]).astype(np.float32)


def kernel_weights(distances: np.ndarray) -> np.ndarray:
    """(M, k) distances to the k nearest sampled points, ascending -> (M, k) weights summing to 1 per row.

    A Gaussian kernel whose width is the distance to the nearest sampled point (as t-SNE and UMAP set a bandwidth
    per point from its own neighbourhood): neighbours much farther than the nearest weigh little, so a point whose
    ten neighbours straddle two clusters goes into the nearer cluster instead of the empty gap between them (an
    inverse-distance mean puts it in the gap). A point that is itself sampled (distance 0) lands exactly on it.
    """
    distances = np.asarray(distances, dtype=np.float64)
    nearest = distances[:, :1]
    width = np.where(nearest > 0, nearest, 1.0)
    weights = np.exp(-((distances ** 2 - nearest ** 2) / width ** 2))
    weights = np.where(nearest > 0, weights, (distances == 0).astype(np.float64))
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


def inverse_distance_weights(distances: np.ndarray) -> np.ndarray:
    """The plain rule the kernel is measured against: weights 1/d (a sampled point, d = 0, lands on itself)."""
    distances = np.asarray(distances, dtype=np.float64)
    exact = distances == 0
    weights = np.where(exact.any(axis=1, keepdims=True), exact, 1.0 / np.where(exact, 1.0, distances))
    return (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)


WEIGHTS = {"kernel": kernel_weights, "inverse_distance": inverse_distance_weights}


def sample_neighbours(sample_features: np.ndarray, features, k: int = PLACEMENT_NEIGHBOURS, seed: int = 0,
                      chunk_rows: int = QUERY_CHUNK_ROWS, progress: Progress | None = None,
                      rule: str = "kernel") -> Neighbours:
    """The ``k`` nearest rows of ``sample_features`` (S, D) for every row of ``features`` (M, D) (any array that
    slices, a memory map say, read ``chunk_rows`` at a time), with their placement weights.

    An approximate search (pynndescent's NN-descent graph on the sample, then its graph search per query);
    deterministic for a fixed ``seed``. ``progress(fraction, text)`` after each chunk; it may raise to cancel.
    """
    from pynndescent import NNDescent

    sample_features = np.ascontiguousarray(sample_features, dtype=np.float32)
    k = min(k, len(sample_features))
    index = NNDescent(sample_features, n_neighbors=max(15, k), random_state=seed)
    index.prepare()
    count = len(features)
    indices = np.empty((count, k), dtype=np.int32)
    weights = np.empty((count, k), dtype=np.float32)
    for start in range(0, count, chunk_rows):
        end = min(count, start + chunk_rows)
        chunk = np.ascontiguousarray(features[start:end], dtype=np.float32)
        found, distances = index.query(chunk, k=k)
        indices[start:end] = found
        weights[start:end] = WEIGHTS[rule](distances)
        if progress:
            progress(end / count, f"finding the nearest sampled points: {end:,}/{count:,}")
    return Neighbours(indices, weights)


QUALITY_HELD_OUT = 1000  # points per group the quality is measured on (trustworthiness is O(n^2) in them)
QUALITY_NEIGHBOURS = 10


def knn_accuracy(coordinates: np.ndarray, labels: np.ndarray, points: np.ndarray,
                 k: int = QUALITY_NEIGHBOURS) -> float:
    """The share of ``points`` (indices) whose class is the majority class of their ``k`` nearest other points in
    the 2-D layout ``coordinates`` (N, 2) (ties to the smallest class): what a reader sees as "its neighbours are
    its kind"."""
    from sklearn.neighbors import NearestNeighbors

    labels = np.asarray(labels)
    search = NearestNeighbors(n_neighbors=k + 1).fit(coordinates)
    found = search.kneighbors(coordinates[points], return_distance=False)
    others = np.array([row[row != point][:k] for row, point in zip(found, points)])
    votes = np.array([np.bincount(labels[row], minlength=labels.max() + 1).argmax() for row in others])
    return float(np.mean(votes == labels[points]))


def held_out_points(count: int, sample: np.ndarray, size: int = QUALITY_HELD_OUT, seed: int = 0):
    """(placed, fitted): up to ``size`` random indices of points placed (not in ``sample``) and of sampled points."""
    rng = np.random.default_rng(seed + 1)
    placed = np.setdiff1d(np.arange(count), sample)
    return (np.sort(rng.choice(placed, size=min(size, len(placed)), replace=False)),
            np.sort(rng.choice(sample, size=min(size, len(sample)), replace=False)))


def group_quality(features, coordinates: np.ndarray, points: np.ndarray, labels=None,
                  k: int = QUALITY_NEIGHBOURS) -> dict:
    """{"trustworthiness", and with ``labels`` "knn_accuracy"} of the layout at ``points`` (indices): trustworthiness
    (scikit-learn's, ``k`` neighbours) among those points between their features and their 2-D positions."""
    from sklearn.manifold import trustworthiness

    chosen = np.asarray(features[points], dtype=np.float32).reshape(len(points), -1)
    quality = {"trustworthiness": float(trustworthiness(chosen, coordinates[points], n_neighbors=k))}
    if labels is not None:
        quality["knn_accuracy"] = knn_accuracy(coordinates, labels, points, k)
    return quality


def layout_quality(features, coordinates: np.ndarray, sample: np.ndarray, labels=None,
                   size: int = QUALITY_HELD_OUT, k: int = QUALITY_NEIGHBOURS, seed: int = 0) -> dict:
    """How well placed points sit compared with fitted ones, in one layout: trustworthiness (and kNN accuracy in
    2-D with ``labels``) on ``size`` held-out placed points and on ``size`` sampled points. A flat dict of plain
    numbers for the page: ``{"held_out", "neighbours", "trustworthiness_placed", "trustworthiness_fitted",
    "knn_accuracy_placed", "knn_accuracy_fitted"}`` (the last two only with labels)."""
    placed, fitted = held_out_points(len(coordinates), sample, size, seed)
    if labels is not None and (len(labels) != len(coordinates) or np.min(labels) < 0):
        labels = None  # unlabelled images (-1): no class to agree with
    quality = {"held_out": int(len(placed)), "neighbours": int(k)}
    for name, points in (("placed", placed), ("fitted", fitted)):
        for measure, value in group_quality(features, coordinates, points, labels, k).items():
            quality[f"{measure}_{name}"] = value
    return quality
