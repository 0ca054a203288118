"""Device choice and batch sizing, in one place so every family agrees."""
from __future__ import annotations

import os
import weakref

import torch

from compute.errors import UserError

_BYTES_PER_FLOAT = 4
CPU_MAX_BATCH = 256


def pick_device(preference: str = "auto") -> torch.device:
    """Return the torch device for ``preference``: ``auto`` (cuda when present), ``cpu`` or ``cuda[:n]``.

    Raises ValueError with a readable message when cuda is asked for but missing.
    """
    preference = (preference or "auto").lower()
    if preference == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if preference.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(f"device {preference!r} was asked for, but torch sees no CUDA GPU; use --device cpu or auto")
    try:
        chosen = torch.device(preference)
    except RuntimeError as error:
        raise UserError(f"unknown device {preference!r}: use auto, cpu or cuda") from error
    if chosen.type == "cuda" and chosen.index is not None and chosen.index >= torch.cuda.device_count():
        raise UserError(f"device {preference!r} does not exist: torch sees {torch.cuda.device_count()} GPU(s)")
    return chosen


def device_name(device: torch.device | str) -> str:
    """The exact device, as the page and the command line report it: ``cpu``, or ``cuda:3 (NVIDIA H100 ...)``.

    A CUDA device without an index (what ``auto`` picks) is the current one, so it is named with that index.
    """
    device = torch.device(device)
    if device.type != "cuda":
        return str(device)
    index = device.index if device.index is not None else torch.cuda.current_device()
    return f"cuda:{index} ({torch.cuda.get_device_name(index)})"


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of the model's first parameter (cpu for a parameterless model)."""
    for parameter in model.parameters():
        return parameter.device
    return torch.device("cpu")


def _free_bytes(device: torch.device) -> int:
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # psutil missing or unreadable /proc: assume a small laptop
        return 2 * 1024**3


def batch_size_for(
    device: torch.device,
    floats_per_item: int,
    *,
    with_backward: bool = False,
    memory_fraction: float = 0.25,
    minimum: int = 1,
    maximum: int = 1024,
) -> int:
    """How many items fit in one batch on ``device``.

    ``floats_per_item`` is a rough count of activation floats one item creates in a forward pass
    (see :func:`activation_floats`); a backward pass roughly triples it. Only ``memory_fraction`` of the
    free memory is planned for, so other work and the allocator's slack keep room.
    """
    override = os.environ.get("FEATURESCOPE_BATCH_SIZE")
    if override:
        return max(minimum, int(override))
    per_item = max(1, floats_per_item) * _BYTES_PER_FLOAT * (3 if with_backward else 1)
    budget = _free_bytes(device) * memory_fraction
    if device.type == "cpu":
        # Past the CPU caches, bigger batches only add page faults: 256 ran occlusion 2x faster than 1024 here.
        maximum = min(maximum, CPU_MAX_BATCH)
    return int(max(minimum, min(maximum, budget // per_item)))


# Counts per model object and input shape: the count depends on the architecture only, and each method call
# would otherwise pay a forward for it (a noticeable share of a 50-sample SmoothGrad on a GPU).
_counted: "weakref.WeakKeyDictionary[torch.nn.Module, dict[tuple, int]]" = weakref.WeakKeyDictionary()


def activation_floats(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    """Count the floats of every leaf module's output for one input of ``input_shape`` (C, H, W).

    One forward pass of a single zero image on the model's device, under no_grad; used for batch sizing.
    Remembered per model object and shape.
    """
    shape = tuple(int(v) for v in input_shape)
    remembered = _counted.setdefault(model, {})
    if shape not in remembered:
        remembered[shape] = _count_activation_floats(model, shape)
    return remembered[shape]


def _count_activation_floats(model: torch.nn.Module, input_shape: tuple[int, ...]) -> int:
    total = 0

    def count(_module, _inputs, output):
        nonlocal total
        if isinstance(output, torch.Tensor):
            total += output.numel()

    handles = [m.register_forward_hook(count) for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(torch.zeros((1, *input_shape), device=model_device(model)))
    finally:
        for handle in handles:
            handle.remove()
    return total + int(torch.Size(input_shape).numel())
