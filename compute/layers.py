"""The one place that resolves layer names and captures layer outputs.

A *layer* is a call site: one call of a submodule during the forward pass. A module called once per forward is
named by its dotted path (``layer1.0.conv1``, as ``model.named_modules()`` says); a module called several times
gets one name per call, numbered as torchvision's ``feature_extraction`` numbers call sites: ``layer1.0.relu`` is
the first call, ``layer1.0.relu_1`` the second (ResNet's BasicBlock applies its one ``relu`` twice). So one name
means one tensor everywhere: the scatter's extraction, the feature-map panel, Grad-CAM, the inversion and the cache
key all read a layer through :func:`capture`.
"""
from __future__ import annotations

import re
import weakref
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from compute.device import model_device
from compute.errors import LayerError

# Spatial size tried when a model gives no input shape: layer names do not depend on it for CNNs.
GUESSED_SIDE = 32
_CALL_SUFFIX = re.compile(r"^(?P<module>.+)_(?P<call>[1-9][0-9]*)$")



def conv_layers(model: nn.Module) -> list[str]:
    """Dotted names of the model's 2-D conv layers, in definition order: the layers whose kernels are images, and
    those Grad-CAM can read."""
    return [name for name, module in model.named_modules() if isinstance(module, nn.Conv2d)]


class StopForward(Exception):
    """Raised by a capture hook once every wanted layer has been recorded, so later layers are not computed."""


@dataclass(frozen=True)
class CallSite:
    """One call of a submodule in the forward pass: its listed name, the module's dotted path and call number."""

    name: str
    module_name: str
    call: int
    module: nn.Module
    output_ndim: int  # dimensions of the output, batch included; -1 when the output is not a tensor


def call_site_name(module_name: str, call: int) -> str:
    """``relu`` for the first call, ``relu_1`` for the second, ... (torchvision's call-site numbering)."""
    return module_name if call == 0 else f"{module_name}_{call}"


def parse(model: nn.Module, layer: str) -> tuple[str, int]:
    """(module path, call number) of a layer name; a real module's path always means its first call."""
    modules = dict(model.named_modules())
    if layer and layer in modules:
        return layer, 0
    match = _CALL_SUFFIX.match(layer or "")
    if match and match["module"] in modules:
        return match["module"], int(match["call"])
    shown = [name for name in modules if name]
    listed = ", ".join(shown[:30]) + (" ..." if len(shown) > 30 else "")
    raise LayerError(f"unknown layer {layer!r}; layers of this model: {listed} "
                     f"(a module called k more times per forward also has the names <name>_1 .. <name>_k)")


def module(model: nn.Module, layer: str) -> nn.Module:
    """The submodule that computes ``layer`` (``layer1.0.relu_1`` -> the module ``layer1.0.relu``); no forward."""
    module_name, _call = parse(model, layer)
    return model.get_submodule(module_name)


