"""Channel statistics of a layer: per image (sparsity, silent channels) and over a whole data set (per channel the
share of its activations that are zero, the share of images it fires on, its mean; dead channels; the images that
activate each channel most).

Slide 4 of the course: "in good training, features are usually sparse" and "can find dead features that never
activate". Sparsity is counted per activation (every position of every image): a channel that fires somewhere on
every image can still be zero at most positions. The data-set statistics come from one streaming, batched pass:
per batch only the maxima, sums and counts per channel are kept, merged into running totals and a running top-k on
the model's device, so 50,000 images never have their maps in memory at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from torch import nn

from compute import activations
from compute.cache import memoize
from compute.device import activation_floats, batch_size_for, model_device
from compute.progress import Progress
from compute.rectifiers import is_rectifier

# The dead-channel table lists the rectifiers (compute.rectifiers): after them "never fires" is final. A conv layer
# right before a ReLU would repeat its ReLU's row, and before a BatchNorm its sign means nothing; rows of both cost a
# second pass each.


@dataclass(frozen=True)
class Sparsity:
    zero_fraction: float  # activations exactly zero (after a ReLU)
    nonpositive_fraction: float  # activations <= 0: what a ReLU would zero (differs before a ReLU)
    silent_channels: list[int]  # channels with no positive activation anywhere in this image
    channels: int


def sparsity(output: torch.Tensor) -> Sparsity:
    """Sparsity of one image's layer output: (C, h, w) for conv layers or (C,) for linear ones."""
    values = output.detach().float()
    per_channel = values.reshape(values.shape[0], -1) if values.ndim > 1 else values.reshape(-1, 1)
    silent = torch.nonzero(per_channel.max(dim=1).values <= 0).flatten().tolist()
    return Sparsity(
        zero_fraction=float((values == 0).float().mean()),
        nonpositive_fraction=float((values <= 0).float().mean()),
        silent_channels=silent,
        channels=int(per_channel.shape[0]),
    )


@dataclass(frozen=True)
class ChannelStats:
    """Statistics of one layer's C channels over N images. A channel *fires* on an image when its largest value
    there is > 0 (what passes a ReLU); it is *dead* when it fires on none."""

    layer: str
    count: int  # N, the images seen
    firing_rate: np.ndarray  # (C,) fraction of images on which the channel fires
    mean_activation: np.ndarray  # (C,) mean over images and positions
    zero_fraction: float  # share of the layer's values (all images, channels, positions) exactly 0
    dead: np.ndarray  # (C,) bool, fires on no image
    zero_share: np.ndarray  # (C,) share of the channel's activations (all images and positions) exactly 0
    inactive_share: np.ndarray  # (C,) share of them <= 0: what a ReLU zeroes (equal to zero_share after one)
    top_images: np.ndarray  # (k, C) int64: image indices by the channel's max, highest first (ties: lower index)
    top_values: np.ndarray  # (k, C) float32: those maxima

    @property
    def channels(self) -> int:
        return int(self.firing_rate.shape[0])

    @property
    def dead_channels(self) -> list[int]:
        return [int(c) for c in np.flatnonzero(self.dead)]


class _RunningStats:
    """One layer's running totals and top-k, kept on the device the maps are computed on (no sync per batch)."""

    def __init__(self, k: int):
        self.k = k
        self.count = 0
        self.positions = 1
        self.fired = self.sums = self.nonzero = self.positive = self.top_values = self.top_images = None

    def add(self, output: torch.Tensor, first_index: int) -> None:
        """Merge one batch: ``output`` (B, C, ...) of images ``first_index .. first_index + B - 1``."""
        values = output.detach().float()
        if values.ndim < 2:
            raise activations.LayerError(f"a layer output of shape {tuple(values.shape)} has no channels")
        values = values.reshape(values.shape[0], values.shape[1], -1)  # (B, C, positions)
        batch, channels, self.positions = values.shape
        device = values.device
        if self.fired is None:
            # float64 totals: float32 sums over 50,000 images x positions drift; MPS has no float64.
            total_dtype = torch.float32 if device.type == "mps" else torch.float64
            self.fired = torch.zeros(channels, dtype=torch.int64, device=device)
            self.sums = torch.zeros(channels, dtype=total_dtype, device=device)
            self.nonzero = torch.zeros(channels, dtype=torch.int64, device=device)
            self.positive = torch.zeros(channels, dtype=torch.int64, device=device)
            self.top_values = torch.empty((0, channels), device=device)
            self.top_images = torch.empty((0, channels), dtype=torch.int64, device=device)
        maxima = values.amax(dim=2)  # (B, C)
        self.fired += (maxima > 0).sum(dim=0)
        self.sums += values.sum(dim=2).to(self.sums.dtype).sum(dim=0)
        # Per image and channel along the contiguous positions, in int32 (a map has < 2^31 positions): the fastest of
        # the ways measured (count_nonzero over dims (0, 2) made the pass 2-3x slower; an int64 sum copies first).
        self.nonzero += (values != 0).sum(dim=2, dtype=torch.int32).sum(0, dtype=torch.int64)
        self.positive += (values > 0).sum(dim=2, dtype=torch.int32).sum(0, dtype=torch.int64)
        self.count += batch
        indices = torch.arange(first_index, first_index + batch, device=device)[:, None].expand(batch, channels)
        candidates = torch.cat([self.top_values, maxima])
        candidate_images = torch.cat([self.top_images, indices])
        # A stable sort over (kept, then this batch in index order) breaks ties by the lower image index, so the
        # result does not depend on the batch size (dead channels tie at 0 on every image).
        order = torch.sort(candidates, dim=0, descending=True, stable=True).indices[: self.k]
        self.top_values = candidates.gather(0, order)
        self.top_images = candidate_images.gather(0, order)

    def result(self, layer: str) -> ChannelStats:
        fired = self.fired.cpu().numpy()
        per_channel = self.count * self.positions  # activations of one channel over the data set
        nonzero = self.nonzero.cpu().numpy()
        return ChannelStats(
            layer=layer,
            count=self.count,
            firing_rate=(fired / self.count).astype(np.float64),
            mean_activation=(self.sums / per_channel).cpu().numpy().astype(np.float64),
            zero_fraction=1.0 - float(nonzero.sum()) / (per_channel * len(nonzero)),
            dead=fired == 0,
            zero_share=1.0 - nonzero / per_channel,
            inactive_share=1.0 - self.positive.cpu().numpy() / per_channel,
            top_images=self.top_images.cpu().numpy(),
            top_values=self.top_values.float().cpu().numpy(),
        )


