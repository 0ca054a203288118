"""How good a result is: the objective it reaches against the best real image of the data set."""
from __future__ import annotations

from typing import Any

import torch
from torch import nn

from compute.cache import memoize
from compute.device import activation_floats, batch_size_for, model_device
from compute.maximize import objectives as objective_table
from compute.maximize.render import _model_like, forward


@memoize
def best_in_data(model: nn.Module, dataset, objective: Any, batch_size: int | None = None,
                 progress=None) -> tuple[torch.Tensor, torch.Tensor]:
    """The highest value of each item of ``objective`` over every image of ``dataset``, and that image's index.

    One batched pass under no_grad (images in batches of ``batch_size``, which changes nothing but speed).
    Returns (values (n,), indices (n,)); n is the objective's per-image target count, or 1.
    """
    built = objective_table.build(objective)
    images = dataset.images
    device, dtype = model_device(model), _model_like(model).dtype
    if batch_size is None:
        batch_size = batch_size_for(device, activation_floats(model, tuple(images.shape[1:])))
    best_values, best_indices = None, None
    count = len(images)
    with torch.no_grad():
        for start in range(0, count, batch_size):
            batch = images[start : start + batch_size].to(device=device, dtype=dtype)
            table = built.pairwise(forward(model, batch, built)).float()  # (B, n)
            values, rows = table.max(dim=0)
            if best_values is None:
                best_values, best_indices = values, rows + start
            else:
                better = values > best_values  # strict: the first image reaching the maximum is kept
                best_values = torch.where(better, values, best_values)
                best_indices = torch.where(better, rows + start, best_indices)
            if progress is not None:
                done = min(count, start + batch_size)
                progress(done / count, f"best data-set images: {done}/{count}")
    if best_values is None:
        raise ValueError("the data set has no images")
    return best_values.cpu(), best_indices.cpu()


def ratios(values: torch.Tensor, best_values: torch.Tensor) -> torch.Tensor:
    """Objective reached / best data-set value, (n,); NaN where the best value is not positive (no meaningful scale)."""
    best = best_values.expand_as(values).float()
    return torch.where(best > 0, values.float() / best.clamp(min=1e-12), torch.full_like(best, float("nan")))
