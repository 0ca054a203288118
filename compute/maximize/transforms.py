"""Transforms (random, differentiable, applied before the model each step) and regularizers.

Transforms make the image work under small shifts, scalings and rotations, so the optimiser cannot exploit
single-pixel patterns (Lucent's ``transform.py``). ``draw()`` returns one uniform number in [0, 1) per image,
(n,), taken from that image's own random stream. The render loop pads, resamples once through the product of the
geometric transforms' matrices, and crops back to the model's input size.

Regularizers come in two kinds (Yosinski et al. 2015 and total variation):
- ``penalty``: ``fn(images, center) -> (n,)``, weighted and subtracted from the objective (differentiable);
- ``projection``: ``fn(images, gradient, step, center, **params) -> images``, applied to the image after each
  optimiser step (decay, blur every few steps, clipping of small-norm and small-contribution pixels).
Images are (n, C, H, W) in [0, 1]; ``center`` (C, 1, 1) is the "zero" of the data (its mean colour).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from compute.specs.maximize import REGULARIZERS, TRANSFORMS, suggested_transforms  # noqa: F401  (the tables)

Draw = Callable[[], torch.Tensor]


def pad(images: torch.Tensor, pixels: int = 2, center: torch.Tensor | None = None) -> torch.Tensor:
    """Pad each side by ``pixels`` with the data's mean colour (Lucent's pad): room to move before the crop back."""
    if pixels <= 0:
        return images
    fill = 0.0 if center is None else center
    return F.pad(images - fill, (pixels,) * 4) + fill


# The geometric transforms each return one 3x3 matrix per image, (n, 3, 3), in normalised coordinates (the image
# spans -1..1) mapping output positions to where they sample; the render loop multiplies them and resamples once,
# so three transforms cost one interpolation (and blur the image once, not three times).

def _matrices(draw: Draw, like: torch.Tensor) -> torch.Tensor:
    count = len(draw())
    return torch.eye(3, dtype=like.dtype, device=like.device).repeat(count, 1, 1)


def jitter(draw: Draw, like: torch.Tensor, height: int, width: int, pixels: int = 1) -> torch.Tensor:
    """Shift by a whole number of pixels in [-pixels, pixels] on each axis."""
    matrices = _matrices(draw, like)
    for row, size in ((0, width), (1, height)):
        shift = torch.floor(draw() * (2 * pixels + 1)) - pixels
        matrices[:, row, 2] = 2 * shift / size
    return matrices


def scale(draw: Draw, like: torch.Tensor, height: int, width: int, amount: float = 0.05) -> torch.Tensor:
    """Zoom by a factor in [1 - amount, 1 + amount] about the centre."""
    matrices = _matrices(draw, like)
    factors = 1 + amount * (2 * draw() - 1)
    matrices[:, 0, 0] = 1 / factors
    matrices[:, 1, 1] = 1 / factors
    return matrices


def rotate(draw: Draw, like: torch.Tensor, height: int, width: int, degrees: float = 5.0) -> torch.Tensor:
    """Rotate by an angle in [-degrees, degrees] about the centre (corrected for a non-square image's aspect)."""
    matrices = _matrices(draw, like)
    angles = math.radians(degrees) * (2 * draw() - 1)
    cos, sin = torch.cos(angles), torch.sin(angles)
    aspect = width / height
    matrices[:, 0, 0], matrices[:, 0, 1] = cos, -sin / aspect
    matrices[:, 1, 0], matrices[:, 1, 1] = sin * aspect, cos
    return matrices


def resample(images: torch.Tensor, matrices: torch.Tensor, center: torch.Tensor | float = 0.0) -> torch.Tensor:
    """Each image resampled (bilinear) through its own matrix (n, 3, 3); what comes from outside is the mean colour."""
    grid = F.affine_grid(matrices[:, :2, :], list(images.shape), align_corners=False)
    return F.grid_sample(images - center, grid, mode="bilinear", padding_mode="zeros", align_corners=False) + center


def center_crop(images: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """The central ``height`` x ``width`` of each image (the model's input size after padding)."""
    top, left = (images.shape[2] - height) // 2, (images.shape[3] - width) // 2
    return images[:, :, top : top + height, left : left + width]


# ------------------------------------------------------------------------------------------------ regularizers

def total_variation(images: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels, (n,): high for noise, low for smooth images."""
    dy = (images[:, :, 1:, :] - images[:, :, :-1, :]).abs().mean(dim=(1, 2, 3))
    dx = (images[:, :, :, 1:] - images[:, :, :, :-1]).abs().mean(dim=(1, 2, 3))
    return dx + dy


def l2_penalty(images: torch.Tensor, center: torch.Tensor) -> torch.Tensor:
    """Mean squared distance from the mean colour, (n,)."""
    return ((images - center) ** 2).mean(dim=(1, 2, 3))


def decay(images, gradient, step, center, strength: float = 0.01) -> torch.Tensor:
    """Yosinski's L2 decay: move every pixel a fraction ``strength`` of the way back to the mean colour."""
    return center + (1 - strength) * (images - center)


def gaussian_blur(images: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of each channel (kernel radius 3 sigma, reflected edges)."""
    # Reflect padding needs a radius below the image size.
    radius = min(max(1, math.ceil(3 * sigma)), images.shape[2] - 1, images.shape[3] - 1)
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    kernel = kernel / kernel.sum()
    channels = images.shape[1]
    padded = F.pad(images, (radius, radius, radius, radius), mode="reflect")
    rows = F.conv2d(padded, kernel.view(1, 1, 1, -1).expand(channels, 1, 1, -1), groups=channels)
    return F.conv2d(rows, kernel.view(1, 1, -1, 1).expand(channels, 1, -1, 1), groups=channels)


def blur(images, gradient, step, center, every: int = 4, sigma: float = 0.5) -> torch.Tensor:
    """Yosinski's Gaussian blur every ``every`` steps: removes the high frequencies the gradient keeps adding."""
    if sigma <= 0 or every <= 0 or (step + 1) % every:
        return images
    return gaussian_blur(images, sigma)


def _below_percentile(values: torch.Tensor, percentile: float) -> torch.Tensor:
    """(n, H, W) bool: pixels whose value is below the ``percentile``-th percentile of their own image."""
    threshold = torch.quantile(values.flatten(1), percentile / 100.0, dim=1)
    return values < threshold[:, None, None]


def clip_small_norm(images, gradient, step, center, percentile: float = 10.0) -> torch.Tensor:
    """Yosinski's norm clipping: pixels whose colour is nearest the mean (lowest norm) are set to the mean."""
    if percentile <= 0:
        return images
    norms = (images - center).norm(dim=1)
    return torch.where(_below_percentile(norms, percentile)[:, None], center.expand_as(images), images)


def clip_small_contribution(images, gradient, step, center, percentile: float = 10.0) -> torch.Tensor:
    """Yosinski's contribution clipping: |sum over channels of (pixel - mean) * gradient| estimates how much the
    objective would change if the pixel became the mean colour; the pixels that matter least are set to it."""
    if percentile <= 0 or gradient is None:
        return images
    contribution = ((images - center) * gradient).sum(dim=1).abs()
    return torch.where(_below_percentile(contribution, percentile)[:, None], center.expand_as(images), images)


