"""Gradient attributions: saliency, SmoothGrad, integrated gradients and Grad-CAM, each a :class:`~compute.passes.Plan`
(the points whose gradient it needs, and how its map follows) run by :mod:`compute.passes`, alone or batched with
other methods and models.

Images are ``(C, H, W)`` float tensors in the data range; models map ``(B, C, H, W)`` to logits ``(B, K)`` and
are in eval mode, so items of a batch do not influence each other and results do not depend on batch size.
Results come back as detached CPU float32 tensors.
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from compute import layers, passes, rectifiers
from compute.device import activation_floats, batch_size_for, model_device
from compute.passes import Plan, Points
from compute.progress import Progress



def check_image(image: torch.Tensor) -> None:
    """Raise ValueError unless ``image`` is a single ``(C, H, W)`` image."""
    if image.ndim != 3:
        raise ValueError(f"expected one image of shape (C, H, W), got shape {tuple(image.shape)}")


def gradient_batch_size(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """Items per forward+backward pass that fit in a quarter of the free memory of the model's device."""
    return batch_size_for(model_device(model), activation_floats(model, input_shape), with_backward=True)


def _gradient_batches(
    model: torch.nn.Module,
    images: torch.Tensor,
    target: int | torch.Tensor,
    batch_size: int | None,
    progress: Progress | None,
) -> Iterator[tuple[int, int, torch.Tensor]]:
    """(start, stop, d score / d images[start:stop]) batch by batch, the gradient on the model's device.

    Each batch takes one backward pass of the summed target scores; that is exact because eval-mode items are
    independent. ``images`` may live on any device; each batch moves to the model's.
    """
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got shape {tuple(images.shape)}")
    device = model_device(model)
    count = images.shape[0]
    targets = torch.as_tensor(target, device=device).long().expand(count)
    batch = batch_size or gradient_batch_size(model, tuple(images.shape[1:]))
    # A caller inside torch.no_grad (a UI callback, say) must still get gradients.
    with torch.enable_grad():
        for start in range(0, count, batch):
            stop = min(start + batch, count)
            x = images[start:stop].detach().to(device, torch.float32).requires_grad_(True)
            scores = model(x).gather(1, targets[start:stop, None]).sum()
            # autograd.grad, not backward: parameters' .grad stay untouched.
            (grad,) = torch.autograd.grad(scores, x)
            yield start, stop, grad.detach()
            if progress is not None:
                progress(stop / count, f"gradients {stop}/{count}")


