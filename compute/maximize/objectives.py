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

from compute.params import Method, Param

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


# The table the UI reads. Combinations take two objectives as their arguments, so they have no number controls.
OBJECTIVES: dict[str, Method] = {
    "class": Method(class_logit, "class logit", (Param("target", "int", 0, "class", 0),),
                    "the logit of one class (Yosinski et al.: the logit, not the probability)"),
    "channel": Method(channel, "channel (spatial mean)", (
        Param("layer", "layer", "", "layer"), Param("target", "int", 0, "channel", 0)),
        "the mean over positions of one channel of any layer"),
    "neuron": Method(neuron, "neuron (channel at one position)", (
        Param("layer", "layer", "", "layer"), Param("target", "int", 0, "channel", 0),
        Param("y", "int", 0, "row", 0), Param("x", "int", 0, "column", 0)),
        "one channel at one position of a conv layer's map"),
    "sum": Method(total, "sum of two", (), "two objectives at once"),
    "difference": Method(difference, "difference of two", (), "the first objective but not the second"),
}
_COMBINATIONS = {"sum", "difference"}


def normalize(spec: Any) -> tuple:
    """A spec as nested tuples with per-image targets as tuples (JSON gives lists): a stable cache key."""
    if not isinstance(spec, (list, tuple)) or not spec or spec[0] not in OBJECTIVES:
        raise ValueError(f"an objective is a tuple naming one of {', '.join(OBJECTIVES)} first, got {spec!r}")
    name, *arguments = spec
    if name in _COMBINATIONS:
        if len(arguments) != 2:
            raise ValueError(f"{name!r} takes two objectives, got {len(arguments)}")
        return (name, normalize(arguments[0]), normalize(arguments[1]))
    expected = len(OBJECTIVES[name].params)
    if len(arguments) != expected:
        names = ", ".join(p.name for p in OBJECTIVES[name].params)
        raise ValueError(f"{name!r} takes {expected} argument(s) ({names}), got {len(arguments)}: {spec!r}")
    return (name, *[tuple(int(v) for v in a) if isinstance(a, (list, tuple)) else a for a in arguments])


def build(spec: Any) -> Objective:
    """The :class:`Objective` of a tuple spec (see the module docstring)."""
    name, *arguments = normalize(spec)
    if name in _COMBINATIONS:
        return OBJECTIVES[name].function(build(arguments[0]), build(arguments[1]))
    arguments = [list(a) if isinstance(a, tuple) else a for a in arguments]
    return OBJECTIVES[name].function(*arguments)


def describe(spec: Any, class_names: list[str] | None = None) -> str:
    """A short human title: ``class 3``, ``conv2 ch 5``, ``conv2 ch 5 at (4, 4)``, ``class 3 − class 8``."""
    name, *arguments = normalize(spec)
    if name in _COMBINATIONS:
        joiner = " + " if name == "sum" else " − "
        return describe(arguments[0], class_names) + joiner + describe(arguments[1], class_names)
    if name == "class":
        target = arguments[0]
        if class_names and isinstance(target, int) and 0 <= target < len(class_names):
            return f"class {class_names[target]}"
        return f"class {target}"
    if name == "channel":
        return f"{arguments[0]} ch {arguments[1]}"
    return f"{arguments[0]} ch {arguments[1]} at ({arguments[2]}, {arguments[3]})"


def item(spec: Any, index: int) -> tuple:
    """The spec of image ``index`` alone (per-image target lists reduced to their ``index``-th entry)."""
    name, *arguments = normalize(spec)
    if name in _COMBINATIONS:
        return (name, item(arguments[0], index), item(arguments[1], index))
    return (name, *[a[index] if isinstance(a, tuple) else a for a in arguments])
