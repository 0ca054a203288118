"""A model and its data, by name: what the command line says, and what keys a compute process's workspace."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Source:
    """A model and its data, by name (plain strings, so it travels to the compute process). Hashable."""

    model: str = "digits-cnn"
    data: str = "digits"
    checkpoint: str | None = None
    device: str = "auto"
    layer: str = ""  # the layer shown first ("" = the model's choice)
    weights: str | None = None  # torchvision weights: DEFAULT, an enum name (from the torch hub cache), or random
    image_size: int | None = None  # crop size of the images (None: the weights' transforms(), else the data's own)
    resize: int | None = None  # shorter side before the crop (None: the weights' transforms(), else image_size)
    download: bool = False  # fetch a missing torchvision data set (cifar10, mnist, fashion-mnist)
