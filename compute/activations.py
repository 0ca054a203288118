"""Layer names, and hook-based extraction of a layer's output (hooks are always removed)."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

import torch
from torch import nn

from compute.device import activation_floats, batch_size_for, model_device

Progress = Callable[[float, str], None]


class LayerError(ValueError):
    """An unknown layer name; the message lists the valid ones."""


class _StopForward(Exception):
    """Raised by a hook once every wanted layer has been seen, so later layers are not computed."""


def layers(model: nn.Module) -> list[str]:
    """Dotted names of every submodule (``model.named_modules()``), in forward-definition order, root excluded."""
    return [name for name, _ in model.named_modules() if name]


def module(model: nn.Module, layer: str) -> nn.Module:
    """The submodule named ``layer``; LayerError listing the valid names otherwise."""
    modules = dict(model.named_modules())
    if not layer or layer not in modules:
        names = layers(model)
        shown = ", ".join(names[:30]) + (" ..." if len(names) > 30 else "")
        raise LayerError(f"unknown layer {layer!r}; layers of this model: {shown}")
    return modules[layer]


@contextmanager
def capture(model: nn.Module, layer_names: list[str], stop_early: bool = False) -> Iterator[dict[str, torch.Tensor]]:
    """Record the outputs of ``layer_names`` during forward passes inside the block.

    Yields a dict filled on each forward (layer name -> output tensor). With ``stop_early`` the forward
    is cut short once all layers are recorded (call through :func:`run_until`). Hooks are removed on exit,
    also when the forward raises.
    """
    outputs: dict[str, torch.Tensor] = {}
    wanted = set(layer_names)
    handles = []

    def hook_for(name: str):
        def record(_module, _inputs, output):
            outputs[name] = output
            if stop_early and wanted.issubset(outputs):
                raise _StopForward

        return record

    try:
        for name in layer_names:
            handles.append(module(model, name).register_forward_hook(hook_for(name)))
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def run_until(model: nn.Module, images: torch.Tensor, layer: str) -> torch.Tensor:
    """The output of ``layer`` for ``images``, computing no layer after it."""
    with capture(model, [layer], stop_early=True) as outputs:
        try:
            model(images)
        except _StopForward:
            pass
    if layer not in outputs:
        raise LayerError(f"layer {layer!r} is not used in the model's forward pass")
    return outputs[layer]


def _pool(output: torch.Tensor) -> torch.Tensor:
    return output.mean(dim=tuple(range(2, output.ndim))) if output.ndim > 2 else output


def extract(
    model: nn.Module,
    images,
    layer: str,
    pooled: bool = False,
    batch_size: int | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """The output of ``layer`` for every image, on the CPU.

    images: (N, C, H, W) tensor (or anything indexable by slices returning such tensors, e.g. FolderImages).
    Returns (N, C, h, w) for conv layers, (N, C) for linear ones; ``pooled`` takes the spatial mean -> (N, C).
    Batched under no_grad on the model's device; layers after ``layer`` are not computed.
    """
    module(model, layer)  # validate before any work
    device = model_device(model)
    count = len(images)
    if batch_size is None:
        batch_size = batch_size_for(device, activation_floats(model, tuple(images.shape[1:])))
    chunks = []
    with torch.no_grad():
        for start in range(0, count, batch_size):
            batch = images[start : start + batch_size].to(device, non_blocking=True)
            output = run_until(model, batch, layer)
            chunks.append((_pool(output) if pooled else output).float().cpu())
            if progress:
                progress(min(count, start + batch_size) / count, f"activations of {layer}: {min(count, start + batch_size)}/{count}")
    if not chunks:
        raise ValueError("no images to extract from")
    return torch.cat(chunks)


def single(model: nn.Module, image: torch.Tensor, layers_wanted: list[str]) -> dict[str, torch.Tensor]:
    """Outputs of several layers and the logits for one image (C, H, W), batch dimension dropped, on the CPU."""
    for name in layers_wanted:
        module(model, name)
    with torch.no_grad(), capture(model, layers_wanted) as outputs:
        logits = model(image.unsqueeze(0).to(model_device(model)))
        unused = [name for name in layers_wanted if name not in outputs]
        if unused:
            raise LayerError(f"layer {unused[0]!r} is not used in the model's forward pass")
        result = {name: outputs[name][0].float().cpu() for name in layers_wanted}
    result["__logits__"] = logits[0].float().cpu()
    return result
