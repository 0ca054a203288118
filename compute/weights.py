"""Filter kernels of conv layers: the weights, the normalised grid the page shows, and two numbers per layer.

Slide 7 of the course: kernels are worth looking at in conv layers (small images) and not in fully connected ones,
and after a successful training they are "smooth and diverse". :func:`smoothness` and :func:`diversity` turn those
two words into numbers that can be followed over the saved epochs (jobs ``weights.kernels``, ``weights.evolution``).

Nothing here is cached: a layer's weights are at most a few MB, and reading them costs less than fingerprinting
the model for a cache key would.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from compute import activations
from compute.activations import LayerError
from compute.layers import conv_layers

MODES = ("auto", "rgb", "channel", "norm")
# Spectra are sampled on at least this many frequencies per axis (the kernel zero-padded to it): a 3x3 kernel's own
# 3-point DFT only has the frequencies 0 and +-1/3, too coarse to tell low from high.
SPECTRUM_SIZE = 16
# "Low" spatial frequencies: radius |f| <= LOW_FREQUENCY_RADIUS cycles per pixel, i.e. half the Nyquist frequency
# (0.5). Half, not a quarter: a 3x3 kernel can only vary at periods >= 2 pixels, and a quarter of Nyquist (periods
# >= 8 pixels) would leave even a Gaussian with most of its energy counted as "high".
LOW_FREQUENCY_RADIUS = 0.25


def kernels(model: nn.Module, layer: str) -> torch.Tensor:
    """The weights of conv layer ``layer``: (out, in / groups, kh, kw) float32, detached, on the CPU.

    LayerError for an unknown name, and for any layer that is not a 2-D convolution, naming the conv layers;
    for a fully connected layer the message says why its weights are not shown as kernels.
    """
    found = activations.module(model, layer)
    if isinstance(found, nn.Conv2d):
        return found.weight.detach().float().cpu()
    conv_names = ", ".join(conv_layers(model)) or "none"
    if isinstance(found, nn.Linear):
        raise LayerError(
            f"layer {layer!r} is fully connected ({found.in_features} -> {found.out_features}): each of its weights "
            f"joins one input unit to one output unit, with no spatial neighbourhood, so its rows are not small "
            f"images the way conv kernels are. Conv layers of this model: {conv_names}"
        )
    raise LayerError(f"layer {layer!r} ({type(found).__name__}) is not a conv layer; conv layers of this model: {conv_names}")


def resolve_mode(weights: torch.Tensor, mode: str = "auto") -> str:
    """The mode ``auto`` stands for: ``rgb`` for 3 input channels, ``channel`` (grey) for 1, ``norm`` otherwise."""
    if mode not in MODES:
        raise ValueError(f"unknown kernel display mode {mode!r}; choose one of: {', '.join(MODES)}")
    in_channels = int(weights.shape[1])
    if mode == "rgb" and in_channels != 3:
        raise ValueError(f"mode 'rgb' needs 3 input channels; this layer has {in_channels}")
    if mode != "auto":
        return mode
    return "rgb" if in_channels == 3 else "channel" if in_channels == 1 else "norm"


def kernel_grid(weights, mode: str = "auto", input_channel: int = 0) -> np.ndarray:
    """The kernels as the page shows them, one small image per output channel, values in [0, 1].

    weights: (out, in, kh, kw) tensor or array. Modes (``auto`` picks by the input channels, see :func:`resolve_mode`):

    - ``rgb`` -> (out, kh, kw, 3): the three input channels as colours.
    - ``channel`` -> (out, kh, kw): input channel ``input_channel`` of every filter, grey.
    - ``norm`` -> (out, kh, kw): at each tap, the L2 norm of the weights over all input channels (how strongly the
      filter reads that position, whatever the channel).

    Each filter is normalised on its own, so weak filters stay readable: signed modes (``rgb``, ``channel``) divide
    by the filter's largest absolute weight and map [-1, 1] to [0, 1], so a zero weight is mid-grey (0.5) and the
    sign is kept (a min-max stretch would shift zero from filter to filter); ``norm`` (never negative) divides by
    the filter's largest norm, so 0 is black. An all-zero filter stays at its zero level.
    """
    weights = torch.as_tensor(np.asarray(weights) if not isinstance(weights, torch.Tensor) else weights).float().cpu()
    if weights.ndim != 4:
        raise ValueError(f"kernel weights must be (out, in, kh, kw); got shape {tuple(weights.shape)}")
    mode = resolve_mode(weights, mode)
    if mode == "norm":
        norms = weights.norm(dim=1)  # (out, kh, kw)
        peak = norms.flatten(1).amax(dim=1).clamp_min(1e-12)
        return (norms / peak[:, None, None]).numpy()
    if mode == "channel":
        if not 0 <= input_channel < weights.shape[1]:
            raise ValueError(f"input channel {input_channel} does not exist: the layer has {weights.shape[1]} input channels")
        chosen = weights[:, input_channel : input_channel + 1]
    else:
        chosen = weights
    peak = chosen.abs().flatten(1).amax(dim=1).clamp_min(1e-12)
    scaled = 0.5 + 0.5 * chosen / peak[:, None, None, None]  # (out, c, kh, kw)
    return (scaled[:, 0] if mode == "channel" else scaled.permute(0, 2, 3, 1)).numpy()


def input_channel_norms(weights: torch.Tensor) -> np.ndarray:
    """(out, in): the L2 norm of each filter's kernel per input channel (which inputs a filter reads most)."""
    return torch.as_tensor(weights).float().flatten(2).norm(dim=2).numpy()


