"""torchvision's stored data sets (CIFAR-10, MNIST, Fashion-MNIST) read from disk, and lazily preprocessed images.

``--data cifar10`` reads ``<cache dir>/datasets``; ``--data cifar10:/path`` reads ``/path``, laid out as torchvision
lays them out (``cifar-10-batches-py/``, ``MNIST/raw/``, ``FashionMNIST/raw/``). Nothing is fetched unless
``download`` is asked for; then torchvision downloads and checks the files. Training and test splits are both
loaded; ``is_test`` marks the official test split. Images are kept as uint8 and scaled to [0, 1] per batch.

CIFAR-10's batches are Python pickles: they are read with an unpickler that accepts only numpy arrays, so a
tampered file cannot run code (torchvision's own reader unpickles anything, after an md5 check of the download).
"""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from compute.cache import cache_dir, tensor_fingerprint
from compute.dataset import Dataset, Preprocessing, uint8_to_float
from compute.errors import DataError

CIFAR_FOLDER = "cifar-10-batches-py"
CIFAR_FILES = [f"data_batch_{k}" for k in range(1, 6)] + ["test_batch", "batches.meta"]
IDX_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
# name -> (description, torchvision class name, folder under the root holding raw/ (idx formats))
STORED = {
    "cifar10": ("CIFAR-10: 60,000 colour images 32x32, 10 classes", "CIFAR10", CIFAR_FOLDER),
    "mnist": ("MNIST: 70,000 handwritten digits 28x28", "MNIST", "MNIST"),
    "fashion-mnist": ("Fashion-MNIST: 70,000 clothing images 28x28, 10 classes", "FashionMNIST", "FashionMNIST"),
}


class TransformedImages:
    """Images stored as a tensor (N, C, H, W), uint8 or float in [0, 1], given out as float32 in [0, 1] after the
    :class:`Preprocessing` (shorter side resized bilinearly with antialiasing, centre crop, grey repeated to 3
    channels), one index or batch at a time; indexable like a tensor (int, slice, list)."""

    def __init__(self, base, preprocessing: Preprocessing):
        if isinstance(base, TransformedImages):
            base = base.base
        self.base = base
        self.preprocessing = preprocessing
        count, channels, height, width = base.shape
        size = preprocessing.size
        self.out_channels = 3 if (preprocessing.channels == 3 and channels == 1) else channels
        self.shape = (count, self.out_channels, size or height, size or width)

    def __len__(self) -> int:
        return int(self.shape[0])

    def _transform(self, batch: torch.Tensor) -> torch.Tensor:
        from torchvision.transforms import InterpolationMode
        from torchvision.transforms import functional

        batch = uint8_to_float(batch) if batch.dtype == torch.uint8 else batch.to(torch.float32)
        size, resize = self.preprocessing.size, self.preprocessing.resize or self.preprocessing.size
        if size is not None and tuple(batch.shape[-2:]) != (size, size):
            if min(batch.shape[-2:]) != resize:
                batch = functional.resize(batch, resize, InterpolationMode.BILINEAR, antialias=True).clamp_(0.0, 1.0)
            batch = functional.center_crop(batch, [size, size])
        if batch.shape[1] != self.out_channels:
            batch = batch.expand(-1, self.out_channels, -1, -1)
        return batch.contiguous()

    def __getitem__(self, index):
        if isinstance(index, (int, np.integer)):
            if not -len(self) <= int(index) < len(self):
                raise IndexError(f"image {int(index)} is out of range ({len(self)} images)")
            return self._transform(self.base[int(index)][None])[0]
        if isinstance(index, torch.Tensor) and index.dtype == torch.bool:
            index = index.nonzero().flatten()
        chosen = self.base[index] if isinstance(index, slice) else self.base[torch.as_tensor(index, dtype=torch.long)]
        if len(chosen) == 0:
            return torch.zeros((0, *self.shape[1:]))
        return self._transform(chosen)


def is_stored_name(name: str) -> bool:
    return name.split(":", 1)[0].lower() in STORED


def _root(name: str) -> tuple[str, Path]:
    kind, _, root = name.partition(":")
    return kind.lower(), (Path(root).expanduser() if root else cache_dir() / "datasets")


class _NumpyOnly(pickle.Unpickler):
    """Unpickles dicts, lists, strings and numpy arrays only."""

    ALLOWED = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
               ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.multiarray", "scalar"),
               ("numpy._core.multiarray", "scalar"), ("numpy.core.numeric", "_frombuffer"),
               ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode")}

    def find_class(self, module: str, name: str):
        if (module, name) not in self.ALLOWED:
            raise DataError(f"refused to unpickle {module}.{name}: a CIFAR batch holds only numpy arrays")
        return super().find_class(module, name)


