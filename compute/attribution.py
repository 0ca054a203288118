"""Attribution maps (which pixels matter for a class) and feature inversions (what a channel responds to).

Images are ``(C, H, W)`` float tensors in the data range; models map ``(B, C, H, W)`` to logits ``(B, K)``, are
in eval mode and may live on any device. Results are detached CPU float32 tensors. The gradient methods and
Grad-CAM live in :mod:`compute.gradients` and are re-exported here; :data:`METHODS` is the table a UI builds
its menus from.
"""
from __future__ import annotations

import torch
from torch import nn

from compute.cache import memoize
from compute.device import activation_floats, batch_size_for, model_device
from compute.gradients import (
    Progress,
    capture_output,
    check_image,
    gradcam,
    input_gradients,
    integrated_gradients,
    integrated_gradients_attributions,
    saliency,
    smoothgrad,
    smoothgrad_noise,
)
from compute.layers import run_until
from compute.errors import UserError
from compute.rectifiers import backward_rule, require_rectifiers
from compute.specs.attribution import FILLS, INVERSIONS, METHODS, suggested_params
from compute.specs.params import MapSpec

__all__ = [
    "INVERSIONS", "METHODS", "MapSpec", "attribution_map", "cached_inversion", "clean_probability", "gradcam",
    "input_gradients", "integrated_gradients", "integrated_gradients_attributions", "invert", "most_active_channel", "occlusion",
    "occlusion_probability_map", "rank_correlation", "saliency", "smoothgrad", "smoothgrad_noise",
    "suggested_params",
]


# ---------------------------------------------------------------------------------------------- occlusion

def _box_masks(size: int, box: int, stride: int) -> torch.Tensor:
    """``(n, size)`` bool: row i covers the box of side ``box`` centred at ``i * stride``, clipped to the image.

    An even box has one more pixel before its centre than after it.
    """
    centres = torch.arange(0, size, stride)
    starts = centres - box // 2
    positions = torch.arange(size)
    return (positions >= starts[:, None]) & (positions < starts[:, None] + box)


