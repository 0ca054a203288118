"""The mean colour of a data set, per channel: occlusion's "data mean" fill and activation maximization's centre.

Data sets held in memory know it from loading (``Dataset.channel_mean``: the digits, the stored torchvision sets).
An image folder does not: its images are decoded lazily, and its mean costs a decoding pass. So it is computed on
first use, streamed through the parallel decoder the feature extraction uses
(:func:`compute.extraction.folder_batches`: a batch of uint8 images in memory at a time), and cached by the folder's
fingerprint (file names, sizes and times, and the image size), so a changed folder is measured again.

Up to :data:`MEAN_SAMPLE` images every image counts; a larger folder is measured on a seeded uniform sample of that
many images, across all classes. The standard error of a per-channel mean over 4,096 images is the spread of the
images' mean colours (about 0.15 in [0, 1] for photos) / 64, about 0.002: half of one 8-bit grey level (0.004), so
the fill and the centre are the same colours as with every image counted, at 4,096 decodes instead of, say, the
50,000 of ImageNet's validation set.
"""
from __future__ import annotations

import numpy as np
import torch

from compute.cache import memoize
from compute.data import FolderImages
from compute.extraction import decode_workers, folder_batches
from compute.progress import Progress

MEAN_SAMPLE = 4096
MEAN_BATCH = 64


def sample_indices(count: int, limit: int = MEAN_SAMPLE, seed: int = 0) -> np.ndarray:
    """The images a mean is taken over: all ``count`` up to ``limit``, else ``limit`` distinct indices drawn uniformly
    with ``seed``; sorted, int64."""
    if count <= limit:
        return np.arange(count, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(count, size=limit, replace=False)).astype(np.int64)


def data_mean(dataset, progress: Progress | None = None) -> tuple[float, ...]:
    """Per-channel mean in [0, 1] of ``dataset``'s images as the model sees them (resized and cropped): the
    stored ``channel_mean``, or for an image folder :func:`folder_mean` (computed once, then cached)."""
    if isinstance(dataset.images, FolderImages):
        return folder_mean(dataset, progress=progress)
    return tuple(float(v) for v in dataset.channel_mean)


@memoize
def folder_mean(dataset, limit: int = MEAN_SAMPLE, seed: int = 0, progress: Progress | None = None) -> tuple[float, ...]:
    """Per-channel mean of an image folder's images (:func:`sample_indices` of them), streamed in uint8 batches
    decoded in parallel; files unreadable since the folder was loaded are left out. Cached by the folder's
    fingerprint."""
    images: FolderImages = dataset.images
    chosen = sample_indices(len(images), limit, seed)
    subset = FolderImages([images.paths[int(i)] for i in chosen], images.size, images.root, images.resize)
    totals = torch.zeros(subset.shape[1], dtype=torch.float64)
    counted = done = 0
    for _indices, pixels, readable in folder_batches(subset, 0, MEAN_BATCH, min(decode_workers(), len(subset))):
        kept = pixels[readable]
        totals += kept.sum(dim=(0, 2, 3), dtype=torch.float64)
        counted += len(kept)
        done += len(pixels)
        if progress is not None:
            progress(done / len(subset), f"mean colour of the folder: {done:,}/{len(subset):,} images")
    if counted == 0:
        raise ValueError(f"no readable image left in {images.root}: reload the folder")
    return tuple((totals / (counted * subset.shape[2] * subset.shape[3]) / 255.0).tolist())
