"""Nearest neighbours in a layer's feature space (the space the scatter embeds, not its 2-D layout).

The features are those the scatter is fitted on (``compute.embedding.layer_features``: the layer's activations,
flattened or channel-averaged, PCA-reduced to <= 50 dimensions), so "near" means near to the model, and an image
that is not in the data set (an upload, an adversarial example) is projected by the same fitted PCA (the job is
``neighbours.nearest`` in :mod:`compute.jobs.neighbours`).
"""
from __future__ import annotations

import numpy as np


def nearest(features, query, k: int, exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``features`` closest to each row of ``query`` in Euclidean distance: scikit-learn's exact
    brute-force search (``NearestNeighbors(algorithm="brute")``, chunked to its working memory), in float64 (the
    ``|a|^2 - 2ab + |b|^2`` it computes cancels badly in float32 for near points).

    features: (N, D); query: (Q, D) (or (D,) for one); exclude: (Q,) a row index of ``features`` to leave out for
    each query (the query's own row), or -1 for none. Returns (indices (Q, k) int64, distances (Q, k) float32),
    nearest first; equal distances list the smaller index first (among those found: a tie at the k-th place may
    keep either).
    """
    from sklearn.neighbors import NearestNeighbors  # loaded already where openTSNE ran; a notebook pays on first use
    from threadpoolctl import threadpool_limits  # installed with scikit-learn

    features = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    query = np.asarray(query, dtype=np.float64)
    query = (query[None] if query.ndim == 1 else query).reshape(-1, features.shape[1])
    k = max(0, min(int(k), len(features) - (0 if exclude is None else 1)))
    if k == 0:
        return np.zeros((len(query), 0), np.int64), np.zeros((len(query), 0), np.float32)
    extra = 0 if exclude is None else 1  # one more, so the query's own row can be dropped
    # One OpenMP thread (a per-thread setting: other jobs keep theirs): a click's search is milliseconds of work, and
    # scikit-learn's thread team made it 5x slower on a busy machine (245 ms against 47 ms at 50,000 x 50; the
    # nearest_* rows of bench.layer_switch).
    with threadpool_limits(1, user_api="openmp"):
        distances, indices = NearestNeighbors(n_neighbors=k + extra, algorithm="brute").fit(features).kneighbors(query)
    if exclude is not None:
        own = indices == np.asarray(exclude, dtype=np.int64).reshape(-1, 1)
        # Drop the own row, or the farthest where the own row is not among them (more exact duplicates than k).
        dropped = np.where(own.any(axis=1), own.argmax(axis=1), k)
        kept = np.arange(k + 1)[None] != dropped[:, None]
        indices, distances = indices[kept].reshape(-1, k), distances[kept].reshape(-1, k)
    order = np.lexsort((indices, distances), axis=1)  # by distance, then by index
    return (np.take_along_axis(indices, order, 1).astype(np.int64),
            np.take_along_axis(distances, order, 1).astype(np.float32))