def _read_pickle(path: Path) -> dict:
    try:
        with path.open("rb") as file:
            return _NumpyOnly(file, encoding="latin1").load()
    except DataError:
        raise
    except Exception as error:
        raise DataError(f"{path} is not a readable CIFAR batch ({type(error).__name__})") from None


def _cifar10(root: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    folder = root / CIFAR_FOLDER
    if download and not all((folder / f).is_file() for f in CIFAR_FILES):
        import torchvision

        torchvision.datasets.CIFAR10(str(root), train=True, download=True)  # fetches, checks md5, extracts
    absent = [f for f in CIFAR_FILES if not (folder / f).is_file()]
    if absent:
        raise DataError(f"CIFAR-10 is not in {folder} (missing {', '.join(absent[:3])}{' ...' if len(absent) > 3 else ''}): "
                        f"put the extracted cifar-10-python.tar.gz there, give --data cifar10:ROOT, or add --download")
    images, labels, test = [], [], []
    for name in CIFAR_FILES[:-1]:
        batch = _read_pickle(folder / name)
        pixels = np.asarray(batch["data"], dtype=np.uint8).reshape(-1, 3, 32, 32)
        images.append(pixels)
        labels.append(np.asarray(batch.get("labels", batch.get("fine_labels")), dtype=np.int64))
        test.append(np.full(len(pixels), name == "test_batch"))
    classes = [str(c) for c in _read_pickle(folder / "batches.meta")["label_names"]]
    return (torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels)),
            torch.from_numpy(np.concatenate(test)), classes)


def _idx_set(kind: str, root: Path, download: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[str]]:
    import torchvision

    description, class_name, folder = STORED[kind]
    factory = getattr(torchvision.datasets, class_name)
    parts = []
    for train in (True, False):
        try:
            parts.append(factory(str(root), train=train, download=download))
        except RuntimeError as error:
            if "not found" not in str(error).lower():
                raise DataError(f"{class_name} in {root / folder / 'raw'} cannot be read: {str(error)[:160]}") from None
            raise DataError(f"{class_name} is not in {root / folder / 'raw'} (needs {', '.join(IDX_FILES)}): "
                            f"put the files there, give --data {kind}:ROOT, or add --download") from None
        except Exception as error:  # a truncated or foreign idx file
            raise DataError(f"{class_name} in {root / folder / 'raw'} cannot be read ({type(error).__name__}: "
                            f"{str(error)[:120]})") from None
    images = torch.cat([part.data for part in parts]).unsqueeze(1).to(torch.uint8)
    labels = torch.cat([torch.as_tensor(part.targets) for part in parts]).to(torch.int64)
    test = torch.cat([torch.zeros(len(parts[0].data), dtype=torch.bool), torch.ones(len(parts[1].data), dtype=torch.bool)])
    return images, labels, test, list(parts[0].classes)


def _channel_mean(images: torch.Tensor, chunk: int = 10_000) -> tuple[float, ...]:
    """Mean of each channel in [0, 1], summed a chunk at a time (all of CIFAR-10 as float32 would be 740 MB)."""
    totals = sum(images[start:start + chunk].sum(dim=(0, 2, 3), dtype=torch.float64)
                 for start in range(0, len(images), chunk))
    return tuple((totals / (images.numel() / images.shape[1]) / 255.0).tolist())


def load_stored(name: str, download: bool = False) -> Dataset:
    """``cifar10[:ROOT]``, ``mnist[:ROOT]`` or ``fashion-mnist[:ROOT]`` from disk (``download``: fetch if missing)."""
    kind, root = _root(name)
    if kind not in STORED:
        raise DataError(f"unknown stored data set {kind!r}; choose one of: {', '.join(STORED)}")
    if kind == "cifar10":
        images, labels, is_test, classes = _cifar10(root, download)
    else:
        images, labels, is_test, classes = _idx_set(kind, root, download)
    return Dataset(
        name=kind,
        images=TransformedImages(images, Preprocessing()),
        labels=labels,
        classes=classes,
        is_test=is_test,
        description=f"{STORED[kind][0]} ({len(labels):,} images from {root})",
        fingerprint=f"{kind}:" + tensor_fingerprint(images) + tensor_fingerprint(labels),
        channel_mean=_channel_mean(images),
    )
