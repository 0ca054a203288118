"""Data set table: ``DATASETS`` maps a name to a loader; ``load(name)`` returns a :class:`Dataset`.

Images are float32 in [0, 1], shape (N, C, H, W). Models take images in that range (torchvision models get
their normalisation as a forward pre-hook, see ``compute.models``), so attribution maps live in pixel space.

``load(name, preprocessing, download)`` takes a table name (``digits``), a stored torchvision data set
``cifar10[:ROOT]``, ``mnist[:ROOT]``, ``fashion-mnist[:ROOT]`` (see :mod:`compute.torchvision_data`), or an image folder.
A :class:`Preprocessing` (from the model's weights, see ``compute.model_sources.preprocessing``) resizes and
centre-crops images as the weights' ``transforms()`` do, lazily, one batch at a time.
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from compute.cache import cache_dir, tensor_fingerprint
from compute.dataset import Dataset, Preprocessing, uint8_to_float  # noqa: F401  (part of this module's API)
from compute import torchvision_data
from compute.errors import DataError
from compute.torchvision_data import TransformedImages

IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"})
MAX_IMAGE_BYTES = 50 * 1024**2
DIGITS_SIZE = 32


@dataclass(frozen=True)
class DatasetSpec:
    loader: Callable[[], Dataset]
    description: str


def _digits_tensors() -> dict[str, torch.Tensor]:
    """The digits as tensors: images (N, 1, 32, 32) in [0, 1], labels (N,), is_test (N,), from scikit-learn."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    bunch = load_digits()
    small = torch.from_numpy(bunch.images.astype(np.float32) / 16.0).unsqueeze(1)
    images = torch.nn.functional.interpolate(small, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False)
    labels = torch.from_numpy(bunch.target.astype(np.int64))
    _, test_index = train_test_split(np.arange(len(labels)), test_size=0.2, random_state=0, stratify=bunch.target)
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    is_test[torch.from_numpy(test_index)] = True
    return {"images": images.clamp_(0.0, 1.0).contiguous(), "labels": labels, "is_test": is_test}


def _digits() -> Dataset:
    """scikit-learn's 1,797 handwritten digits (8x8, 0..16), upsampled bilinearly to 32x32 and scaled to [0, 1].

    The tensors are kept in the cache directory: importing scikit-learn costs ~2 s of every start otherwise.
    """
    stored = cache_dir() / "data" / f"digits-{DIGITS_SIZE}.pt"
    tensors = None
    if stored.exists():
        try:
            tensors = torch.load(stored, weights_only=True)
        except Exception:  # a damaged file is rebuilt below
            tensors = None
    if tensors is None:
        tensors = _digits_tensors()
        stored.parent.mkdir(parents=True, exist_ok=True)
        temporary = stored.with_suffix(f".{os.getpid()}.tmp")
        torch.save(tensors, temporary)
        temporary.replace(stored)  # atomic: a concurrent reader never sees half a file
    images, labels, is_test = tensors["images"], tensors["labels"], tensors["is_test"]
    return Dataset(
        name="digits",
        images=images,
        labels=labels,
        classes=[str(d) for d in range(10)],
        is_test=is_test,
        description="scikit-learn handwritten digits: 8x8 scans upsampled bilinearly to 32x32",
        fingerprint="digits:" + tensor_fingerprint(images) + tensor_fingerprint(labels),
        channel_mean=tuple(images.mean(dim=(0, 2, 3)).tolist()),
    )


DATASETS: dict[str, DatasetSpec] = {
    "digits": DatasetSpec(_digits, "scikit-learn handwritten digits (1,797 images, 10 classes), shown at 32x32"),
}


