"""Attribution methods as what they need from a model, and one runner that serves many methods on many models from
shared batches.

Every method here is a few model evaluations and a reduction. Saliency, SmoothGrad and integrated gradients need
the gradient of the target score at some points (the image; noisy copies of it; a path from a baseline); Grad-CAM
needs, at the image, one layer's output and the score's gradient there; occlusion needs p(target) at occluded copies.
A :class:`Plan` names those points and how the method's maps follow from what they gave. :func:`evaluate` stacks the
points of every plan and gives each model two batched passes (gradients, then probabilities) instead of one or two
per method: the sanity check's ten maps (five methods, trained and untrained) cost four passes, not sixteen. The
single-method functions (``gradients.saliency``, ``attribution.occlusion_probability_map``, ...) run their own plan
alone, so a map is the same whether it is computed alone or together with others.

Images are ``(C, H, W)``; points are built on the model's device; results are CPU float32 tensors (or floats).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from compute import layers
from compute.device import activation_floats, batch_size_for, model_device
from compute.progress import Progress


@dataclass(frozen=True)
class Points:
    """``count`` model inputs, made ``make(start, stop) -> (stop - start, C, H, W)`` on demand: occlusion's copies of a
    large image are built one batch at a time, never all at once."""

    count: int
    make: Callable[[int, int], torch.Tensor]

    @staticmethod
    def of(tensor: torch.Tensor) -> "Points":
        return Points(len(tensor), lambda start, stop: tensor[start:stop])


@dataclass
class Evaluated:
    """What the passes gave one plan: ``gradients`` (P, C, H, W) of the target score at its gradient points; with a
    ``layer``, that layer's ``activation`` (P, ...) and the score's ``activation_gradient`` there; ``probabilities``
    (Q,) p(target) at its probability points. Tensors on the model's device."""

    gradients: torch.Tensor | None = None
    activation: torch.Tensor | None = None
    activation_gradient: torch.Tensor | None = None
    probabilities: torch.Tensor | None = None


@dataclass(frozen=True)
class Plan:
    """One method on one image: the points it needs and ``finish(evaluated) -> maps``, the method's result (a tensor,
    or a dict of tensors and numbers, as the method returns it)."""

    finish: Callable[[Evaluated], object]
    gradient_points: Points | None = None
    layer: str | None = None  # a call-site name: record its output and gradient at the gradient points
    probability_points: Points | None = None


def _slices(plans: Sequence[Plan], kind: str) -> list[tuple[int, int]]:
    """(start, stop) of each plan's points of ``kind`` in the stack of all plans' points."""
    spans, start = [], 0
    for plan in plans:
        points = getattr(plan, kind)
        count = points.count if points is not None else 0
        spans.append((start, start + count))
        start += count
    return spans


def _stacked(plans: Sequence[Plan], kind: str, spans: list[tuple[int, int]], start: int, stop: int,
             device: torch.device) -> torch.Tensor:
    """Rows ``start:stop`` of the stack of every plan's points of ``kind``, on ``device``."""
    pieces = []
    for plan, (first, last) in zip(plans, spans):
        low, high = max(start, first), min(stop, last)
        if low < high:
            pieces.append(getattr(plan, kind).make(low - first, high - first).to(device, torch.float32))
    return torch.cat(pieces) if len(pieces) > 1 else pieces[0]


