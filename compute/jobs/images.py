"""Small pictures of data-set images for the page (thumbnails) and what a selection of images is (labels, files)."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from compute.images import checked, resize, sample_names, to_uint8
from compute.jobs.workspace import Workspace
from compute.specs.images import clamp_size


def thumbnails(workspace: Workspace, progress, indices: Sequence[int], size: int = 64) -> dict:
    """Data-set images ``indices`` as thumbnails: ``images`` (N, h, w, C) uint8 with the longer side ``size`` (clamped
    to 16..256), ``indices`` (N,) int64 in the order asked."""
    dataset = workspace.dataset
    chosen = checked(indices, len(dataset))
    progress(0.0, f"reading {len(chosen)} images")
    images = dataset.images[chosen] if chosen else torch.zeros((0, *dataset.image_shape))
    return {"indices": np.asarray(chosen, dtype=np.int64), "images": to_uint8(resize(images, clamp_size(size)))}


def selection(workspace: Workspace, progress, indices: Sequence[int]) -> dict:
    """What a set of selected images is: ``indices`` and ``labels`` (N,) int64, and ``names`` (file paths, or
    ``digits#<index>``), in the order asked."""
    dataset = workspace.dataset
    chosen = checked(indices, len(dataset))
    index = torch.as_tensor(chosen, dtype=torch.int64)
    return {"indices": index.numpy(), "labels": dataset.labels[index].numpy() if chosen else np.zeros(0, np.int64),
            "names": sample_names(dataset, chosen)}


JOBS = {"images.thumbnails": thumbnails, "images.selection": selection}