def _low_frequency_mask(size: int) -> torch.Tensor:
    """(size, size) bool: the DFT frequencies of a size x size grid with radius <= LOW_FREQUENCY_RADIUS."""
    frequencies = torch.fft.fftfreq(size)  # cycles per pixel, in [-0.5, 0.5)
    radius = torch.sqrt(frequencies[:, None] ** 2 + frequencies[None, :] ** 2)
    return radius <= LOW_FREQUENCY_RADIUS + 1e-9


def smoothness(weights, chunk_floats: int = 1 << 22) -> np.ndarray:
    """(out,) per filter: the share of its spectral energy at low spatial frequencies, in [0, 1].

    weights: (out, in, kh, kw). Each input channel's kernel is zero-padded to ``max(16, 2 * k)`` pixels per side
    and Fourier transformed; the power |F|^2 is summed over input channels; the share is the power at radius
    <= 0.25 cycles per pixel (half the Nyquist frequency) over the total power. The padding samples the kernel's
    continuous spectrum finely and does not change the total (Parseval), so the share does not depend on it.
    White noise scores about 0.19 (the share of the frequency square inside that disc, :func:`noise_smoothness`),
    a constant or Gaussian kernel close to 1, a checkerboard 0. An all-zero filter gives NaN.
    Computed in chunks of output channels so a 512x512x3x3 layer never holds its whole spectrum.
    """
    weights = torch.as_tensor(np.asarray(weights) if not isinstance(weights, torch.Tensor) else weights).float().cpu()
    out_channels, in_channels, height, width = weights.shape
    size = max(SPECTRUM_SIZE, 2 * max(height, width))
    low = _low_frequency_mask(size)
    per_filter = max(1, chunk_floats // (in_channels * size * size))
    shares = []
    for start in range(0, out_channels, per_filter):
        power = torch.fft.fft2(weights[start : start + per_filter], s=(size, size)).abs().square().sum(dim=1)
        total = power.sum(dim=(1, 2))
        low_energy = (power * low).sum(dim=(1, 2))
        shares.append(torch.where(total > 0, low_energy / total.clamp_min(1e-30), torch.tensor(math.nan)))
    return torch.cat(shares).numpy()


def noise_smoothness(kernel_size: int = 3) -> float:
    """The share :func:`smoothness` gives white noise on average: the low-frequency fraction of the sampled grid."""
    size = max(SPECTRUM_SIZE, 2 * kernel_size)
    return float(_low_frequency_mask(size).float().mean())


def diversity(weights) -> float:
    """Mean pairwise cosine distance (1 - cosine similarity) between the flattened filters of a layer.

    weights: (out, in, kh, kw). 0 when all filters are alike (up to scale), 1 when they are mutually orthogonal,
    up to 2 for opposite pairs. An all-zero filter counts as orthogonal to every other. NaN for a single filter.
    """
    weights = torch.as_tensor(np.asarray(weights) if not isinstance(weights, torch.Tensor) else weights).float().cpu()
    count = weights.shape[0]
    if count < 2:
        return math.nan
    flat = weights.reshape(count, -1).double()
    unit = flat / flat.norm(dim=1, keepdim=True).clamp_min(1e-30)
    similarity = unit @ unit.T
    pairs = torch.triu_indices(count, count, offset=1)
    # max(0, ...): rounding leaves -1e-16 for identical filters.
    return max(0.0, float(1.0 - similarity[pairs[0], pairs[1]].mean()))


def summary(weights: torch.Tensor, mode: str = "auto", input_channel: int = 0) -> dict:
    """Everything the page shows for one layer's weights (out, in, kh, kw): grid, numbers, shape and mode."""
    resolved = resolve_mode(weights, mode)
    per_filter = smoothness(weights)
    return {
        "grid": kernel_grid(weights, resolved, input_channel),
        "mode": resolved,
        "input_channel": int(input_channel) if resolved == "channel" else None,
        "shape": tuple(int(s) for s in weights.shape),
        "smoothness": per_filter,
        "mean_smoothness": float(np.nanmean(per_filter)) if np.isfinite(per_filter).any() else math.nan,
        "diversity": diversity(weights),
        "input_channel_norms": input_channel_norms(weights),
    }
