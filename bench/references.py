"""What our attribution code is compared with: naive loops, captum, and the hardware limit (one plain batch).

Every function takes the model (eval mode, on its device), one image ``(C, H, W)`` on the CPU and a target
class, and does the same amount of model work as the routine it is a reference for.
"""
from __future__ import annotations

import torch
from torch import nn

from compute.device import model_device


# ---------------------------------------------------------------------------------------------- occlusion

def occlusion_naive(model: nn.Module, image: torch.Tensor, target: int, box: int = 8, stride: int = 1) -> torch.Tensor:
    """Probability drop ``(rows, cols)`` with one model call per box: the same boxes (centred on the grid
    0, stride, ... and clipped, filled with the image's per-channel mean) as :func:`compute.attribution.occlusion`."""
    device = model_device(model)
    x = image.to(device, torch.float32)
    fill = x.mean((1, 2), keepdim=True)
    channels, height, width = x.shape
    with torch.no_grad():
        clean = model(x[None]).softmax(1)[0, target]
        rows, cols = range(0, height, stride), range(0, width, stride)
        drops = torch.empty(len(rows), len(cols), device=device)
        for i, r in enumerate(rows):
            r0, r1 = max(0, r - box // 2), min(height, r - box // 2 + box)
            for j, c in enumerate(cols):
                c0, c1 = max(0, c - box // 2), min(width, c - box // 2 + box)
                copy = x.clone()
                copy[:, r0:r1, c0:c1] = fill
                drops[i, j] = clean - model(copy[None]).softmax(1)[0, target]
    return drops.cpu()


def occlusion_captum(model: nn.Module, image: torch.Tensor, target: int, box: int, stride: int,
                     perturbations_per_eval: int = 1) -> torch.Tensor:
    """captum's Occlusion: its windows start at the corner and stay inside the image (not centred), so it
    evaluates ceil((size - box) / stride) + 1 positions per axis; the fill is the image mean, like ours."""
    from captum.attr import Occlusion

    x = image.to(model_device(model), torch.float32)[None]
    return Occlusion(model).attribute(
        x, sliding_window_shapes=(image.shape[0], box, box), strides=(image.shape[0], stride, stride),
        target=target, baselines=float(image.mean()), perturbations_per_eval=perturbations_per_eval,
    )


def captum_occlusion_windows(size: int, box: int, stride: int) -> int:
    """How many windows captum's Occlusion evaluates on a square image (its formula)."""
    per_axis = -(-(size - box) // stride) + 1
    return per_axis * per_axis


def occlusion_copies(image: torch.Tensor, stride: int, device: torch.device) -> torch.Tensor:
    """As many copies of ``image`` as :func:`compute.attribution.occlusion` classifies, already on ``device``."""
    count = len(range(0, image.shape[1], stride)) * len(range(0, image.shape[2], stride))
    return image.to(device, torch.float32)[None].repeat(count, 1, 1, 1).contiguous()


def forward_limit(model: nn.Module, batch: torch.Tensor, batch_size: int) -> None:
    """The limit for occlusion: plain forwards of ``batch`` (already on the device) under no_grad, in chunks."""
    with torch.no_grad():
        for start in range(0, len(batch), batch_size):
            model(batch[start:start + batch_size])


# ---------------------------------------------------------------------------------------------- gradients

def backward_limit(model: nn.Module, batch: torch.Tensor, target: int) -> torch.Tensor:
    """The limit for the gradient methods: one forward+backward of ``batch`` (already on the device)."""
    with torch.enable_grad():
        x = batch.detach().requires_grad_(True)
        score = model(x)[:, target].sum()
        (grad,) = torch.autograd.grad(score, x)
    return grad


def smoothgrad_noise(image: torch.Tensor, samples: int, sigma: float, seed: int = 0) -> torch.Tensor:
    """The noise :func:`compute.gradients.smoothgrad` draws (same generator, seed and scale)."""
    value_range = float(image.max() - image.min())
    std = sigma * value_range if value_range > 0 else sigma
    generator = torch.Generator().manual_seed(seed)
    return torch.randn((samples, *image.shape), generator=generator) * std


def smoothgrad_naive(model: nn.Module, image: torch.Tensor, target: int, samples: int = 50,
                     sigma: float = 0.15) -> torch.Tensor:
    """SmoothGrad with one forward+backward per noisy copy; the same noise and reduction as ours."""
    device = model_device(model)
    noise = smoothgrad_noise(image, samples, sigma)
    total = torch.zeros(image.shape[1:], device=device)
    with torch.enable_grad():
        for k in range(samples):
            x = (image + noise[k]).to(device).requires_grad_(True)
            (grad,) = torch.autograd.grad(model(x[None])[0, target], x)
            total += grad.abs().amax(0)
    return (total / samples).cpu()


def smoothgrad_captum(model: nn.Module, image: torch.Tensor, target: int, samples: int = 50,
                      sigma: float = 0.15) -> torch.Tensor:
    """captum ``NoiseTunnel(Saliency)`` at its default nt_samples_batch_size (None: all samples in one batch)."""
    from captum.attr import NoiseTunnel, Saliency

    x = image.to(model_device(model), torch.float32)[None]
    return NoiseTunnel(Saliency(model)).attribute(x, nt_type="smoothgrad", nt_samples=samples, stdevs=sigma,
                                                  target=target)


def integrated_gradients_captum(model: nn.Module, image: torch.Tensor, target: int, steps: int = 32) -> torch.Tensor:
    """captum IntegratedGradients (Gauss-Legendre, zero baseline), default internal_batch_size (None: one batch)."""
    from captum.attr import IntegratedGradients

    x = image.to(model_device(model), torch.float32)[None]
    return IntegratedGradients(model).attribute(x, target=target, n_steps=steps)
