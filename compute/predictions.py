"""Class probabilities of a model over a whole data set (cached)."""
from __future__ import annotations

import torch

from compute.cache import memoize
from compute.device import activation_floats, batch_size_for, model_device


@memoize
def probabilities(model, dataset, batch_size: int | None = None, progress=None) -> torch.Tensor:
    """Softmax probabilities (N, K) of every image in the data set, on the CPU; batched under no_grad."""
    images = dataset.images
    device = model_device(model)
    batch_size = batch_size or batch_size_for(device, activation_floats(model, tuple(images.shape[1:])))
    chunks = []
    with torch.no_grad():
        for start in range(0, len(images), batch_size):
            logits = model(images[start : start + batch_size].to(device))
            chunks.append(torch.softmax(logits.float(), dim=1).cpu())
            if progress:
                progress(min(len(images), start + batch_size) / len(images), "class probabilities")
    return torch.cat(chunks)


def top_k(probabilities_row: torch.Tensor, k: int = 5) -> list[tuple[int, float]]:
    """The ``k`` most probable classes of one probability vector (K,), as (class index, probability)."""
    values, indices = probabilities_row.topk(min(k, probabilities_row.numel()))
    return [(int(i), float(v)) for i, v in zip(indices, values)]
