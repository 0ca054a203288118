"""Image parameterizations: what the optimiser changes, and how that becomes an image in [0, 1].

Each entry of :data:`PARAMETERIZATIONS` builds a :class:`Parameterization` for ``n`` images of shape (C, H, W)
from one ``torch.Generator`` per image, so an image's start depends on its own seed and never on its position
in the batch. A parameterization maps its tensors to images (``images()``) and back (``assign(images)``), so
regularizers that edit the image directly (Yosinski et al.'s decay, blur and clipping) work with every one.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import torch

from compute.maximize.priors import PrincipalComponents
from compute.specs.maximize import PARAMETERIZATIONS, PRIOR_MAX_SIDE, suggested_parameterization  # noqa: F401

# Lucent's colour correlation (square root of ImageNet's colour covariance, columns normalised): optimising in this
# decorrelated space keeps the three channels from fighting each other.
_COLOR_CORRELATION_SQRT = torch.tensor([[0.26, 0.09, 0.02], [0.27, 0.00, -0.05], [0.27, -0.09, 0.03]])
_COLOR_CORRELATION = _COLOR_CORRELATION_SQRT / _COLOR_CORRELATION_SQRT.norm(dim=0).max()
_LOGIT_LIMIT = 1e-4  # images are clamped into (limit, 1 - limit) before the inverse sigmoid of ``assign``


@dataclass
class Parameterization:
    """Tensors to optimise and the maps between them and images (n, C, H, W) in [0, 1]."""

    tensors: list[torch.Tensor]
    images: Callable[[], torch.Tensor]
    assign: Callable[[torch.Tensor], None]
    project_after_step: bool = False  # pixels leave [0, 1] after a step; the render loop clamps them back
    after_step: Callable[[], None] | None = None  # a constraint on the tensors, applied after each optimiser step


def _random(generators: Sequence[torch.Generator], shape: tuple[int, ...], like: torch.Tensor, normal: bool) -> torch.Tensor:
    """One draw of ``shape`` per image, each from its own generator (drawn on the CPU, so any device agrees)."""
    draw = torch.randn if normal else torch.rand
    return torch.stack([draw(shape, generator=g, dtype=torch.float64) for g in generators]).to(like)


def _frequencies(height: int, width: int) -> torch.Tensor:
    """Radial frequency of each rfft2 coefficient, (H, W // 2 + 1), in cycles per pixel."""
    fy = torch.fft.fftfreq(height)[:, None]
    fx = torch.fft.rfftfreq(width)[None, :]
    return torch.sqrt(fx * fx + fy * fy)


def _colour_matrix(channels: int, like: torch.Tensor) -> torch.Tensor:
    """Lucent's colour decorrelation for RGB, the identity otherwise (grey images have nothing to decorrelate)."""
    matrix = _COLOR_CORRELATION if channels == 3 else torch.eye(channels)
    return matrix.to(like)


def _recorrelate(images: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    return torch.einsum("nchw,dc->ndhw", images, matrix)


def _logit(images: torch.Tensor) -> torch.Tensor:
    return torch.logit(images.clamp(_LOGIT_LIMIT, 1 - _LOGIT_LIMIT))


def pixels(shape, generators, like, init_noise: float = 0.1, center=0.5) -> Parameterization:
    """The image itself: ``center`` plus Gaussian noise of std ``init_noise``, clamped to [0, 1] after each step."""
    mean_colour = center_tensor(center, shape[0], like)
    value = (mean_colour + init_noise * _random(generators, shape, like, normal=True)).clamp(0, 1)
    value.requires_grad_(True)

    def assign(images: torch.Tensor) -> None:
        with torch.no_grad():
            value.copy_(images.clamp(0, 1))

    return Parameterization([value], lambda: value, assign, project_after_step=True)


def fourier(shape, generators, like, decay_power: float = 1.0, init_scale: float = 0.01, **_ignored) -> Parameterization:
    """Lucent's decorrelated Fourier image: a spectrum scaled by 1/frequency^decay_power, colour-recorrelated, sigmoid.

    Low frequencies get large steps and high ones small steps, so the optimiser finds smooth images first.
    """
    channels, height, width = shape
    scale = 1.0 / _frequencies(height, width).clamp(min=1.0 / max(height, width)) ** decay_power
    scale = scale.to(like)
    spectrum = init_scale * _random(generators, (channels, height, width // 2 + 1, 2), like, normal=True)
    spectrum.requires_grad_(True)
    matrix = _colour_matrix(channels, like)
    magic = 4.0  # Lucent's constant: keeps the initial image's values in the sigmoid's linear range

    def images() -> torch.Tensor:
        signal = torch.fft.irfft2(torch.view_as_complex(spectrum) * scale, s=(height, width), norm="ortho") / magic
        return torch.sigmoid(_recorrelate(signal, matrix))

    def assign(new_images: torch.Tensor) -> None:
        with torch.no_grad():
            signal = _recorrelate(_logit(new_images), torch.linalg.inv(matrix)) * magic
            spectrum.copy_(torch.view_as_real(torch.fft.rfft2(signal, norm="ortho") / scale))

    return Parameterization([spectrum], images, assign)


def magnitude_spectrum(images: torch.Tensor) -> torch.Tensor:
    """Mean Fourier magnitude (C, H, W // 2 + 1) of ``images`` (N, C, H, W), each image centred first: MACO's template."""
    centred = images - images.mean(dim=(2, 3), keepdim=True)
    return torch.fft.rfft2(centred, norm="ortho").abs().mean(dim=0)


def power_law_magnitude(shape: tuple[int, int, int]) -> torch.Tensor:
    """A natural-image magnitude template 1/f (C, H, W // 2 + 1), used when no data set's spectrum is given."""
    channels, height, width = shape
    magnitude = 1.0 / _frequencies(height, width).clamp(min=1.0 / max(height, width))
    magnitude[0, 0] = 0.0  # the mean is set by the standardisation, not the spectrum
    return magnitude.expand(channels, -1, -1).clone()


def magnitude_constrained(shape, generators, like, magnitude=None, **_ignored) -> Parameterization:
    """MACO (Fel et al. 2023): a fixed natural-image magnitude spectrum, only the phase is optimised.

    image = sigmoid(recorrelate(standardise(irfft2(magnitude * e^{i phase})))). ``magnitude`` (C, H, W//2+1)
    defaults to a 1/f template; pass :func:`magnitude_spectrum` of the data set for that data's statistics.
    """
    channels, height, width = shape
    template = power_law_magnitude(shape) if magnitude is None else torch.as_tensor(magnitude)
    template = template.to(like)
    phase = (2 * _random(generators, (channels, height, width // 2 + 1), like, normal=False) - 1) * math.pi
    phase.requires_grad_(True)
    matrix = _colour_matrix(channels, like)

    def images() -> torch.Tensor:
        signal = torch.fft.irfft2(torch.polar(template, phase), s=(height, width), norm="ortho")
        mean = signal.mean(dim=(1, 2, 3), keepdim=True)
        std = signal.std(dim=(1, 2, 3), keepdim=True) + 1e-8
        return torch.sigmoid(_recorrelate((signal - mean) / std, matrix))

    def assign(new_images: torch.Tensor) -> None:
        # A projection: keep the fixed magnitude, take the phase of the edited image.
        with torch.no_grad():
            signal = _recorrelate(_logit(new_images), torch.linalg.inv(matrix))
            phase.copy_(torch.angle(torch.fft.rfft2(signal, norm="ortho")))

    return Parameterization([phase], images, assign)


def pca(shape, generators, like, components: PrincipalComponents | None = None, count: int = 32,
        init_scale: float = 0.1, radius_scale: float = 1.0, **_ignored) -> Parameterization:
    """Images in the span of the data's leading principal components (a prior from the data, as in Mahendran and
    Vedaldi's natural pre-images or Wei et al.'s data-driven priors): image = mean + components^T (scales * z),
    clamped to [0, 1], with the ``count`` leading components (:func:`~compute.maximize.priors.principal_components`).

    ``z`` are whitened coordinates (one unit = one standard deviation of the data along a component), so Adam steps
    every component at the data's own scale, as Lucent's Fourier steps by a natural image's spectrum; after each step
    ``z`` is pulled back into the ball of ``radius_scale`` times the data's median whitened length, so the image
    never becomes less typical of the data than a typical image is. ``init_scale``: the start's distance from the
    mean image, as a fraction of that radius.
    """
    if components is None:
        raise ValueError("the pca parameterization needs the data set's principal components: pass "
                         "components=principal_components(images) (compute.maximize.priors)")
    count = max(1, min(int(count), len(components.scales)))
    if tuple(components.mean.shape) != tuple(shape):
        raise ValueError(f"principal components of {tuple(components.mean.shape)} images for images of {tuple(shape)}")
    mean = components.mean.to(like).reshape(1, -1)
    basis = (components.components[:count] * components.scales[:count, None]).to(like)  # (K, D): whitened -> pixels
    radius = components.radius_of(count) * radius_scale
    start = _random(generators, (count,), like, normal=True)
    start = start / start.norm(dim=1, keepdim=True).clamp_min(1e-12) * radius * init_scale
    z = start.clone().requires_grad_(True)

    def images() -> torch.Tensor:
        return (mean + z @ basis).reshape(len(z), *shape).clamp(0, 1)

    def assign(new_images: torch.Tensor) -> None:
        # The projection of the edited image on the span (least squares), then back into the ball.
        with torch.no_grad():
            coordinates = torch.linalg.lstsq(basis.T, (new_images.reshape(len(z), -1) - mean).T).solution.T
            z.copy_(coordinates)
            _into_ball(z, radius)

    def after_step() -> None:
        with torch.no_grad():
            _into_ball(z, radius)

    return Parameterization([z], images, assign, after_step=after_step)


def _into_ball(z: torch.Tensor, radius: float) -> None:
    """Scale each row of ``z`` whose length exceeds ``radius`` back onto the sphere (in place)."""
    lengths = z.norm(dim=1, keepdim=True)
    z.mul_(torch.where(lengths > radius, radius / lengths.clamp_min(1e-12), torch.ones_like(lengths)))


def center_tensor(center, channels: int, like: torch.Tensor) -> torch.Tensor:
    """``center`` (a number or one per channel) as a (C, 1, 1) tensor."""
    values = torch.as_tensor(center, dtype=torch.float64).flatten()
    if values.numel() not in (1, channels):
        raise ValueError(f"center needs 1 or {channels} values, got {values.numel()}")
    return values.expand(channels).reshape(channels, 1, 1).to(like)




def build(name: str, shape, generators, like, center=0.5, magnitude=None, components=None,
          **params) -> Parameterization:
    """The parameterization ``name`` for len(generators) images of ``shape`` on ``like``'s device and dtype.
    ``magnitude``: MACO's spectrum; ``components``: the data's :class:`PrincipalComponents` for ``pca``."""
    if name not in PARAMETERIZATIONS:
        raise ValueError(f"unknown parameterization {name!r}; choose one of {', '.join(PARAMETERIZATIONS)}")
    method = PARAMETERIZATIONS[name]
    values = method.coerce(params)
    if name == "pixels":
        values["center"] = center
    if name == "maco":
        values["magnitude"] = magnitude
    if name == "pca":
        values["components"] = components
    return method.function(tuple(shape), generators, like, **values)
