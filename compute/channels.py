"""Per-image channel statistics of a layer: sparsity and silent channels."""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Sparsity:
    zero_fraction: float  # activations exactly zero (after a ReLU)
    nonpositive_fraction: float  # activations <= 0: what a ReLU would zero (differs before a ReLU)
    silent_channels: list[int]  # channels with no positive activation anywhere in this image
    channels: int


def sparsity(output: torch.Tensor) -> Sparsity:
    """Sparsity of one image's layer output: (C, h, w) for conv layers or (C,) for linear ones."""
    values = output.detach().float()
    per_channel = values.reshape(values.shape[0], -1) if values.ndim > 1 else values.reshape(-1, 1)
    silent = torch.nonzero(per_channel.max(dim=1).values <= 0).flatten().tolist()
    return Sparsity(
        zero_fraction=float((values == 0).float().mean()),
        nonpositive_fraction=float((values <= 0).float().mean()),
        silent_channels=silent,
        channels=int(per_channel.shape[0]),
    )
