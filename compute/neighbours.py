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
import torch

from compute.cache import memoize
from compute.progress import Progress



def nearest(features, query, k: int, batch_size: int = 8192, device: torch.device | str | None = None,
            exclude: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The ``k`` rows of ``features`` closest to each row of ``query`` in Euclidean distance.

    features: (N, D); query: (Q, D) (or (D,) for one); exclude: (Q,) a row index of ``features`` to leave out for
    each query (the query's own row), or -1 for none. The data set is scanned in batches of ``batch_size`` rows on
    ``device`` (default: CPU), keeping a running top-k, so memory is O(Q * (batch_size + k)) whatever N.
    Returns (indices (Q, k) int64, distances (Q, k) float32), nearest first; equal distances list the smaller index
    first (among those kept: a tie at the k-th place inside one batch may keep either).
    """
    device = torch.device(device or "cpu")
    features = torch.as_tensor(np.asarray(features, dtype=np.float32)).reshape(len(features), -1)
    query = torch.as_tensor(np.asarray(query, dtype=np.float32))
    query = query[None] if query.ndim == 1 else query
    query = query.reshape(len(query), -1).to(device)
    k = max(0, min(int(k), len(features) - (0 if exclude is None else 1)))
    excluded = None if exclude is None else torch.as_tensor(np.asarray(exclude), dtype=torch.int64).to(device)
    # Float64 for the squared distances: ||a||^2 - 2ab + ||b||^2 cancels badly in float32 for near points
    # (Apple's MPS has no float64: float32 there).
    precise = torch.float32 if device.type == "mps" else torch.float64
    best_distances = torch.full((len(query), 0), float("inf"), device=device, dtype=precise)
    best_indices = torch.zeros((len(query), 0), dtype=torch.int64, device=device)
    query64 = query.to(precise)
    query_norms = (query64 ** 2).sum(1, keepdim=True)
    for start in range(0, len(features), batch_size):
        batch = features[start:start + batch_size].to(device, precise)
        squared = query_norms - 2.0 * query64 @ batch.T + (batch ** 2).sum(1)[None]
        indices = torch.arange(start, start + len(batch), device=device).expand(len(query), -1)
        if excluded is not None:
            squared = squared.masked_fill(indices == excluded[:, None], float("inf"))
        # The batch's k best only (a partial selection, not a sort of the whole batch), merged with the running k.
        batch_best, position = torch.topk(squared.clamp_min(0.0), min(k, len(batch)), dim=1, largest=False)
        candidates = torch.cat([best_distances, batch_best], 1)
        candidate_indices = torch.cat([best_indices, torch.gather(indices, 1, position)], 1)
        # Sorted by index, then stably by distance: equal distances keep the smaller index first.
        by_index = torch.argsort(candidate_indices, dim=1)
        candidates = torch.gather(candidates, 1, by_index)
        candidate_indices = torch.gather(candidate_indices, 1, by_index)
        order = torch.sort(candidates, dim=1, stable=True).indices[:, :k]
        best_distances = torch.gather(candidates, 1, order)
        best_indices = torch.gather(candidate_indices, 1, order)
    return best_indices.cpu().numpy(), best_distances.sqrt().float().cpu().numpy()


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


def own_nearest_distances(features, sample: int = OWN_DISTANCE_SAMPLE, seed: int = 0,
                          device: torch.device | str | None = None) -> np.ndarray:
    """Each data row's distance to its nearest other row, ``(S,)`` float32: for every row when there are at most
    ``sample`` of them, else for ``sample`` rows drawn at random (``seed``), each against all rows."""
    features = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    if len(features) < 2:
        raise ValueError("a data set of fewer than two images has no nearest-neighbour distances")
    rows = np.arange(len(features))
    if len(rows) > sample:
        rows = np.sort(np.random.default_rng(seed).choice(len(features), sample, replace=False))
    _, distances = nearest(features, features[rows], 1, device=device, exclude=rows)
    return distances[:, 0]


def novelty(features, query, own: np.ndarray, device: torch.device | str | None = None) -> Novelty:
    """:class:`Novelty` of one ``query`` row (D,) against ``features`` (N, D), whose own nearest-neighbour
    distances are ``own`` (from :func:`own_nearest_distances`)."""
    indices, distances = nearest(features, np.asarray(query, dtype=np.float32).reshape(1, -1), 1, device=device)
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
