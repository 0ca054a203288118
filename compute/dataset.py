"""What a data set is (:class:`Dataset`: images, labels, classes, the test split) and how its images are brought
to the model (:class:`Preprocessing`). :mod:`compute.data` loads them."""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

from compute.cache import tensor_fingerprint
from compute.errors import OutOfRange


@dataclass(frozen=True)
class Preprocessing:
    """How images are brought to the model: shorter side resized to ``resize``, centre-cropped to ``size`` (None:
    the data's own size), and grey images repeated to ``channels`` (None: as they are). Normalisation is not here:
    it is part of the model (a forward pre-hook), so images stay in [0, 1] and are shown as they are."""

    size: int | None = None
    resize: int | None = None
    channels: int | None = None


@dataclass
class Dataset:
    """Images, labels and what is needed to show them.

    images: (N, C, H, W) float32 in [0, 1] — a tensor, or for image folders a lazy :class:`FolderImages`
    that loads on indexing. labels: (N,) int64. is_test: (N,) bool, the fixed held-out split.
    """

    name: str
    images: "torch.Tensor | FolderImages"
    labels: torch.Tensor
    classes: list[str]
    is_test: torch.Tensor
    description: str = ""
    fingerprint: str = ""
    channel_mean: tuple[float, ...] = field(default_factory=tuple)  # per channel in [0, 1]; () for a folder
    skipped: list[str] = field(default_factory=list)  # files left out at load time, relative to the folder

    def __post_init__(self) -> None:
        # A data set made by hand still gets a content fingerprint, so cache keys never collide.
        if not self.fingerprint and isinstance(self.images, torch.Tensor):
            self.fingerprint = f"{self.name}:" + tensor_fingerprint(self.images) + tensor_fingerprint(self.labels)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])  # type: ignore[return-value]

    def image(self, index: int) -> torch.Tensor:
        """One image (C, H, W); OutOfRange (a UserError and an IndexError) with a readable message when out of range."""
        if not 0 <= index < len(self):
            raise OutOfRange(f"sample {index} is out of range: {self.name} has {len(self)} images")
        return self.images[index]


def uint8_to_float(pixels: torch.Tensor) -> torch.Tensor:
    """uint8 pixels -> float32 in [0, 1] (the same numbers as ``np.float32(v) / 255``, wherever it is computed)."""
    return pixels.to(torch.float32) / 255.0
