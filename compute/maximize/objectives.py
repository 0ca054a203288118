"""What to maximise, written as tuples: ``("class", 3)``, ``("channel", "conv2", 5)``, ``("neuron", "conv2", 5, 4, 4)``,
``("sum", a, b)``, ``("difference", a, b)`` ("class 3 but not class 8" is ``("difference", ("class", 3), ("class", 8))``).

A target may be a list with one entry per image (``("channel", "conv2", [0, 1, ..., 31])``): image k then maximises
channel k, which is how a whole layer is optimised as one batch. :func:`build` turns a tuple into an
:class:`Objective` that reads the captured layer outputs and the logits, in two forms: ``diagonal`` (image k's own
objective, (B,)) for the optimisation, and ``pairwise`` (every image against every item, (B, n)) for comparing
with the data set.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import torch

from compute.specs.maximize import COMBINATIONS, OBJECTIVES, describe, item, normalize  # noqa: F401  (the table)

LOGITS = "__logits__"  # key of the model's output in the dict an objective reads


@dataclass(frozen=True)
class Objective:
    """``function(outputs, pairwise) -> (B,)`` or ``(B, n)``; ``layers`` it reads; ``count`` items (None: any)."""

    function: Callable[[dict[str, torch.Tensor], bool], torch.Tensor]
    layers: frozenset[str]
    count: int | None

    @property
    def needs_logits(self) -> bool:
        return LOGITS in self.layers

    def diagonal(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,): image b's value of its own objective (item b)."""
        return self.function(outputs, False)

    def pairwise(self, outputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B, n): image b's value of item j's objective (n = count, or 1 when every item is the same)."""
        return self.function(outputs, True)


def _targets(value: Any, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(value, dtype=torch.long, device=like.device).reshape(-1)


def _count(*values: Any) -> int | None:
    counts = {len(v) for v in values if isinstance(v, (list, tuple))}
    if len(counts) > 1:
        raise ValueError(f"per-image targets of different lengths: {sorted(counts)}")
    return counts.pop() if counts else None


def _pick(values: torch.Tensor, pairwise: bool, *targets: Any) -> torch.Tensor:
    """values (B, K, ...) at index targets along dims 1..: (B,) per image, or (B, n) for every item."""
    index = [_targets(t, values) for t in targets]
    if pairwise:
        return values[(slice(None), *index)].reshape(values.shape[0], -1)
    rows = torch.arange(values.shape[0], device=values.device)
    return values[(rows, *[i.expand(values.shape[0]) for i in index])]


def class_logit(target) -> Objective:
    """The class logit (not the softmax: Yosinski et al. 2015 maximise the logit, so other classes need not drop)."""
    return Objective(lambda outputs, pairwise: _pick(outputs[LOGITS], pairwise, target), frozenset({LOGITS}),
                     _count(target))


def channel(layer: str, target) -> Objective:
    """The spatial mean of one channel of ``layer`` (a unit for linear layers)."""
    def value(outputs, pairwise):
        output = outputs[layer]
        pooled = output.mean(dim=tuple(range(2, output.ndim))) if output.ndim > 2 else output
        return _pick(pooled, pairwise, target)

    return Objective(value, frozenset({layer}), _count(target))


def neuron(layer: str, target, y, x) -> Objective:
    """One channel of ``layer`` at one position (row ``y``, column ``x`` of its feature map)."""
    def value(outputs, pairwise):
        output = outputs[layer]
        if output.ndim != 4:
            raise ValueError(f"a neuron needs a conv layer's (B, C, h, w) output; {layer!r} gives {tuple(output.shape)}")
        height, width = output.shape[2:]
        for name, position, size in (("y", y, height), ("x", x, width)):
            if not all(0 <= p < size for p in ([position] if isinstance(position, int) else position)):
                raise ValueError(f"neuron {name}={position} is outside {layer!r}'s {height}x{width} map")
        return _pick(output, pairwise, target, y, x)

    return Objective(value, frozenset({layer}), _count(target, y, x))


def _combine(first: Objective, second: Objective, sign: float) -> Objective:
    def value(outputs, pairwise):
        a, b = first.function(outputs, pairwise), second.function(outputs, pairwise)
        return a + sign * b

    counts = {c for c in (first.count, second.count) if c is not None}
    if len(counts) > 1:
        raise ValueError(f"cannot combine objectives of {sorted(counts)} items")
    return Objective(value, first.layers | second.layers, counts.pop() if counts else None)


def total(first: Objective, second: Objective) -> Objective:
    """Both at once: first + second."""
    return _combine(first, second, 1.0)


def difference(first: Objective, second: Objective) -> Objective:
    """The first but not the second: first - second (e.g. "class 3 but not class 8")."""
    return _combine(first, second, -1.0)


def build(spec: Any) -> Objective:
    """The :class:`Objective` of a tuple spec (see the module docstring)."""
    name, *arguments = normalize(spec)
    if name in COMBINATIONS:
        return OBJECTIVES[name].function(build(arguments[0]), build(arguments[1]))
    arguments = [list(a) if isinstance(a, tuple) else a for a in arguments]
    return OBJECTIVES[name].function(*arguments)