class FolderImages:
    """Lazily loaded images of a folder, resized to a fixed square size; indexable like a tensor.

    A file that became unreadable after the folder was loaded: one image asked for by index raises DataError
    naming it; in a batch (a slice or list, as extraction reads) it is left blank (zeros) and its path, relative
    to the folder, is added to ``unreadable`` with a warning, so a long extraction is not lost to one file.
    """

    def __init__(self, paths: list[Path], size: int, root: Path | None = None, resize: int | None = None):
        self.paths = paths
        self.size = size
        self.resize = resize or size
        self.root = root
        self.shape = (len(paths), 3, size, size)
        self.unreadable: list[str] = []

    def __len__(self) -> int:
        return len(self.paths)

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix() if self.root is not None else path.name

    def _load(self, path: Path, in_batch: bool = False) -> torch.Tensor:
        from PIL import Image

        try:
            if path.stat().st_size > MAX_IMAGE_BYTES:
                raise DataError(f"{self.relative(path)} is larger than {MAX_IMAGE_BYTES // 1024**2} MB")
            with Image.open(path) as opened:
                image = opened.convert("RGB")
        except Exception as error:  # PIL raises many kinds (OSError, SyntaxError, struct.error, ...) for bad data
            reason = str(error) if isinstance(error, DataError) else \
                f"{self.relative(path)} is not a readable image ({error.__class__.__name__})"
            if not in_batch:
                raise DataError(f"{reason}; it changed after the folder was loaded") from error
            if self.relative(path) not in self.unreadable:
                self.unreadable.append(self.relative(path))
                warnings.warn(f"{reason}: left blank (changed after the folder was loaded)", stacklevel=3)
            return torch.zeros(self.shape[1:])
        return image_to_tensor(image, self.size, self.resize)

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            return self._load(self.paths[int(index)])
        if isinstance(index, slice):
            chosen = self.paths[index]
        else:
            chosen = [self.paths[int(i)] for i in index]
        if not chosen:
            return torch.zeros((0, *self.shape[1:]))
        return torch.stack([self._load(p, in_batch=True) for p in chosen])


def readable_image(path: Path) -> bool:
    """Cheap check at load time: within the size limit, and PIL can parse the file's structure (``verify``)."""
    from PIL import Image

    try:
        if path.stat().st_size > MAX_IMAGE_BYTES:
            return False
        with Image.open(path) as opened:
            opened.verify()
    except Exception:  # PIL raises many kinds (OSError, SyntaxError, struct.error, ...) for bad data
        return False
    return True


def resized_and_cropped(image, size: int, resize: int | None = None):
    """A PIL image with its shorter side resized to ``resize`` (default ``size``), bilinearly, then centre-cropped
    to ``size`` x ``size``: exactly the geometry of torchvision's ``weights.transforms()``."""
    from torchvision.transforms import InterpolationMode
    from torchvision.transforms import functional

    image = functional.resize(image, resize or size, InterpolationMode.BILINEAR)
    return functional.center_crop(image, [size, size])


def image_to_tensor(image, size: int, resize: int | None = None) -> torch.Tensor:
    """A PIL image -> (3, size, size) float32 in [0, 1]: shorter side resized to ``resize`` (default ``size``),
    then centre-cropped (:func:`resized_and_cropped`)."""
    return uint8_to_float(image_to_uint8(image, size, resize))


def image_to_uint8(image, size: int, resize: int | None = None) -> torch.Tensor:
    """A PIL image (RGB) -> (3, size, size) uint8, as :func:`image_to_tensor` before scaling: what decoding
    workers send (a quarter of the bytes of float32)."""
    pixels = np.asarray(resized_and_cropped(image, size, resize), dtype=np.uint8)
    return torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous()


