"""Attribution maps (which pixels matter for a class) and feature inversions (what a channel responds to).

Images are ``(C, H, W)`` float tensors in the data range; models map ``(B, C, H, W)`` to logits ``(B, K)``, are
in eval mode and may live on any device. Results are detached CPU float32 tensors. The gradient methods and
Grad-CAM live in :mod:`compute.gradients` and are re-exported here; :data:`METHODS` is the table a UI builds
its menus from.
"""
from __future__ import annotations


import numpy as np
import torch
from torch import nn

from compute import passes
from compute.cache import get_cache, memoize
from compute.device import model_device
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
from compute.errors import UserError
from compute.layers import run_until
from compute.passes import Plan, Points
from compute.rectifiers import backward_rule, require_rectifiers
from compute.specs.attribution import FILLS, INVERSIONS, METHODS, suggested_params
from compute.progress import scaled
from compute.specs.params import MapSpec, resolve

__all__ = [
    "INVERSIONS", "METHODS", "MapSpec", "attribution_map", "attribution_maps", "cached_inversion", "clean_probability", "gradcam",
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


def _occlusion_plan(model: nn.Module, image: torch.Tensor, box: int, stride: int,
                    fill: float | tuple[float, ...] | None, with_clean: bool) -> Plan:
    """The occluded copies of :func:`occlusion_probability_map` as plan points, made batch by batch; ``with_clean``
    puts the image itself first, so p_clean comes from the same pass. Finishes to the (H, W) map of p(target), or
    with ``with_clean`` to {"probability", "clean", "map"}."""
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
    first = 1 if with_clean else 0  # the clean image's row

    def make(start: int, stop: int) -> torch.Tensor:
        index = torch.arange(start, stop, device=device) - first
        box_index = index.clamp(min=0)
        masks = rows[box_index // len(cols), :, None] & cols[box_index % len(cols), None, :]
        masks &= (index >= 0)[:, None, None]  # index -1: nothing covered
        return torch.where(masks[:, None], fill_value, x)

    def finish(found: passes.Evaluated):
        probabilities = found.probabilities.float().cpu()
        grid = probabilities[first:].view(len(rows), len(cols))
        probability = grid[_nearest_centre(height, stride, len(rows))][:, _nearest_centre(width, stride, len(cols))]
        if not with_clean:
            return probability
        clean = float(probabilities[0])
        return {"map": clean - probability, "probability": probability, "clean": clean}

    return Plan(finish, probability_points=Points(first + len(rows) * len(cols), make))


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
    plan = _occlusion_plan(model, image, box, stride, fill, with_clean=False)
    return passes.run(model, plan, target, batch_size, progress)


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

def average_ranks(values: np.ndarray) -> np.ndarray:
    """Ranks 1..n of ``values`` (1-D), ties given the mean of the ranks they span (scipy's ``rankdata``)."""
    values = np.asarray(values)
    order = np.argsort(values, kind="stable")
    ordered = values[order]
    # Runs of equal values: the first position of each run, and each value's run.
    starts = np.flatnonzero(np.concatenate([[True], ordered[1:] != ordered[:-1]]))
    run_of = np.cumsum(np.concatenate([[False], ordered[1:] != ordered[:-1]]))
    ends = np.append(starts[1:], len(values))
    ranks = np.empty(len(values), dtype=np.float64)
    ranks[order] = ((starts + 1 + ends) / 2.0)[run_of]
    return ranks


def rank_correlation(a: torch.Tensor, b: torch.Tensor) -> float:
    """Spearman rank correlation of two maps of equal size, flattened (ties averaged); 0.0 if one is constant.

    Used for the Adebayo et al. 2018 sanity check: a map that barely changes when the model's weights are
    randomised does not explain the model. The Pearson correlation of the average ranks (what scipy's spearmanr
    computes, without importing scipy.stats: about a second on the first call).
    """
    x = a.detach().flatten().double().cpu().numpy()
    y = b.detach().flatten().double().cpu().numpy()
    if x.shape != y.shape:
        raise ValueError(f"maps differ in size: {a.numel()} vs {b.numel()} values")
    if x.min() == x.max() or y.min() == y.max():
        return 0.0
    rx, ry = average_ranks(x), average_ranks(y)
    rx -= rx.mean()
    ry -= ry.mean()
    return float(np.clip((rx @ ry) / np.sqrt((rx @ rx) * (ry @ ry)), -1.0, 1.0))


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


def occlusion_plan(
    model: nn.Module,
    image: torch.Tensor,
    target: int,
    box: int = 8,
    stride: int = 2,
    fill: str = "data mean",
    data_mean: tuple[float, ...] | None = None,
) -> Plan:
    """:func:`occlusion_explain` as a plan: the clean image and every occluded copy in one forward pass."""
    return _occlusion_plan(model, image, box, stride, _fill_value(fill, data_mean), with_clean=True)


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
    """Occlusion's maps from one pass over the clean image and the boxes: ``probability`` p_occluded ``(H, W)``,
    ``clean`` p_clean (float) and ``map`` = p_clean - p_occluded ``(H, W)``, signed (negative where occluding raises
    p)."""
    plan = occlusion_plan(model, image, target, box, stride, fill, data_mean)
    return passes.run(model, plan, target, batch_size, progress)


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


def attribution_maps(
    models: dict[str, nn.Module],
    image: torch.Tensor,
    target: int,
    methods: dict[str, dict],
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> dict[str, dict[str, dict[str, torch.Tensor | float]]]:
    """:func:`attribution_map` of every method of ``methods`` ({name: parameters}) on every model of ``models``
    ({name: model}): ``result[model name][method]``.

    Each map is cached under :func:`attribution_map`'s own key (a map computed here is found there, and the other
    way round). The missing ones are computed together: the methods that have a planner share one gradient pass
    and one forward pass per model (:func:`compute.passes.evaluate`: the sanity check's five methods on two models
    are four batched passes); any other method runs on its own. All models must take the same input.
    """
    unknown = [name for name in methods if name not in METHODS]
    if unknown:
        raise UserError(f"unknown attribution method {unknown[0]!r}; choose one of: {', '.join(METHODS)}")
    cache = get_cache()
    keys = {(net, method): attribution_map.key(model, image, target, method, params)
            for net, model in models.items() for method, params in methods.items()}
    found: dict[str, dict] = {net: {} for net in models}
    for (net, method), key in keys.items():
        value = cache.get(key)
        if value is not None:
            found[net][method] = value
    missing_nets = [net for net in models if len(found[net]) < len(methods)]
    if missing_nets:
        wanted = [method for method in methods if any(method not in found[net] for net in missing_nets)]
        planned = [method for method in wanted if METHODS[method].planner is not None]
        alone = [method for method in wanted if method not in planned]
        nets = [models[net] for net in missing_nets]
        plans = [resolve(METHODS[method].planner)(nets[0], image, target, **methods[method]) for method in planned]
        share = len(planned) / max(1, len(wanted))
        results = passes.evaluate(nets, plans, target, batch_size, scaled(progress, 0.0, share))
        for net, row in zip(missing_nets, results):
            for method, result in zip(planned, row):
                found[net].setdefault(method, result if isinstance(result, dict) else {"map": result})
        for k, method in enumerate(alone):
            report = scaled(progress, share + (1 - share) * k / len(alone), share + (1 - share) * (k + 1) / len(alone))
            for net in missing_nets:
                if method not in found[net]:
                    found[net][method] = METHODS[method].explain(models[net], image, target, **methods[method],
                                                                 batch_size=batch_size, progress=report)
        for net in missing_nets:
            for method in wanted:
                cache.set(keys[(net, method)], found[net][method])
    return {net: {method: found[net][method] for method in methods} for net in models}