def _image_tensor(images):
    """The images of a Dataset (which keys the cache by its cheap fingerprint), or ``images`` itself."""
    return images.images if hasattr(images, "images") and hasattr(images, "fingerprint") else images


def _stream(model: nn.Module, images, layers: list[str], k: int, batch_size: int | None,
            progress: Progress | None) -> dict[str, ChannelStats]:
    """One batched pass over ``images`` that stops after the last of ``layers``; statistics of each layer."""
    images = _image_tensor(images)
    count = len(images)
    if count == 0:
        raise ValueError("no images to compute channel statistics over")
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")
    for layer in layers:
        activations.module(model, layer)  # a bad name fails before any work
    device = model_device(model)
    if batch_size is None:
        batch_size = batch_size_for(device, activation_floats(model, tuple(images.shape[1:])))
    running = {layer: _RunningStats(k) for layer in layers}
    with torch.no_grad():
        for start in range(0, count, batch_size):
            batch = images[start : start + batch_size].to(device, non_blocking=True)
            outputs = activations.run_until(model, batch, list(layers))
            for layer in layers:
                running[layer].add(outputs[layer], start)
            if progress:
                stop = min(count, start + batch_size)
                progress(stop / count, f"channel statistics: {stop}/{count} images")
    return {layer: running[layer].result(layer) for layer in layers}


@memoize
def stats(model: nn.Module, images, layer: str, k: int = 9, batch_size: int | None = None,
          progress: Progress | None = None) -> ChannelStats:
    """Channel statistics of ``layer`` over ``images``, from one streaming pass (cached).

    images: (N, C, H, W) tensor, anything sliceable into such tensors (FolderImages), or a Dataset. The layer's
    output may be (N, C, h, w) or (N, C). ``k`` (clipped to N) top images are kept per channel. Batched under
    no_grad on the model's device, running totals on that device; the result does not depend on ``batch_size``.
    """
    return _stream(model, images, [layer], k, batch_size, progress)[layer]


@memoize
def stats_many(model: nn.Module, images, layers: list[str], k: int = 9, batch_size: int | None = None,
               progress: Progress | None = None) -> dict[str, ChannelStats]:
    """:func:`stats` of several layers from one shared pass (cached): layer name -> ChannelStats."""
    return _stream(model, images, list(layers), k, batch_size, progress)


def channel_layers(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> list[str]:
    """The rows of the dead table, in call order: every rectifier call site (``layer1.0.relu``, ``layer1.0.relu_1``;
    nn.ReLU6 too, see :mod:`compute.rectifiers`), or the conv layers of a model that applies its ReLUs as functions
    (no ReLU modules to name)."""
    names = activations.layers(model, input_shape)
    rectifiers = [name for name in names if is_rectifier(activations.module(model, name))]
    return rectifiers or [name for name in names if isinstance(activations.module(model, name), nn.Conv2d)]


def dead_counts(model: nn.Module, images, layers: list[str] | None = None, k: int = 9, batch_size: int | None = None,
                progress: Progress | None = None) -> list[dict]:
    """One row per layer (default: :func:`channel_layers`) for the table of dead channels, from one pass.

    Each row: ``layer``, ``kind`` (the module type), ``channels``, ``dead`` (count), ``dead_channels`` (indices),
    ``zero_fraction``, ``mean_firing_rate``.
    """
    if layers is None:
        layers = channel_layers(model, tuple(_image_tensor(images).shape[1:]))
    found = stats_many(model, images, list(layers), k, batch_size=batch_size, progress=progress)
    return [{
        "layer": layer,
        "kind": type(activations.module(model, layer)).__name__,
        "channels": found[layer].channels,
        "dead": int(found[layer].dead.sum()),
        "dead_channels": found[layer].dead_channels,
        "zero_fraction": found[layer].zero_fraction,
        "mean_firing_rate": float(found[layer].firing_rate.mean()),
    } for layer in layers]
