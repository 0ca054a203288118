"""Which activation modules are rectifiers, in one place: Grad-CAM's default layer, the deconvnet and guided-backprop
backward rules and the dead-channel table all ask here.

A *rectifier* sets every negative input to exactly zero and passes positive ones unchanged up to an optional ceiling:
``nn.ReLU`` (no ceiling), ``nn.ReLU6`` (ceiling 6, MobileNetV2's) and any ``nn.Hardtanh`` with ``min_val == 0``
(ReLU6 is one). After a rectifier "never fires" is final, and it is the unit the deconvnet (Zeiler & Fergus 2014)
and guided-backprop (Springenberg et al. 2015) rules are defined on. A capped rectifier is read as a ReLU followed by
a cap, min(relu(x), c): the ReLU part takes the method's rule, the cap keeps its ordinary gradient (zero where the
unit saturated, as max pooling keeps its switches). Without a ceiling this is exactly the ReLU rule.

Other activations let negative values through (LeakyReLU, ELU, SELU, Tanh) or are smooth and not monotonic (SiLU,
GELU, Mish, Hardswish):

- Grad-CAM's default layer counts them like rectifiers: the first activation after the last conv is the block's
  output (EfficientNet's SiLU, ConvNeXt's GELU); Grad-CAM rectifies its weighted sum itself, so it does not need a
  rectified layer, only not the conv's raw output before its normalisation.
- Deconvnet and guided backprop refuse a model that has one (:class:`NotRectifiedError`, naming the module). Their
  rules say nothing about such a unit: treating a SiLU as a ReLU would invert a network that is not the model, and
  letting its ordinary gradient through (what happens to functional calls, which no hook sees) would silently mix
  the plain gradient into a picture labelled "guided". Saliency, SmoothGrad and integrated gradients work for them.

Gates and outputs (Sigmoid, Hardsigmoid, Softmax: squeeze-excitation scales, probabilities) are neither: they keep
their ordinary gradient in every method.
"""
from __future__ import annotations

import math
from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn

from compute.errors import UserError

# Activations that are not rectifiers: they pass negative values or are not monotonic. nn.Hardtanh is here too; one
# whose min_val is 0 (nn.ReLU6) is a rectifier, checked first.
OTHER_ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.LeakyReLU, nn.PReLU, nn.RReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish, nn.Hardswish, nn.Softplus,
    nn.Tanh, nn.Hardtanh, nn.Softsign, nn.Tanhshrink, nn.Hardshrink, nn.Softshrink,
)


class NotRectifiedError(UserError):
    """A method defined for rectifier networks asked of a model with another activation; says which and what to use."""


def ceiling(module: nn.Module) -> float | None:
    """The rectifier's cap (``inf`` for nn.ReLU, 6 for nn.ReLU6, ``max_val`` for a Hardtanh from 0), or None when
    ``module`` is not a rectifier."""
    if isinstance(module, nn.ReLU):
        return math.inf
    if isinstance(module, nn.Hardtanh) and module.min_val == 0 and module.max_val > 0:
        return float(module.max_val)
    return None


def is_rectifier(module: nn.Module) -> bool:
    """nn.ReLU, nn.ReLU6, or an nn.Hardtanh clipping at 0 from below."""
    return ceiling(module) is not None


def is_activation(module: nn.Module) -> bool:
    """A rectifier or one of :data:`OTHER_ACTIVATIONS`: what ends a conv block (Grad-CAM's default layer)."""
    return is_rectifier(module) or isinstance(module, OTHER_ACTIVATIONS)


def other_activations(model: nn.Module) -> list[tuple[str, str]]:
    """(module path, class name) of every activation module of ``model`` that is not a rectifier, in definition order."""
    return [(name, type(module).__name__) for name, module in model.named_modules()
            if isinstance(module, OTHER_ACTIVATIONS) and not is_rectifier(module)]


def require_rectifiers(model: nn.Module, method: str) -> None:
    """NotRectifiedError when ``model`` has an activation module other than a rectifier (see the module docstring)."""
    others = other_activations(model)
    if others:
        kinds = sorted({kind for _name, kind in others})
        named = ", ".join(f"{name} ({kind})" for name, kind in others[:3]) + (" ..." if len(others) > 3 else "")
        raise NotRectifiedError(
            f"{method} is defined for networks whose activations are rectifiers (ReLU, ReLU6); this model also uses "
            f"{', '.join(kinds)}: {named}. Its rule has no meaning for those units; use saliency, SmoothGrad or "
            "integrated gradients for this model.")


class _RectifierBackward(torch.autograd.Function):
    """clamp(x, 0, cap) forward; backward: the cap's ordinary gradient, then only the positive part (deconvnet), and
    only where x > 0 (guided backprop)."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, guided: bool, cap: float) -> torch.Tensor:
        ctx.guided, ctx.cap = guided, cap
        ctx.save_for_backward(x)
        return x.clamp(min=0) if math.isinf(cap) else x.clamp(0, cap)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        (x,) = ctx.saved_tensors
        if not math.isinf(ctx.cap):
            grad_out = grad_out * (x < ctx.cap)
        grad_in = grad_out.clamp(min=0)
        return (grad_in * (x > 0) if ctx.guided else grad_in), None, None


@contextmanager
def backward_rule(model: nn.Module, guided: bool) -> Iterator[None]:
    """Within the block every rectifier module of ``model`` backpropagates by the deconvnet rule (``guided`` False:
    relu of the gradient) or the guided-backprop rule (that, and only where the forward input was positive); the
    forward is unchanged. Functional calls (``F.relu``) are not modules and keep their ordinary gradient.

    inplace is switched off meanwhile because the rule needs the rectifier's untouched input; hooks and inplace
    flags are restored on exit, also when the block raises.
    """
    found = [module for module in model.modules() if is_rectifier(module)]
    inplace = [getattr(module, "inplace", False) for module in found]
    handles = []
    try:
        for module in found:
            if hasattr(module, "inplace"):
                module.inplace = False
            cap = ceiling(module)
            handles.append(module.register_forward_hook(
                lambda _m, inputs, _out, cap=cap: _RectifierBackward.apply(inputs[0], guided, cap)))
        yield
    finally:
        for handle in handles:
            handle.remove()
        for module, was_inplace in zip(found, inplace):
            if hasattr(module, "inplace"):
                module.inplace = was_inplace
