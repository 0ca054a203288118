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


def _low_frequency_operator(height: int, width: int) -> torch.Tensor:
    """(h*w, h*w) float64: the Gram matrix A with v^T A v = the energy of a kernel v (flattened h x w) inside the disc
    |f| <= LOW_FREQUENCY_RADIUS of its continuous spectrum (the DTFT on the frequency square [-0.5, 0.5]^2).

    |W(f)|^2 = sum over tap pairs of v_p v_q e^{-2 pi i f.(p - q)}, and the disc's integral of e^{-2 pi i f.d} is
    R J1(2 pi R |d|) / |d| (pi R^2 at d = 0): the Fourier transform of a disc, in closed form, so no frequency grid
    (and no padding) is involved.
    """
    rows, columns = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                                   indexing="ij")
    positions = torch.stack([rows.flatten(), columns.flatten()], dim=1)
    distance = torch.cdist(positions, positions)
    radius = LOW_FREQUENCY_RADIUS
    safe = distance.clamp_min(1e-12)
    return torch.where(distance > 0, radius * torch.special.bessel_j1(2 * math.pi * radius * safe) / safe,
                       torch.full_like(distance, math.pi * radius**2))


def smoothness(weights) -> np.ndarray:
    """(out,) per filter: the share of its spectral energy at low spatial frequencies, in [0, 1].

    weights: (out, in, kh, kw). A kernel's spectrum is its continuous Fourier transform (the DTFT) over the frequency
    square [-0.5, 0.5]^2 cycles per pixel; the share is its energy inside the disc of radius 0.25 (half the Nyquist
    frequency) over its total energy, both summed over input channels. It is computed exactly, as a quadratic form
    of the weights (:func:`_low_frequency_operator`), so it depends on no padding or frequency grid, and embedding
    a kernel in a larger one of zeros leaves it unchanged.

    White noise scores pi/16 = 0.196 on average whatever the kernel size (:func:`noise_smoothness`), a constant or
    Gaussian kernel close to 1, a checkerboard close to 0. An all-zero filter gives NaN.
    """
    weights = torch.as_tensor(np.asarray(weights) if not isinstance(weights, torch.Tensor) else weights)
    weights = weights.detach().to("cpu", torch.float64)
    out_channels, in_channels, height, width = weights.shape
    flat = weights.reshape(out_channels, in_channels, height * width)
    operator = _low_frequency_operator(height, width)
    low_energy = torch.einsum("oip,pq,oiq->o", flat, operator, flat)
    total = flat.square().sum(dim=(1, 2))  # Parseval: the energy over the whole square
    share = torch.where(total > 0, low_energy / total.clamp_min(1e-300), torch.tensor(math.nan, dtype=torch.float64))
    return share.float().numpy()


def noise_smoothness() -> float:
    """The mean share :func:`smoothness` gives white noise: pi R^2 = pi/16, the disc's share of the frequency square.

    Exact for any noise whose weights are independent draws of one symmetric distribution (Gaussian, or the uniform
    of PyTorch's default initialisation): by symmetry E[v_p v_q / |v|^2] is 0 for p != q and 1/n for p = q, so the
    mean share is the mean diagonal entry of the operator, pi R^2 for every kernel size."""
    return math.pi * LOW_FREQUENCY_RADIUS**2


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