def _nearest_centre(size: int, stride: int, count: int) -> torch.Tensor:
    """Index of the grid centre nearest to each pixel (ties go to the lower centre), ``(size,)``."""
    return ((torch.arange(size) + (stride - 1) // 2) // stride).clamp(max=count - 1)


def occlusion_probability_map(
    model: nn.Module,
    image: torch.Tensor,
    target: int,
    box: int = 8,
    stride: int = 2,
    fill: float | tuple[float, ...] | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Zeiler & Fergus 2014 occlusion: p(target) with a grey box centred near each pixel, ``(H, W)``.

    Boxes of side ``box`` filled with ``fill`` (a value, one value per channel, or None: the per-channel mean
    of the image) are centred on the grid
    0, stride, 2*stride, ... in both directions and clipped at the border. Each pixel takes the probability of
    its nearest grid centre, so stride=1 gives exactly "box centred at each pixel". The occluded copies are
    built and classified batch by batch.
    """
    check_image(image)
    if box < 1 or stride < 1:
        raise UserError(f"box and stride must be at least 1, got box={box}, stride={stride}")
    device = model_device(model)
    x = image.detach().to(device, torch.float32)
    channels, height, width = x.shape
    if fill is None:
        fill_value = x.mean((1, 2), keepdim=True)
    else:
        fill_value = torch.as_tensor(fill, dtype=torch.float32, device=device).reshape(-1, 1, 1).expand(channels, 1, 1)
    rows = _box_masks(height, box, stride).to(device)
    cols = _box_masks(width, box, stride).to(device)
    count = len(rows) * len(cols)
    batch = batch_size or batch_size_for(device, activation_floats(model, (channels, height, width)))
    probabilities = torch.empty(count)
    with torch.no_grad():
        for start in range(0, count, batch):
            index = torch.arange(start, min(start + batch, count), device=device)
            masks = rows[index // len(cols), :, None] & cols[index % len(cols), None, :]
            copies = torch.where(masks[:, None], fill_value, x)
            logits = model(copies)
            probabilities[start:start + len(index)] = logits.softmax(1)[:, target].float().cpu()
            if progress is not None:
                progress((start + len(index)) / count, f"occlusion {start + len(index)}/{count} boxes")
    grid = probabilities.view(len(rows), len(cols))
    return grid[_nearest_centre(height, stride, len(rows))][:, _nearest_centre(width, stride, len(cols))]


def occlusion(
    model: nn.Module,
    image: torch.Tensor,
    target: int,
    box: int = 8,
    stride: int = 2,
    fill: float | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Probability drop ``(H, W)``: p(target | image) - :func:`occlusion_probability_map`; larger = more important,
    negative where occluding raises p(target)."""
    check_image(image)
    return clean_probability(model, image, target) - occlusion_probability_map(model, image, target, box, stride,
                                                                               fill, batch_size, progress)


def clean_probability(model: nn.Module, image: torch.Tensor, target: int) -> float:
    """p(target | image) of the unoccluded ``image (C, H, W)``."""
    with torch.no_grad():
        logits = model(image.detach().to(model_device(model), torch.float32)[None])
    return float(logits.float().softmax(1)[0, target])


# ---------------------------------------------------------------------------------------------- inversion



def invert(
    model: nn.Module,
    image: torch.Tensor,
    layer: str,
    channel: int,
    method: str = "deconvnet",
    keep: str = "channel",
) -> torch.Tensor:
    """Project one channel at ``layer`` back to pixel space, ``(C, H, W)``.

    The channel's activations (keep="channel") or only its largest one (keep="max") are the gradient sent
    back from ``layer``, every other activation zero. Every rectifier module (nn.ReLU, nn.ReLU6: see
    :mod:`compute.rectifiers`) backpropagates by the deconvnet rule (relu of the gradient) or the guided-backprop
    rule (that, and only where the forward input was positive); max pooling's backward routes to the argmax (the
    "switches") and a conv's backward is its transpose. Functional relu calls keep their ordinary gradient. A model
    with another activation (SiLU, GELU, ...) raises :class:`compute.rectifiers.NotRectifiedError`.
    """
    check_image(image)
    if method not in INVERSIONS:
        raise UserError(f"unknown inversion method {method!r}: use one of {', '.join(INVERSIONS)}")
    if keep not in ("channel", "max"):
        raise ValueError(f"keep must be 'channel' or 'max', got {keep!r}")
    require_rectifiers(model, INVERSIONS[method])
    x = image.detach().to(model_device(model), torch.float32)[None].requires_grad_(True)
    # The capture hook goes on after the rectifiers' hooks, so a rectifier layer's captured output is the replaced one.
    with torch.enable_grad(), backward_rule(model, guided=method == "guided_backprop"):
        with capture_output(model, layer) as captured:
            model(x)
        activation = captured[0]
        if not 0 <= channel < activation.shape[1]:
            raise UserError(f"channel {channel} is out of range: layer {layer!r} has {activation.shape[1]} channels")
        chosen = activation[0, channel].detach()
        seed = torch.zeros_like(activation)
        if keep == "channel":
            seed[0, channel] = chosen
        else:
            peak = chosen.argmax()  # index into the flattened map
            seed[0, channel].view(-1)[peak] = chosen.flatten()[peak]
        (grad,) = torch.autograd.grad(activation, x, grad_outputs=seed)
    return grad[0].float().cpu()


def most_active_channel(model: nn.Module, image: torch.Tensor, layer: str) -> int:
    """The channel of ``layer`` with the largest mean activation on ``image (C, H, W)``."""
    check_image(image)
    with torch.no_grad():
        activation = run_until(model, image.detach().to(model_device(model), torch.float32)[None], layer)
    return int(activation[0].flatten(1).mean(1).argmax()) if activation.ndim > 2 else int(activation[0].argmax())


# ---------------------------------------------------------------------------------------------- comparison

def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two maps of equal size, flattened (ties averaged); 0.0 if one is constant.

    Used for the Adebayo et al. 2018 sanity check: a map that barely changes when the model's weights are
    randomised does not explain the model.
    """
    from scipy.stats import spearmanr  # scipy.stats is slow to import; only pay for it when used

    x = a.detach().flatten().double().cpu().numpy()
    y = b.detach().flatten().double().cpu().numpy()
    if x.shape != y.shape:
        raise ValueError(f"maps differ in size: {a.numel()} vs {b.numel()} values")
    if x.min() == x.max() or y.min() == y.max():
        return 0.0
    return float(spearmanr(x, y).statistic)


# ---------------------------------------------------------------------------------------------- registry
# The table the page builds its menus from is plain data in compute.specs.attribution; it names these functions.


def _fill_value(fill: str, data_mean: tuple[float, ...] | None) -> float | tuple[float, ...] | None:
    """The occlusion fill of a menu choice; "data mean" uses ``data_mean`` (per channel), else the image mean."""
    if fill not in FILLS:
        raise UserError(f"unknown fill {fill!r}: use one of {', '.join(FILLS)}")
    value = FILLS[fill]
    if value == "data":
        return tuple(data_mean) if data_mean else None
    return value


def occlusion_with_fill(
    model: nn.Module,
    image: torch.Tensor,
    target: int,
    box: int = 8,
    stride: int = 2,
    fill: str = "data mean",
    data_mean: tuple[float, ...] | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """:func:`occlusion` with the fill given as a menu choice (see :func:`_fill_value`)."""
    return occlusion(model, image, target, box, stride, _fill_value(fill, data_mean), batch_size, progress)


def occlusion_explain(
    model: nn.Module,
    image: torch.Tensor,
    target: int,
    box: int = 8,
    stride: int = 2,
    fill: str = "data mean",
    data_mean: tuple[float, ...] | None = None,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> dict[str, torch.Tensor | float]:
    """Occlusion's maps from one pass over the boxes: ``probability`` p_occluded ``(H, W)``, ``clean`` p_clean
    (float) and ``map`` = p_clean - p_occluded ``(H, W)``, signed (negative where occluding raises p)."""
    value = _fill_value(fill, data_mean)
    probability = occlusion_probability_map(model, image, target, box, stride, value, batch_size, progress)
    clean = clean_probability(model, image, target)
    return {"map": clean - probability, "probability": probability, "clean": clean}


# ---------------------------------------------------------------------------------------------- cached entry points

@memoize
def attribution_map(
    model: nn.Module,
    image: torch.Tensor,
    target: int,
    method: str,
    params: dict | None = None,
    progress: Progress | None = None,
) -> dict[str, torch.Tensor | float]:
    """``METHODS[method].explain`` on one image with ``params``: a dict keyed as the method's ``maps`` say (always
    ``"map"``, an ``(H, W)`` CPU tensor). Cached by model fingerprint, image, target, parameters and code."""
    if method not in METHODS:
        raise UserError(f"unknown attribution method {method!r}; choose one of: {', '.join(METHODS)}")
    return METHODS[method].explain(model, image, target, **(params or {}), progress=progress)


@memoize
def cached_inversion(model: nn.Module, image: torch.Tensor, layer: str, channel: int, method: str = "deconvnet",
                     keep: str = "channel") -> torch.Tensor:
    """:func:`invert`, cached like :func:`attribution_map`."""
    return invert(model, image, layer, channel, method, keep)
