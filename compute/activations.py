"""Layer outputs for a whole data set (:func:`extract`, the scatter) and for one image (:func:`single`, the panels).

Layer names are call sites, resolved and captured by :mod:`compute.layers` (``layer1.0.relu_1`` is the second call
of ``layer1.0.relu``), so both paths read the same tensor for one name.
"""
from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch
from torch import nn

from compute import layers as layer_names
from compute.device import activation_floats, batch_size_for, model_device
from compute.layers import LayerError, capture, missing, run_until  # noqa: F401  (part of this module's API)
from compute.progress import Progress

# Extraction precisions: name -> the autocast dtype (None: plain float32).
PRECISIONS = {None: None, "fp32": None, "float32": None, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16}
# bf16 autocast stays within this fraction of each layer's largest |fp32 activation| on the built-in model (measured
# 0.4% at most over its 13 layers; tests/test_activations.py checks it), and on resnet18/50 in bench/compute_rows.py.
BF16_TOLERANCE = 0.02
# From host memory to a GPU, batches beyond this only lengthen the pipeline's first, unoverlapped copy (resnet18 at
# 224x224 with one batch of 1,024: 0.73x of the on-device forward on an H200; batches of 280: 0.96x on resnet50).
HOST_TO_GPU_MAX_BATCH = 256


def layers(model: nn.Module, input_shape: tuple[int, ...] | None = None) -> list[str]:
    """Layer names of ``model``: one per call of a submodule (``relu``, ``relu_1``, ...), in call order.

    Found by one forward of a zero input of ``input_shape`` (C, H, W); None uses the model's ``input_shape``
    attribute (set by compute.models) or a guess from its first layer. See :mod:`compute.layers`.
    """
    return layer_names.names(model, input_shape)


def module(model: nn.Module, layer: str) -> nn.Module:
    """The submodule computing ``layer`` (no forward); LayerError listing the valid names otherwise."""
    return layer_names.module(model, layer)


def _pool(output: torch.Tensor) -> torch.Tensor:
    return output.mean(dim=tuple(range(2, output.ndim))) if output.ndim > 2 else output


def _autocast(device: torch.device, dtype: str | None):
    if dtype not in PRECISIONS:
        raise ValueError(f"unknown dtype {dtype!r}: use 'fp32' or 'bf16'")
    if PRECISIONS[dtype] is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=PRECISIONS[dtype])


def _batches(images, batch_size: int, device: torch.device) -> Iterator[tuple[int, int, torch.Tensor]]:
    """(start, stop, images[start:stop] on ``device``) for every batch.

    From host memory to a GPU, the next batch is staged while this one computes: copied into one of two pinned
    buffers, then sent with a non-blocking copy on a side stream that the compute stream waits for.
    """
    count = len(images)
    starts = list(range(0, count, batch_size))
    on_device = isinstance(images, torch.Tensor) and images.device == device
    if device.type != "cuda" or on_device:
        for start in starts:
            yield start, min(count, start + batch_size), images[start:start + batch_size].to(device)
        return
    copy_stream = torch.cuda.Stream(device)
    compute_stream = torch.cuda.current_stream(device)
    pinned: list[torch.Tensor | None] = [None, None]
    copied: list[torch.cuda.Event | None] = [None, None]

    def stage(index: int) -> tuple[torch.Tensor, torch.cuda.Event]:
        host = images[starts[index]:starts[index] + batch_size]
        slot = index % 2
        if copied[slot] is not None:
            copied[slot].synchronize()  # the copy that last read this buffer is done
        if not host.is_pinned():
            if pinned[slot] is None or pinned[slot].dtype != host.dtype:
                pinned[slot] = torch.empty((batch_size, *host.shape[1:]), dtype=host.dtype, pin_memory=True)
            host = pinned[slot][:len(host)].copy_(host)
        with torch.cuda.stream(copy_stream):
            batch = host.to(device, non_blocking=True)
            done = torch.cuda.Event()
            done.record(copy_stream)
        copied[slot] = done
        return batch, done

    staged = stage(0)
    for index, start in enumerate(starts):
        batch, done = staged
        compute_stream.wait_event(done)
        batch.record_stream(compute_stream)  # allocated on the copy stream, used on this one
        yield start, min(count, start + batch_size), batch
        if index + 1 < len(starts):
            staged = stage(index + 1)


