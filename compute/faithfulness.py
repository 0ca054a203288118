"""How faithful an attribution map is: deletion and insertion curves (Petsiuk et al. 2018, RISE) and ROAD (Rong et
al. 2022), all steps of all maps through the model as batches.

A map ``(H, W)`` gives a pixel order, most important first (:func:`perturbation_order`). A curve is p(target) of the
image perturbed along that order at the shares of pixels ``fractions`` (:func:`curve_fractions`):

- ``deletion``: the first pixels replaced by a fill (zero, the data mean or a blurred copy);
- ``insertion``: a blurred copy with the first pixels of the image put back;
- ``road_morf`` / ``road_lerf``: the most (least) important pixels removed and filled in by noisy linear
  imputation from the pixels still there (:func:`linear_imputation`), so the image stays close to the data.

Every (kind, order, step) image is built batch by batch by one function (:func:`perturbed_images`), whose per-item
randomness is seeded per item, so the curves do not depend on the batch size; :func:`step_image` is the same builder
for one item (the picture a page shows at a curve's point). Images are ``(C, H, W)`` float tensors in the data range;
models map ``(B, C, H, W)`` to logits. Results are CPU float32 tensors.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from compute.cache import memoize
from compute.device import activation_floats, batch_size_for, model_device
from compute.specs.faithfulness import BASIC_KINDS, KINDS, ROAD_NOISE
from compute.imputation import linear_imputation

Progress = Callable[[float, str], None]


# ---------------------------------------------------------------------------------------------- orders

def perturbation_order(saliency: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """Flat pixel indices ``(H * W,)`` of ``saliency (H, W)``, largest value first.

    Ties (a flat region of a map: Grad-CAM's zeros, a constant map) are broken in a seeded random order, so a flat
    region is not removed from its top-left corner first, which would favour maps that tie where the object is not.
    """
    values = saliency.detach().flatten().double().cpu()
    # 2 * seed + 1: never the generator of random_orders(seed), whose first order would otherwise equal a constant map's
    shuffle = torch.randperm(values.numel(), generator=torch.Generator().manual_seed(2 * seed + 1))
    ranked = torch.argsort(-values[shuffle], stable=True)
    return shuffle[ranked]


def random_orders(count: int, pixels: int, seed: int = 0) -> torch.Tensor:
    """``(count, pixels)`` random pixel orders: the floor every map should beat."""
    generator = torch.Generator().manual_seed(2 * seed)
    return torch.stack([torch.randperm(pixels, generator=generator) for _ in range(count)]) if count else \
        torch.empty((0, pixels), dtype=torch.long)


def order_ranks(orders: torch.Tensor) -> torch.Tensor:
    """``(M, P)`` position of each pixel in each order (0 = removed first): the inverse permutations of ``orders``."""
    ranks = torch.empty_like(orders)
    ranks.scatter_(1, orders, torch.arange(orders.shape[1]).expand_as(orders).contiguous())
    return ranks


def curve_fractions(kind: str, steps: int) -> torch.Tensor:
    """The shares of pixels perturbed at each point of a ``kind`` curve: 0, 1/steps, ..., 1 for deletion and
    insertion; ROAD stops one step short of 1, where no pixel would be left to impute from."""
    _check_kind(kind)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    fractions = torch.linspace(0.0, 1.0, steps + 1, dtype=torch.float64)
    return fractions[:-1] if kind.startswith("road") else fractions


def step_counts(fractions: torch.Tensor, pixels: int) -> torch.Tensor:
    """How many pixels are perturbed at each fraction (rounded to the nearest pixel)."""
    return torch.round(fractions * pixels).long()


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown curve kind {kind!r}; use one of {', '.join(KINDS)}")


# ---------------------------------------------------------------------------------------------- reference images

def gaussian_blur(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """``image (C, H, W)`` (or ``(B, C, H, W)``) blurred by a Gaussian of ``sigma`` pixels, borders reflected.

    The kernel reaches 3 sigma, cut to the image's size (reflection needs a border thinner than the image)."""
    if sigma <= 0:
        return image.clone()
    batched = image if image.ndim == 4 else image[None]
    channels, height, width = batched.shape[1:]
    radius = max(1, min(int(math.ceil(3 * sigma)), height - 1, width - 1))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32, device=image.device)
    kernel = torch.exp(-offsets**2 / (2 * sigma**2))
    kernel = (kernel / kernel.sum()).to(batched.dtype)
    out = F.pad(batched, (radius, radius, radius, radius), mode="reflect")
    out = F.conv2d(out, kernel.view(1, 1, 1, -1).repeat(channels, 1, 1, 1), groups=channels)
    out = F.conv2d(out, kernel.view(1, 1, -1, 1).repeat(channels, 1, 1, 1), groups=channels)
    return out if image.ndim == 4 else out[0]


