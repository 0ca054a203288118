"""Small pictures of data-set images for the page: thumbnails, and what a selection of images is (labels, files).

The web server holds no data set: it asks the jobs of ``compute.jobs.images`` for pixels and encodes them as PNG itself
(``dashboard/thumbnails.py``). Thumbnails are the images as they are shown, un-normalised (the data's [0, 1] range
scaled to 0..255), resized with antialiasing so that the longer side is ``size`` pixels.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from compute.errors import UserError
from compute.specs.images import MAX_SIZE, MIN_SIZE, clamp_size, thumbnail_shape  # noqa: F401


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """(N, C, H, W) float in [0, 1] -> (N, H, W, C) uint8 (round to nearest grey level)."""
    scaled = (images.clamp(0.0, 1.0) * 255.0).round().to(torch.uint8)
    return scaled.permute(0, 2, 3, 1).contiguous().cpu().numpy()


def resize(images: torch.Tensor, size: int, batch_size: int = 256) -> torch.Tensor:
    """(N, C, H, W) float -> (N, C, h, w) with the longer side ``size``: bilinear, antialiased when shrinking
    (PIL's and torchvision's choice), in batches of ``batch_size``. The same size returns the images unchanged."""
    height, width = images.shape[-2:]
    shape = thumbnail_shape(height, width, size)
    if shape == (height, width):
        return images.float()
    parts = [F.interpolate(images[start:start + batch_size].float(), size=shape, mode="bilinear",
                           align_corners=False, antialias=True) for start in range(0, len(images), batch_size)]
    return torch.cat(parts) if parts else images.new_zeros((0, images.shape[1], *shape))


def checked(indices: Sequence[int], count: int) -> list[int]:
    chosen = [int(i) for i in indices]
    wrong = [i for i in chosen if not 0 <= i < count]
    if wrong:
        raise UserError(f"sample {wrong[0]} is out of range: the data set has {count} images")
    return chosen


def sample_names(dataset, indices: Sequence[int]) -> list[str]:
    """What identifies each image outside the app: its file path for an image folder (absolute), else
    ``<data set>#<index>`` (the digits have no files)."""
    paths = getattr(dataset.images, "paths", None)
    if paths is not None:
        return [str(paths[int(i)]) for i in indices]
    return [f"{dataset.name}#{int(i)}" for i in indices]