def input_shape_of(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> tuple[int, ...]:
    """The shape of one input (C, H, W): ``input_shape``, else the model's ``input_shape`` attribute (compute.models
    sets it), else guessed from the first conv (``(in_channels, 32, 32)``) or linear layer (``(in_features,)``)."""
    if input_shape is not None:
        return tuple(int(v) for v in input_shape)
    declared = getattr(model, "input_shape", None)
    if declared is not None:
        return tuple(int(v) for v in declared)
    for submodule in model.modules():
        if isinstance(submodule, nn.Conv2d):
            return (submodule.in_channels, GUESSED_SIDE, GUESSED_SIDE)
        if isinstance(submodule, nn.Conv1d):
            return (submodule.in_channels, GUESSED_SIDE)
        if isinstance(submodule, nn.Linear):
            return (submodule.in_features,)
    raise LayerError(f"cannot tell the input shape of {type(model).__name__}; pass input_shape=(C, H, W)")


# Listing runs one forward; remembered per model object and input shape (an architecture does not change).
_listed: "weakref.WeakKeyDictionary[nn.Module, dict[tuple, list[CallSite]]]" = weakref.WeakKeyDictionary()


def call_sites(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> list[CallSite]:
    """Every call of every submodule (root excluded) in one forward of a zero input, in the order calls start.

    The forward runs in eval mode under no_grad (so BatchNorm statistics are not touched) and the model's mode is
    restored afterwards. A name that would collide with a real module's path is refused: it would mean two tensors.
    """
    shape = input_shape_of(model, input_shape)
    remembered = _listed.setdefault(model, {})
    if shape in remembered:
        return remembered[shape]
    path_of = {submodule: name for name, submodule in model.named_modules() if name}
    module_paths = {name for name, _ in model.named_modules()}
    calls: dict[nn.Module, int] = {}
    started: list[tuple[str, int, nn.Module]] = []
    dimensions: dict[tuple[nn.Module, int], int] = {}
    finished: dict[nn.Module, int] = {}

    def before(submodule, _inputs):
        call = calls.get(submodule, 0)
        calls[submodule] = call + 1
        started.append((path_of[submodule], call, submodule))

    def after(submodule, _inputs, output):
        call = finished.get(submodule, 0)
        finished[submodule] = call + 1
        dimensions[(submodule, call)] = output.ndim if isinstance(output, torch.Tensor) else -1

    training = {submodule: submodule.training for submodule in model.modules()}
    handles = []
    try:
        for submodule in path_of:
            handles.append(submodule.register_forward_pre_hook(before))
            handles.append(submodule.register_forward_hook(after))
        model.eval()
        with torch.no_grad():
            model(torch.zeros((1, *shape), device=model_device(model)))
    except Exception as error:
        raise LayerError(f"cannot list the layers of {type(model).__name__} with an input of shape {shape}: "
                         f"{error}; pass input_shape=(C, H, W)") from error
    finally:
        for handle in handles:
            handle.remove()
        for submodule, was_training in training.items():
            submodule.training = was_training
    sites = []
    for module_name, call, submodule in started:
        name = call_site_name(module_name, call)
        if call > 0 and name in module_paths:
            raise LayerError(f"module {module_name!r} runs {calls[submodule]} times per forward, and the name of its "
                             f"call {call + 1}, {name!r}, is also a module's name: rename one of them")
        sites.append(CallSite(name, module_name, call, submodule, dimensions.get((submodule, call), -1)))
    remembered[shape] = sites
    return sites


def names(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> list[str]:
    """The layer names of ``model``: one per call site whose output is a tensor, in the order the calls start."""
    return [site.name for site in call_sites(model, input_shape) if site.output_ndim >= 0]


@contextmanager
def capture(model: nn.Module, layers: list[str], stop_early: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of ``layers`` (call-site names) during forward passes inside the block.

    Yields a dict that each forward of ``model`` empties and fills (layer name -> output tensor, still in the
    autograd graph when gradients are on). With ``stop_early`` the forward raises :class:`StopForward` as soon as
    every layer is recorded (see :func:`run_until`). The rest of the network gets a copy of a recorded output, so
    an in-place op downstream (``ReLU(inplace=True)``) can neither overwrite it nor move its place in the graph.
    Hooks are removed on exit, also when the forward raises.
    """
    outputs: dict[str, torch.Tensor] = {}
    wanted: dict[nn.Module, dict[int, str]] = {}
    for layer in layers:
        module_name, call = parse(model, layer)
        wanted.setdefault(model.get_submodule(module_name), {})[call] = layer
    calls: dict[nn.Module, int] = {}
    count = len(set(layers))

    def new_forward(_model, _inputs):
        calls.clear()
        outputs.clear()

    def record(submodule, _inputs, output):
        call = calls.get(submodule, 0)
        calls[submodule] = call + 1
        name = wanted[submodule].get(call)
        if name is None:
            return None
        if not isinstance(output, torch.Tensor):
            raise LayerError(f"layer {name!r} returns a {type(output).__name__}, not a tensor")
        outputs[name] = output
        if stop_early and len(outputs) == count:
            raise StopForward
        return output.clone()

    handles = []
    try:
        handles.append(model.register_forward_pre_hook(new_forward))
        for submodule in wanted:
            handles.append(submodule.register_forward_hook(record))
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def missing(model: nn.Module, layers: list[str], outputs: dict[str, torch.Tensor]) -> None:
    """LayerError for the first of ``layers`` a forward did not record (a module never called, or called fewer times)."""
    for layer in layers:
        if layer not in outputs:
            module_name, call = parse(model, layer)
            how = "is not used in the model's forward pass" if call == 0 else \
                f"does not exist: {module_name!r} runs fewer than {call + 1} times per forward"
            raise LayerError(f"layer {layer!r} {how}")


def run_until(model: nn.Module, images: torch.Tensor, layers: str | list[str]) -> torch.Tensor | dict[str, torch.Tensor]:
    """The output of ``layers`` (one name -> a tensor; a list -> a dict) for ``images``, computing no layer after
    the last of them."""
    wanted = [layers] if isinstance(layers, str) else list(layers)
    with capture(model, wanted, stop_early=True) as outputs:
        try:
            model(images)
        except StopForward:
            pass
        found = dict(outputs)
    missing(model, wanted, found)
    return found[layers] if isinstance(layers, str) else found