def _gradient_pass(model: nn.Module, plans: Sequence[Plan], target: int, batch_size: int | None,
                   report: Callable[[int], None]) -> list[Evaluated]:
    """One forward and backward per batch of every plan's gradient points; a layer's output (and its gradient) kept
    only for the rows of the plans that name that layer."""
    device = model_device(model)
    spans = _slices(plans, "gradient_points")
    total = spans[-1][1] if spans else 0
    found = [Evaluated() for _ in plans]
    if total == 0:
        return found
    wanted = sorted({plan.layer for plan in plans if plan.layer and plan.gradient_points is not None})
    first = next(plan.gradient_points for plan in plans if plan.gradient_points is not None and plan.gradient_points.count)
    shape = tuple(first.make(0, 1).shape[1:])
    batch = batch_size or batch_size_for(device, activation_floats(model, shape), with_backward=True)
    gradients = torch.empty((total, *shape), device=device)
    kept: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in plans]  # per plan: (activation, gradient) rows
    # A caller inside torch.no_grad (a UI callback, say) must still get gradients.
    with torch.enable_grad(), layers.capture(model, wanted) as outputs:
        for start in range(0, total, batch):
            stop = min(start + batch, total)
            x = _stacked(plans, "gradient_points", spans, start, stop, device).detach().requires_grad_(True)
            logits = model(x)
            layers.missing(model, wanted, outputs)
            if not 0 <= int(target) < logits.shape[1]:
                raise IndexError(f"class {target} is out of range: the model has {logits.shape[1]} outputs")
            targets = torch.full((stop - start, 1), int(target), device=device, dtype=torch.long)
            # One backward of the summed scores is exact: eval-mode items do not influence each other.
            # autograd.grad, not backward: parameters' .grad stay untouched.
            grads = torch.autograd.grad(logits.gather(1, targets).sum(), [x] + [outputs[name] for name in wanted])
            gradients[start:stop] = grads[0].detach()
            by_layer = {name: (outputs[name].detach(), grad.detach()) for name, grad in zip(wanted, grads[1:])}
            for k, (plan, (low, high)) in enumerate(zip(plans, spans)):
                if plan.layer and max(low, start) < min(high, stop):
                    activation, gradient = by_layer[plan.layer]
                    rows = slice(max(low, start) - start, min(high, stop) - start)
                    kept[k].append((activation[rows], gradient[rows]))
            report(stop - start)
    for k, (low, high) in enumerate(spans):
        found[k].gradients = gradients[low:high]
        if kept[k]:
            found[k].activation = torch.cat([activation for activation, _ in kept[k]])
            found[k].activation_gradient = torch.cat([gradient for _, gradient in kept[k]])
    return found


def _probability_pass(model: nn.Module, plans: Sequence[Plan], target: int, batch_size: int | None,
                      found: list[Evaluated], report: Callable[[int], None]) -> None:
    """p(target) at every plan's probability points, one forward per batch."""
    device = model_device(model)
    spans = _slices(plans, "probability_points")
    total = spans[-1][1] if spans else 0
    if total == 0:
        return
    first = next(plan.probability_points for plan in plans
                 if plan.probability_points is not None and plan.probability_points.count)
    shape = tuple(first.make(0, 1).shape[1:])
    batch = batch_size or batch_size_for(device, activation_floats(model, shape))
    probabilities = torch.empty(total, device=device)
    with torch.no_grad():
        for start in range(0, total, batch):
            stop = min(start + batch, total)
            logits = model(_stacked(plans, "probability_points", spans, start, stop, device))
            probabilities[start:stop] = logits.float().softmax(1)[:, int(target)]
            report(stop - start)
    for evaluated, (low, high) in zip(found, spans):
        evaluated.probabilities = probabilities[low:high]


def evaluate(models: Sequence[nn.Module], plans: Sequence[Plan], target: int, batch_size: int | None = None,
             progress: Progress | None = None) -> list[list[object]]:
    """Every plan on every model: ``result[m][p]`` is plan ``p``'s finished maps on ``models[m]``.

    Per model, one gradient pass over the stacked gradient points of all plans and one forward pass over their
    stacked probability points, each in batches of ``batch_size`` (default: what fits a quarter of the device's free
    memory). The models must take the same inputs (the plans' points are made once per model, on its device).
    ``progress`` counts points done; a backward pass counts as two forwards.
    """
    gradient_count = sum(plan.gradient_points.count for plan in plans if plan.gradient_points is not None)
    probability_count = sum(plan.probability_points.count for plan in plans if plan.probability_points is not None)
    work = max(1, len(models) * (3 * gradient_count + probability_count))
    done = [0]

    def reporter(weight: int, what: str, points: int, model_number: int) -> Callable[[int], None]:
        seen = [0]
        which = f" (model {model_number + 1} of {len(models)})" if len(models) > 1 else ""

        def report(count: int) -> None:
            seen[0] += count
            done[0] += weight * count
            if progress is not None:
                progress(done[0] / work, f"{what} {seen[0]}/{points}{which}")
        return report

    results = []
    for number, model in enumerate(models):
        found = _gradient_pass(model, plans, target, batch_size, reporter(3, "gradients", gradient_count, number))
        _probability_pass(model, plans, target, batch_size, found,
                          reporter(1, "class probabilities", probability_count, number))
        results.append([plan.finish(evaluated) for plan, evaluated in zip(plans, found)])
    return results


def run(model: nn.Module, plan: Plan, target: int, batch_size: int | None = None,
        progress: Progress | None = None) -> object:
    """One plan on one model: what a single-method function returns."""
    return evaluate([model], [plan], target, batch_size, progress)[0][0]
