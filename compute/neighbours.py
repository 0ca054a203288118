"""Nearest neighbours in a layer's feature space (the space the scatter embeds, not its 2-D layout).

The features are those the scatter is fitted on (``compute.embedding.layer_features``: the layer's activations,
flattened or channel-averaged, PCA-reduced to <= 50 dimensions), so "near" means near to the model, and an image
that is not in the data set (an upload, an adversarial example) is projected by the same fitted PCA (the job is
``neighbours.nearest`` in :mod:`compute.jobs.neighbours`).
"""
from __future__ import annotations

import numpy as np
import torch



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