def blur_sigma(image_shape: Sequence[int], blur: float) -> float:
    """The insertion blur in pixels: ``blur`` (a share of the shorter side) times that side."""
    return float(blur) * float(min(image_shape[-2:]))


def deletion_fill(image: torch.Tensor, fill: str = "zero", blur: float = 0.25,
                  data_mean: Sequence[float] | None = None) -> torch.Tensor:
    """What a deleted pixel becomes, ``(C, H, W)``: zero (RISE), the data set's per-channel mean (the image's when
    the data set has none), or the blurred image."""
    if fill == "zero":
        return torch.zeros_like(image)
    if fill == "data mean":
        mean = torch.as_tensor(data_mean, dtype=image.dtype, device=image.device).reshape(-1, 1, 1) \
            if data_mean else image.mean((1, 2), keepdim=True)
        return mean.expand_as(image).clone()
    if fill == "blur":
        return gaussian_blur(image, blur_sigma(image.shape, blur))
    raise ValueError(f"unknown deletion fill {fill!r}; use zero, data mean or blur")


# ---------------------------------------------------------------------------------------------- perturbed images

@dataclass(frozen=True)
class References:
    """The images a curve starts from or fills with, ``(C, H, W)`` each on the model's device."""

    image: torch.Tensor
    fill: torch.Tensor  # what deletion puts in place of a removed pixel
    blurred: torch.Tensor  # insertion's start


def references(image: torch.Tensor, fill: str = "zero", blur: float = 0.25,
               data_mean: Sequence[float] | None = None) -> References:
    """The :class:`References` of ``image (C, H, W)``: deletion's ``fill`` and insertion's blurred start."""
    return References(image, deletion_fill(image, fill, blur, data_mean),
                      gaussian_blur(image, blur_sigma(image.shape, blur)))


def _item_seed(seed: int, kind: str, order: int, step: int) -> int:
    """A seed per (kind, order, step): an item's noise is the same whatever batch it is built in."""
    return ((seed * 8 + list(KINDS).index(kind)) * 65_536 + order) * 4_096 + step


def perturbed_images(kind: str, refs: References, ranks: torch.Tensor, counts: torch.Tensor,
                     order_index: torch.Tensor, step_index: torch.Tensor, seed: int = 0,
                     road_noise: float = ROAD_NOISE) -> torch.Tensor:
    """The ``kind`` images of a batch, ``(B, C, H, W)``: item b perturbs the ``counts[b]`` first pixels of the order
    whose ranks are ``ranks[b] (P,)`` (deletion, insertion, ROAD MoRF) or its ``counts[b]`` last ones (ROAD LeRF).

    ``order_index`` and ``step_index`` (B,) name each item, to seed its ROAD noise (:func:`_item_seed`).
    """
    _check_kind(kind)
    image = refs.image
    channels, height, width = image.shape
    pixels = height * width
    ranks = ranks.to(image.device)
    counts = counts.to(image.device)
    if kind == "road_lerf":
        chosen = ranks >= (pixels - counts)[:, None]
    else:
        chosen = ranks < counts[:, None]
    chosen = chosen.view(-1, 1, height, width)
    if kind == "deletion":
        return torch.where(chosen, refs.fill, image)
    if kind == "insertion":
        return torch.where(chosen, image, refs.blurred)
    batch = chosen.shape[0]
    filled = linear_imputation(image.expand(batch, channels, height, width), ~chosen[:, 0])
    if road_noise:
        noise = torch.stack([
            torch.randn((channels, height, width), device=image.device,
                        generator=torch.Generator(device=image.device).manual_seed(
                            _item_seed(seed, kind, int(m), int(s))))
            for m, s in zip(order_index.tolist(), step_index.tolist())])
        filled = filled + road_noise * noise * chosen
    return filled


