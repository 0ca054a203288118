"""The neighbours view's job: the data-set images nearest to the clicked one in a layer's feature space."""
from __future__ import annotations

import numpy as np
import torch

from compute import activations, embedding
from compute.errors import UserError
from compute.jobs import variants
from compute.jobs.extraction import extract_on_cluster
from compute.jobs.workspace import Workspace
from compute.neighbours import nearest
from compute.progress import scaled

MAX_NEIGHBOURS = 200


def nearest_job(workspace: Workspace, progress, index: int, layer: str, features: str = "auto", k: int = 12,
                variant: dict | None = None, epoch: int | None = None) -> dict:
    """The ``k`` data-set images nearest to image ``index`` (or its ``variant``: an upload, an adversarial image) in
    ``layer``'s feature space as the scatter uses it (``features``: auto / flat / pooled, as ``explore.scatter``).

    Returns ``indices`` (k,) int64 nearest first (the image itself left out), ``distances`` (k,) float32,
    ``labels`` (k,) int64, ``mode`` and ``dimensions`` of the space searched; ``label`` the image's own class (None
    for a variant) and ``image`` (C, H, W) the variant's image (None for a data-set image).
    """
    if not 1 <= int(k) <= MAX_NEIGHBOURS:
        raise UserError(f"k = {k}: ask for 1 to {MAX_NEIGHBOURS} neighbours")
    dataset = workspace.dataset
    image = variants.image(workspace, index, variant, progress)
    with workspace.lock:
        model = workspace.model(epoch, progress=scaled(progress, 0.0, 0.1))
        shape = activations.single(model, image, [layer])[layer].shape
        mode = embedding.feature_mode(tuple(shape), features)
        extract_on_cluster(workspace, model, layer, mode, scaled(progress, 0.1, 0.9), epoch)  # several workers: all
        reduction, reduced = embedding.layer_reduction(model, dataset, layer, mode, progress=scaled(progress, 0.1, 0.9))
        if variant:
            vector = embedding.features_of(model, image[None], layer, mode)
            query = reduction.transform(vector).astype(np.float32) if reduction is not None else vector
            exclude = None
        else:
            query, exclude = reduced[int(index)][None], np.array([int(index)])
    progress(0.9, "searching the nearest neighbours")
    indices, distances = nearest(reduced, query, int(k), exclude=exclude)
    return {"index": int(index), "indices": indices[0], "distances": distances[0],
            "labels": dataset.labels[torch.as_tensor(indices[0])].numpy(), "mode": mode,
            "dimensions": int(reduced.shape[1]),
            # A derived image has no thumbnail of its own: it travels with the answer. A data-set image has a label.
            "image": image.float().cpu().numpy() if variant else None,
            "label": None if variant else int(dataset.labels[int(index)])}


JOBS = {"neighbours.nearest": nearest_job}