def load_folder(path: str | Path, size: int = 224, resize: int | None = None) -> Dataset:
    """An image folder: one subfolder per class (ImageFolder layout), or a flat folder of unlabelled images.

    Each file is checked cheaply (:func:`readable_image`); unreadable or oversized ones are left out and listed in
    ``Dataset.skipped`` (paths relative to the folder, e.g. ``dogs/broken.png``). Images are read lazily with their
    shorter side resized to ``resize`` (default ``size``) and centre-cropped to ``size``.
    """
    resize = resize or size
    root = Path(path).expanduser()
    if not root.is_dir():
        raise DataError(f"{path} is not a folder")
    subfolders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    groups = [(d.name, sorted(f for f in d.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)) for d in subfolders]
    groups = [(name, files) for name, files in groups if files]
    if not groups:
        flat = sorted(f for f in root.iterdir() if f.suffix.lower() in IMAGE_SUFFIXES)
        groups = [("unlabelled", flat)] if flat else []
    if not groups:
        raise DataError(f"{path} holds no images ({', '.join(sorted(IMAGE_SUFFIXES))})")
    hasher = hashlib.blake2b(digest_size=16)
    for file in (file for _, files in groups for file in files):
        stat = file.stat()
        hasher.update(f"{file.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    skipped = [file.relative_to(root).as_posix() for _, files in groups for file in files if not readable_image(file)]
    left_out = set(skipped)
    groups = [(name, [f for f in files if f.relative_to(root).as_posix() not in left_out]) for name, files in groups]
    groups = [(name, files) for name, files in groups if files]
    if not groups:
        raise DataError(f"{path} holds no readable images ({len(skipped)} unreadable: {', '.join(skipped[:5])})")
    paths = [file for _, files in groups for file in files]
    labels = torch.tensor([k for k, (_, files) in enumerate(groups) for _ in files], dtype=torch.int64)
    generator = torch.Generator().manual_seed(0)
    is_test = torch.rand(len(paths), generator=generator) < 0.2
    return Dataset(
        name=str(root),
        images=FolderImages(paths, size, root, resize),
        labels=labels,
        classes=[name for name, _ in groups],
        is_test=is_test,
        description=f"image folder {root.name}: {len(paths)} images, {len(groups)} classes, shown at {size}x{size}"
                    + (f"; {len(skipped)} unreadable file{'s' * (len(skipped) != 1)} skipped" if skipped else ""),
        fingerprint=f"folder:{size}:" + (f"{resize}:" if resize != size else "") + hasher.hexdigest(),
        # Not known until the images are decoded: compute.data_mean.data_mean measures the folder on first use.
        channel_mean=(),
        skipped=skipped,
    )


@functools.lru_cache(maxsize=4)
def load(name: str = "digits", preprocessing: Preprocessing | None = None, download: bool = False) -> Dataset:
    """Load a data set by table name, a stored torchvision set (``cifar10[:ROOT]``, ...; ``download`` fetches it
    when missing), or an image folder by path, brought to the model by ``preprocessing``. DataError names the
    valid choices."""
    spec = DATASETS.get(name)
    if spec is not None:
        return with_preprocessing(spec.loader(), preprocessing)
    if torchvision_data.is_stored_name(name):
        return with_preprocessing(torchvision_data.load_stored(name, download), preprocessing)
    if Path(name).expanduser().is_dir():
        preprocessing = preprocessing or Preprocessing()
        return load_folder(name, preprocessing.size or 224, preprocessing.resize)
    raise DataError(f"unknown data set {name!r}; choose one of: {', '.join(DATASETS)}, "
                    f"{', '.join(f'{n}[:ROOT]' for n in torchvision_data.STORED)}, or a folder of images")


def with_preprocessing(dataset: Dataset, preprocessing: Preprocessing | None) -> Dataset:
    """``dataset`` with its images resized, cropped and given channels lazily (:class:`TransformedImages`)."""
    if preprocessing is None or (preprocessing.size is None and preprocessing.channels is None):
        return dataset
    images = TransformedImages(dataset.images, preprocessing)
    if tuple(images.shape) == tuple(dataset.images.shape) and not isinstance(dataset.images, TransformedImages):
        return dataset  # nothing to do: keep the plain tensor
    return dataclasses.replace(dataset, images=images, fingerprint=f"{dataset.fingerprint}|{preprocessing}",
                               description=f"{dataset.description}, shown at {images.shape[2]}x{images.shape[3]}")