class _HostCollector:
    """Writes each batch's output into one CPU tensor. From a GPU the copy back is non-blocking into a pinned
    buffer on a side stream, and waited for only one batch later, so it overlaps the next batch's compute."""

    def __init__(self, count: int, device: torch.device):
        self.count, self.device, self.result = count, device, None
        self.pending: list[tuple[int, int, torch.Tensor, torch.cuda.Event]] = []
        self.staging: list[torch.Tensor | None] = [None, None]
        self.stream = torch.cuda.Stream(device) if device.type == "cuda" else None
        self.batches = 0

    def add(self, start: int, stop: int, output: torch.Tensor) -> None:
        if self.result is None:
            self.result = torch.empty((self.count, *output.shape[1:]), dtype=torch.float32)
        if self.stream is None:
            self.result[start:stop] = output
            return
        slot = self.batches % 2
        self.batches += 1
        self.finish(keep=1)  # frees the staging buffer of two batches ago
        if self.staging[slot] is None:  # the first batches are the largest: later ones fit
            self.staging[slot] = torch.empty(output.shape, dtype=torch.float32, pin_memory=True)
        staging = self.staging[slot][:len(output)]
        self.stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(self.stream):
            staging.copy_(output, non_blocking=True)
            done = torch.cuda.Event()
            done.record(self.stream)
        output.record_stream(self.stream)
        self.pending.append((start, stop, staging, done))

    def finish(self, keep: int = 0) -> torch.Tensor | None:
        """Move finished copies into the result, leaving the ``keep`` most recent in flight."""
        while len(self.pending) > keep:
            start, stop, staging, done = self.pending.pop(0)
            done.synchronize()
            self.result[start:stop] = staging
        return self.result


def extract(
    model: nn.Module,
    images,
    layer: str,
    pooled: bool = False,
    batch_size: int | None = None,
    progress: Progress | None = None,
    dtype: str | None = None,
) -> torch.Tensor:
    """The output of ``layer`` for every image, as float32 on the CPU.

    images: (N, C, H, W) tensor (on any device), or anything indexable by slices returning such tensors (e.g.
    FolderImages). Returns (N, C, h, w) for conv layers, (N, C) for linear ones; ``pooled`` takes the spatial mean
    -> (N, C). Batched under no_grad on the model's device; layers after ``layer`` are not computed. On a GPU,
    copies to and from host memory overlap the compute. ``dtype="bf16"`` runs the forward under bfloat16 autocast:
    faster on recent GPUs, within :data:`BF16_TOLERANCE` of each layer's largest activation.
    """
    layer_names.parse(model, layer)  # validate before any work
    device = model_device(model)
    precision = _autocast(device, dtype)
    count = len(images)
    if count == 0:
        raise ValueError("no images to extract from")
    if batch_size is None:
        batch_size = batch_size_for(device, activation_floats(model, tuple(images.shape[1:])))
        from_host = not (isinstance(images, torch.Tensor) and images.device == device)
        if device.type == "cuda" and from_host:
            batch_size = min(batch_size, HOST_TO_GPU_MAX_BATCH)
    collector = _HostCollector(count, device)
    with torch.no_grad():
        for start, stop, batch in _batches(images, batch_size, device):
            with precision:
                output = run_until(model, batch, layer)
            output = output.float()
            collector.add(start, stop, _pool(output) if pooled else output)
            if progress:
                progress(stop / count, f"activations of {layer}: {stop}/{count}")
    unreadable = getattr(images, "unreadable", None)  # FolderImages: files that broke after loading, left blank
    if unreadable and progress:
        progress(1.0, f"activations of {layer}: {count}/{count}; {len(unreadable)} unreadable image(s) left blank: "
                      f"{', '.join(unreadable[:5])}{' ...' if len(unreadable) > 5 else ''}")
    return collector.finish()


def single(model: nn.Module, image: torch.Tensor, layers_wanted: list[str]) -> dict[str, torch.Tensor]:
    """Outputs of several layers and the logits for one image (C, H, W), batch dimension dropped, on the CPU."""
    for name in layers_wanted:
        layer_names.parse(model, name)
    with torch.no_grad(), capture(model, layers_wanted) as outputs:
        logits = model(image.unsqueeze(0).to(model_device(model)))
        missing(model, layers_wanted, outputs)
        result = {name: outputs[name][0].float().cpu() for name in layers_wanted}
    result["__logits__"] = logits[0].float().cpu()
    return result