def step_image(image: torch.Tensor, order: torch.Tensor, kind: str, step: int, steps: int, fill: str = "zero",
               blur: float = 0.25, data_mean: Sequence[float] | None = None, order_index: int = 0, seed: int = 0,
               road_noise: float = ROAD_NOISE) -> torch.Tensor:
    """The image ``(C, H, W)`` at point ``step`` of the ``kind`` curve of ``order (P,)``: the same picture the
    curve's batch classified there (``order_index``: the order's row among the curves' orders, for ROAD's noise)."""
    fractions = curve_fractions(kind, steps)
    if not 0 <= step < len(fractions):
        raise ValueError(f"step {step} is outside the curve's 0..{len(fractions) - 1}")
    refs = references(image.detach().float(), fill, blur, data_mean)
    counts = step_counts(fractions, order.numel())[step:step + 1]
    ranks = order_ranks(order.view(1, -1))
    return perturbed_images(kind, refs, ranks, counts, torch.tensor([order_index]), torch.tensor([step]), seed,
                            road_noise)[0].cpu()


# ---------------------------------------------------------------------------------------------- curves

def faithfulness_curves(
    model: torch.nn.Module,
    image: torch.Tensor,
    target: int,
    orders: torch.Tensor,
    steps: int = 20,
    kinds: Sequence[str] = ("deletion", "insertion"),
    fill: str = "zero",
    blur: float = 0.25,
    data_mean: Sequence[float] | None = None,
    seed: int = 0,
    road_noise: float = ROAD_NOISE,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> dict[str, torch.Tensor]:
    """p(``target``) along every ``kind`` curve of every order: ``{kind: (M, n_kind)}`` for ``orders (M, H * W)``.

    All (kind, order, step) images go through the model in batches of ``batch_size`` (default: what fits a quarter
    of the device's free memory), built as they are needed; the result does not depend on the batch size.
    """
    if image.ndim != 3:
        raise ValueError(f"expected one image of shape (C, H, W), got shape {tuple(image.shape)}")
    for kind in kinds:
        _check_kind(kind)
    device = model_device(model)
    x = image.detach().to(device, torch.float32)
    pixels = x.shape[1] * x.shape[2]
    if orders.ndim != 2 or orders.shape[1] != pixels:
        raise ValueError(f"expected orders (M, {pixels}), got {tuple(orders.shape)}")
    refs = references(x, fill, blur, data_mean)
    ranks = order_ranks(orders.cpu().long()).to(device)
    count = orders.shape[0]
    plan = []  # (kind, order, step, pixels perturbed), in the order the results are laid out
    for kind in kinds:
        counts = step_counts(curve_fractions(kind, steps), pixels).tolist()
        plan += [(kind, m, s, c) for m in range(count) for s, c in enumerate(counts)]
    batch = batch_size or batch_size_for(device, activation_floats(model, tuple(x.shape)))
    probabilities = torch.empty(len(plan))
    with torch.no_grad():
        for start in range(0, len(plan), batch):
            chunk = plan[start:start + batch]
            parts = []
            for kind in dict.fromkeys(item[0] for item in chunk):
                items = [item for item in chunk if item[0] == kind]
                order_index = torch.tensor([item[1] for item in items])
                parts.append(perturbed_images(kind, refs, ranks[order_index.to(device)],
                                              torch.tensor([item[3] for item in items]), order_index,
                                              torch.tensor([item[2] for item in items]), seed, road_noise))
            logits = model(torch.cat(parts))
            probabilities[start:start + len(chunk)] = logits.float().softmax(1)[:, target].cpu()
            if progress is not None:
                done = start + len(chunk)
                progress(done / len(plan), f"faithfulness: {done}/{len(plan)} perturbed images")
    curves, offset = {}, 0
    for kind in kinds:
        points = len(curve_fractions(kind, steps))
        curves[kind] = probabilities[offset:offset + count * points].view(count, points)
        offset += count * points
    return curves


def area_under_curve(fractions: torch.Tensor, probabilities: torch.Tensor) -> torch.Tensor:
    """The area under each curve by the trapezoid rule, divided by the span of ``fractions``: the mean p(target)
    along the curve, comparable between deletion (span 1) and ROAD (span 1 - 1/steps). ``(..., n) -> (...)``."""
    x = fractions.to(torch.float64)
    area = torch.trapezoid(probabilities.to(torch.float64), x, dim=-1)
    return (area / float(x[-1] - x[0])).float()


# ---------------------------------------------------------------------------------------------- one image, cached

def curve_rows(methods: Sequence[str], random_count: int) -> list[str]:
    """The rows of an image's orders: the methods sorted by name (so a cached result, and the ROAD noise of each row,
    do not depend on the order the methods were asked in), then ``random 1``, ``random 2``, ..."""
    return sorted(methods) + [f"random {k + 1}" for k in range(random_count)]


def row_order(maps: dict[str, torch.Tensor], row: str, pixels: int, random_count: int, seed: int = 0) -> torch.Tensor:
    """The pixel order ``(P,)`` of one row of :func:`curve_rows`: a method's map's, or a random one."""
    if row in maps:
        return perturbation_order(maps[row], seed)
    rows = curve_rows(maps, random_count)
    if row not in rows:
        raise ValueError(f"unknown curve {row!r}; the curves are {', '.join(rows)}")
    return random_orders(random_count, pixels, seed)[rows.index(row) - len(maps)]


@memoize
def image_faithfulness(
    model: torch.nn.Module,
    image: torch.Tensor,
    target: int,
    maps: dict[str, torch.Tensor],
    steps: int = 20,
    kinds: Sequence[str] = BASIC_KINDS,
    fill: str = "zero",
    blur: float = 0.25,
    data_mean: Sequence[float] | None = None,
    random_count: int = 3,
    seed: int = 0,
    road_noise: float = ROAD_NOISE,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> dict:
    """Every ``kind`` curve of every map of ``maps`` ({method: (H, W)}) and of ``random_count`` random orders, with
    their areas (:func:`area_under_curve`), in one batched pass; cached by model, image, maps and settings.

    Returns ``fractions`` {kind: (n,)}, ``curves`` {kind: {method: (n,)}}, ``random`` {kind: (n,)} (the mean curve
    of the random orders: the floor), ``auc`` {kind: {method: float}} and ``random_auc`` {kind: float}.
    """
    if random_count < 1:
        raise ValueError(f"random_count must be at least 1, got {random_count}")
    names = sorted(maps)
    pixels = int(image.shape[-2] * image.shape[-1])
    for name in names:
        if tuple(maps[name].shape) != tuple(image.shape[-2:]):
            raise ValueError(f"the {name} map is {tuple(maps[name].shape)}, the image {tuple(image.shape[-2:])}")
    method_orders = [perturbation_order(maps[name], seed) for name in names]
    orders = torch.cat([torch.stack(method_orders) if method_orders else torch.empty((0, pixels), dtype=torch.long),
                        random_orders(random_count, pixels, seed)])
    curves = faithfulness_curves(model, image, target, orders, steps, kinds, fill, blur, data_mean, seed, road_noise,
                                 batch_size, progress)
    result: dict = {"fractions": {}, "curves": {}, "random": {}, "auc": {}, "random_auc": {}}
    for kind in kinds:
        fractions = curve_fractions(kind, steps)
        areas = area_under_curve(fractions, curves[kind])
        result["fractions"][kind] = fractions.float()
        result["curves"][kind] = {name: curves[kind][m] for m, name in enumerate(names)}
        result["random"][kind] = curves[kind][len(names):].mean(0)
        result["auc"][kind] = {name: float(areas[m]) for m, name in enumerate(names)}
        result["random_auc"][kind] = float(areas[len(names):].mean())
    return result