def input_gradients(
    model: torch.nn.Module,
    images: torch.Tensor,
    target: int | torch.Tensor,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Gradient of the target logit with respect to each image: ``(B, C, H, W)`` -> ``(B, C, H, W)`` on the CPU.

    ``target`` is one class for all images or a ``(B,)`` tensor of classes.
    """
    grads = torch.empty(images.shape, dtype=torch.float32)
    for start, stop, grad in _gradient_batches(model, images, target, batch_size, progress):
        grads[start:stop] = grad.cpu()
    return grads


def _reduce_channels(grads: torch.Tensor, absolute: bool) -> torch.Tensor:
    """``(..., C, H, W)`` -> ``(..., H, W)``: max of |grad| over channels, or the signed channel sum."""
    return grads.abs().amax(-3) if absolute else grads.sum(-3)


def saliency_plan(model: torch.nn.Module, image: torch.Tensor, target: int, absolute: bool = True) -> Plan:
    """:func:`saliency` as a plan: the gradient at the image itself."""
    check_image(image)
    x = image.detach().to(model_device(model), torch.float32)
    return Plan(lambda found: _reduce_channels(found.gradients[0], absolute).float().cpu(),
                gradient_points=Points.of(x[None]))


def saliency(
    model: torch.nn.Module,
    image: torch.Tensor,
    target: int,
    absolute: bool = True,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Simonyan et al. 2014 saliency map ``(H, W)`` of ``image (C, H, W)`` for class ``target``.

    absolute: max over channels of |d score / d x|; otherwise the signed gradient summed over channels.
    ``batch_size`` is accepted for a uniform interface (there is only one image).
    """
    return passes.run(model, saliency_plan(model, image, target, absolute), target, batch_size, progress)


def smoothgrad_noise(image: torch.Tensor, samples: int, sigma: float, seed: int = 0,
                     device: torch.device | str | None = None) -> torch.Tensor:
    """The ``(samples, C, H, W)`` noise :func:`smoothgrad` adds to ``image``, drawn on ``device`` (default: the
    image's) from a generator seeded with ``seed``: N(0, (sigma * (max - min of image))^2), or N(0, sigma^2) for a
    constant image. The same seed gives the same noise on one kind of device (CPU and CUDA generators differ)."""
    device = torch.device(device) if device is not None else image.device
    value_range = float(image.max() - image.min())
    std = sigma * value_range if value_range > 0 else sigma
    generator = torch.Generator(device=device).manual_seed(seed)
    return torch.randn((samples, *image.shape), generator=generator, device=device) * std


def smoothgrad_plan(model: torch.nn.Module, image: torch.Tensor, target: int, samples: int = 32, sigma: float = 0.15,
                    absolute: bool = True, seed: int = 0) -> Plan:
    """:func:`smoothgrad` as a plan: the gradients at ``samples`` noisy copies, drawn on the model's device."""
    check_image(image)
    if samples < 1:
        raise ValueError(f"samples must be at least 1, got {samples}")
    x = image.detach().to(model_device(model), torch.float32)
    noisy = x + smoothgrad_noise(x, samples, sigma, seed)
    return Plan(lambda found: (_reduce_channels(found.gradients, absolute).sum(0) / samples).float().cpu(),
                gradient_points=Points.of(noisy))


def smoothgrad(
    model: torch.nn.Module,
    image: torch.Tensor,
    target: int,
    samples: int = 32,
    sigma: float = 0.15,
    absolute: bool = True,
    seed: int = 0,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Smilkov et al. 2017 SmoothGrad ``(H, W)``: saliency averaged over ``samples`` noisy copies of ``image``.

    The noise (:func:`smoothgrad_noise`) is drawn up front on the model's device, so the result does not depend on
    ``batch_size`` and nothing crosses the bus but the image and the final map. absolute: the mean of the absolute
    saliency maps; otherwise the mean signed gradient summed over channels.
    """
    plan = smoothgrad_plan(model, image, target, samples, sigma, absolute, seed)
    return passes.run(model, plan, target, batch_size, progress)


def _baseline_image(image: torch.Tensor, baseline: str | float) -> torch.Tensor:
    """The path's start ``(C, H, W)``: zeros, the per-channel mean of ``image``, or a constant."""
    if baseline == "zero":
        return torch.zeros_like(image)
    if baseline == "mean":
        return image.mean((1, 2), keepdim=True).expand_as(image).clone()
    if isinstance(baseline, str):
        raise ValueError(f"unknown baseline {baseline!r}: use 'zero', 'mean' or a number")
    return torch.full_like(image, float(baseline))


def _integrated_gradients_plan(image: torch.Tensor, steps: int, baseline: str | float, summed: bool) -> Plan:
    """The path points of :func:`integrated_gradients_attributions`; ``summed``: the map summed over channels."""
    check_image(image)
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    x = image.detach().cpu().float()
    start = _baseline_image(x, baseline)
    nodes, weights = np.polynomial.legendre.leggauss(steps)
    # leggauss integrates over [-1, 1]; map to alphas in [0, 1].
    alphas = torch.tensor((nodes + 1) / 2, dtype=torch.float32)
    weights = torch.tensor(weights / 2, dtype=torch.float32)
    path = start + alphas[:, None, None, None] * (x - start)

    def finish(found: passes.Evaluated) -> torch.Tensor:
        attributions = (x - start) * torch.einsum("s,schw->chw", weights, found.gradients.float().cpu())
        return attributions.sum(0) if summed else attributions

    return Plan(finish, gradient_points=Points.of(path))


def integrated_gradients_plan(model: torch.nn.Module, image: torch.Tensor, target: int, steps: int = 32,
                              baseline: str | float = "zero") -> Plan:
    """:func:`integrated_gradients` as a plan: the gradients at the quadrature points of the path."""
    return _integrated_gradients_plan(image, steps, baseline, summed=True)


def integrated_gradients_attributions(
    model: torch.nn.Module,
    image: torch.Tensor,
    target: int,
    steps: int = 32,
    baseline: str | float = "zero",
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Sundararajan et al. 2017 integrated gradients per input value, ``(C, H, W)``.

    The path integral from the baseline to ``image`` uses ``steps``-point Gauss-Legendre quadrature (as captum
    does by default); all path points go through the model in batches. The attributions sum to about
    logit_target(image) - logit_target(baseline) (completeness).
    """
    plan = _integrated_gradients_plan(image, steps, baseline, summed=False)
    return passes.run(model, plan, target, batch_size, progress)


def integrated_gradients(
    model: torch.nn.Module,
    image: torch.Tensor,
    target: int,
    steps: int = 32,
    baseline: str | float = "zero",
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Signed integrated-gradients map ``(H, W)``: :func:`integrated_gradients_attributions` summed over channels."""
    return passes.run(model, integrated_gradients_plan(model, image, target, steps, baseline), target, batch_size,
                      progress)


# ---------------------------------------------------------------------------------------------- layers

def last_conv_block(model: torch.nn.Module, input_shape: tuple[int, ...] | None = None) -> str:
    """The activated output of the last conv block: the first activation call (a rectifier such as nn.ReLU or
    nn.ReLU6, or another activation such as SiLU: :func:`compute.rectifiers.is_activation`) with a 4-D output after
    the last nn.Conv2d call in the forward (``layer4.1.relu_1`` on resnet18, after ``conv2`` and ``bn2``;
    ``features.18.2``, a ReLU6, on MobileNetV2), else that conv itself.

    Grad-CAM is meant for a block's activated feature maps; a conv's raw output (before its BatchNorm, on a ResNet)
    can be negative everywhere. The call order comes from one forward of an ``input_shape`` (C, H, W) input, see
    :func:`compute.layers.call_sites`.
    """
    sites = layers.call_sites(model, input_shape)
    convs = [k for k, site in enumerate(sites) if isinstance(site.module, torch.nn.Conv2d)]
    if not convs:
        raise ValueError("the model has no nn.Conv2d layer; name a layer explicitly")
    after = [site for site in sites[convs[-1] + 1:] if rectifiers.is_activation(site.module) and site.output_ndim == 4]
    return after[0].name if after else sites[convs[-1]].name


def find_layer(model: torch.nn.Module, layer: str, input_shape: tuple[int, ...] | None = None) -> str:
    """The call-site name Grad-CAM uses for ``layer`` ("" = :func:`last_conv_block`); ValueError naming the conv
    layers for an unknown name."""
    if layer == "":
        return last_conv_block(model, input_shape)
    try:
        layers.parse(model, layer)
    except layers.LayerError:
        convs = layers.conv_layers(model)
        raise layers.LayerError(f"unknown layer {layer!r}; conv layers of this model: {', '.join(convs) or 'none'}") \
            from None
    return layer


@contextmanager
def capture_output(model: torch.nn.Module, layer: str,
                   input_shape: tuple[int, ...] | None = None) -> Iterator[list[torch.Tensor]]:
    """Within the block, the output of call site ``layer`` of each forward is appended to the yielded list (the
    same tensor :func:`compute.activations.extract` reads); the hooks go on exit.

    The rest of the network gets a copy, so an in-place op downstream (ReLU(inplace=True) after a conv) can
    neither overwrite the captured activation nor move its place in the autograd graph.
    """
    captured: list[torch.Tensor] = []
    name = find_layer(model, layer, input_shape)

    def keep(_model: torch.nn.Module, _inputs: tuple, _output) -> None:
        if name in outputs:
            captured.append(outputs[name])

    with layers.capture(model, [name]) as outputs:
        handle = model.register_forward_hook(keep)
        try:
            yield captured
        finally:
            handle.remove()


# ---------------------------------------------------------------------------------------------- Grad-CAM

def gradcam_plan(model: torch.nn.Module, image: torch.Tensor, target: int, layer: str = "") -> Plan:
    """:func:`gradcam` as a plan: the layer's output at the image and the score's gradient there."""
    check_image(image)
    name = find_layer(model, layer, tuple(image.shape))
    x = image.detach().to(model_device(model), torch.float32)

    def finish(found: passes.Evaluated) -> torch.Tensor:
        activation, grad = found.activation, found.activation_gradient
        if activation.ndim != 4:
            shape = (1, *activation.shape[1:])
            raise ValueError(f"Grad-CAM needs a (B, K, h, w) activation; layer {layer!r} gives {shape}")
        alphas = grad[0].mean((1, 2))
        cam = F.relu(torch.einsum("k,khw->hw", alphas, activation[0]))
        cam = F.interpolate(cam[None, None], size=tuple(image.shape[1:]), mode="bilinear", align_corners=False)
        return cam[0, 0].float().cpu()

    return Plan(finish, gradient_points=Points.of(x[None]), layer=name)


def gradcam(
    model: torch.nn.Module,
    image: torch.Tensor,
    target: int,
    layer: str = "",
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Selvaraju et al. 2017 Grad-CAM ``(H, W)`` at the layer named ``layer`` ("" = :func:`last_conv_block`).

    With activations A ``(K, h, w)`` at that layer, alpha_k = spatial mean of d score / d A_k and the map is
    ReLU(sum_k alpha_k A_k), bilinearly upsampled to the image size. ``batch_size`` is accepted for a uniform
    interface (there is only one image).
    """
    return passes.run(model, gradcam_plan(model, image, target, layer), target, batch_size, progress)
