"""Small pictures of data-set images for the page: thumbnails, and what a selection of images is (labels, files).

The web server holds no data set: it asks these jobs for pixels and encodes them as PNG itself
(``dashboard/thumbnails.py``). Thumbnails are the images as they are shown, un-normalised (the data's [0, 1] range
scaled to 0..255), resized with antialiasing so that the longer side is ``size`` pixels.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from compute.workspace import job

MIN_SIZE, MAX_SIZE = 16, 256


def clamp_size(size: int) -> int:
    """A thumbnail's longer side, clamped to MIN_SIZE..MAX_SIZE pixels."""
    return max(MIN_SIZE, min(MAX_SIZE, int(size)))


def thumbnail_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) of an image of ``height`` x ``width`` shrunk or grown so that its longer side is ``size``."""
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))


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


def _checked(indices: Sequence[int], count: int) -> list[int]:
    chosen = [int(i) for i in indices]
    wrong = [i for i in chosen if not 0 <= i < count]
    if wrong:
        raise IndexError(f"sample {wrong[0]} is out of range: the data set has {count} images")
    return chosen


@job("images.thumbnails")
def thumbnails(workspace, progress, indices: Sequence[int], size: int = 64) -> dict:
    """Data-set images ``indices`` as thumbnails: ``images`` (N, h, w, C) uint8 with the longer side ``size`` (clamped
    to 16..256), ``indices`` (N,) int64 in the order asked."""
    dataset = workspace.dataset
    chosen = _checked(indices, len(dataset))
    progress(0.0, f"reading {len(chosen)} images")
    images = dataset.images[chosen] if chosen else torch.zeros((0, *dataset.image_shape))
    return {"indices": np.asarray(chosen, dtype=np.int64), "images": to_uint8(resize(images, clamp_size(size)))}


def sample_names(dataset, indices: Sequence[int]) -> list[str]:
    """What identifies each image outside the app: its file path for an image folder (absolute), else
    ``<data set>#<index>`` (the digits have no files)."""
    paths = getattr(dataset.images, "paths", None)
    if paths is not None:
        return [str(paths[int(i)]) for i in indices]
    return [f"{dataset.name}#{int(i)}" for i in indices]


@job("images.selection")
def selection(workspace, progress, indices: Sequence[int]) -> dict:
    """What a set of selected images is: ``indices`` and ``labels`` (N,) int64, and ``names`` (file paths, or
    ``digits#<index>``), in the order asked."""
    dataset = workspace.dataset
    chosen = _checked(indices, len(dataset))
    index = torch.as_tensor(chosen, dtype=torch.int64)
    return {"indices": index.numpy(), "labels": dataset.labels[index].numpy() if chosen else np.zeros(0, np.int64),
            "names": sample_names(dataset, chosen)}
