"""Nearest neighbours in a layer's feature space (the space the scatter embeds, not its 2-D layout).

The features are those the scatter is fitted on (``compute.embedding.layer_features``: the layer's activations,
flattened or channel-averaged, PCA-reduced to <= 50 dimensions), so "near" means near to the model, and an image
that is not in the data set (an upload, an adversarial example) is projected by the same fitted PCA (the job is
``neighbours.nearest`` in :mod:`compute.jobs.neighbours`).

The same search says whether an image is like the data at all (:func:`novelty`): its distance to the nearest data
image against the data's own nearest-neighbour distances. An astronaut photo shrunk to a digit's 8x8 scan lies
farther from every digit than any digit lies from its nearest other digit; a new scan of a digit does not.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from compute.cache import memoize
from compute.progress import Progress


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


# ---------------------------------------------------------------------------------------------- novelty

OWN_DISTANCE_SAMPLE = 2000  # data images whose nearest-neighbour distance makes the reference (all below this)


@dataclass(frozen=True)
class Novelty:
    """How far an image lies from a data set in some feature space, against the data's own spacing.

    ``distance`` to its nearest data image ``nearest``; the data's own nearest-neighbour distances (each image to
    the nearest other one) have median ``typical`` and maximum ``largest``; ``share_closer`` of them are below
    ``distance``. ``unlike``: farther from every data image than the most isolated data image is from the rest.
    """

    distance: float
    nearest: int
    typical: float
    largest: float
    share_closer: float
    reference_size: int

    @property
    def unlike(self) -> bool:
        return self.distance > self.largest

    def as_dict(self) -> dict:
        return {**dataclasses.asdict(self), "unlike": self.unlike}


def own_nearest_distances(features, sample: int = OWN_DISTANCE_SAMPLE, seed: int = 0) -> np.ndarray:
    """Each data row's distance to its nearest other row, ``(S,)`` float32: for every row when there are at most
    ``sample`` of them, else for ``sample`` rows drawn at random (``seed``), each against all rows."""
    features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    if len(features) < 2:
        raise ValueError("a data set of fewer than two images has no nearest-neighbour distances")
    rows = np.arange(len(features))
    if len(rows) > sample:
        rows = np.sort(np.random.default_rng(seed).choice(len(features), sample, replace=False))
    _, distances = nearest(features, features[rows], 1, exclude=rows)
    return distances[:, 0]


def novelty(features, query, own: np.ndarray) -> Novelty:
    """:class:`Novelty` of one ``query`` row (D,) against ``features`` (N, D), whose own nearest-neighbour
    distances are ``own`` (from :func:`own_nearest_distances`)."""
    indices, distances = nearest(features, np.asarray(query, dtype=np.float32).reshape(1, -1), 1)
    distance, own = float(distances[0, 0]), np.asarray(own, dtype=np.float64)
    return Novelty(distance=distance, nearest=int(indices[0, 0]), typical=float(np.median(own)),
                   largest=float(own.max()), share_closer=float((own < distance).mean()), reference_size=len(own))


@memoize
def layer_own_distances(model, dataset, layer: str, mode: str, sample: int = OWN_DISTANCE_SAMPLE,
                        progress: Progress | None = None) -> np.ndarray:
    """:func:`own_nearest_distances` of the data set in ``layer``'s feature space as the scatter and the neighbours
    use it (``compute.embedding.layer_reduction``: the ``mode`` features, PCA-reduced), cached."""
    from compute.embedding import layer_reduction

    _, reduced = layer_reduction(model, dataset, layer, mode, progress=progress)
    return own_nearest_distances(reduced, sample)
