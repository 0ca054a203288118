"""Model table, the built-in digits CNN, its training with a checkpoint per epoch, and loading.

``load("digits-cnn")`` trains the built-in model on first use (CPU, well under a minute) and keeps one
checkpoint per epoch, epoch 0 (untrained) included, in the cache directory; later calls only read them.
``load("resnet18", weights="DEFAULT")`` builds a torchvision classifier with weights from the local torch hub cache
(``checkpoint=`` a state dict, ``weights="random"``); ``package.module:function`` and TorchScript files load too
(:mod:`compute.model_sources`). Nothing is downloaded; every ``torch.load`` is ``weights_only=True``.
"""
from __future__ import annotations

import copy
import hashlib
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from compute import data as data_module
from compute import model_sources
from compute.cache import cache_dir
from compute.device import model_device as device_of
from compute.errors import ModelError
from compute.model_sources import IMAGENET_MEAN, IMAGENET_STD, TORCHVISION_INPUT_SHAPE  # noqa: F401
from compute.state_dicts import MAX_CHECKPOINT_BYTES, load_state, read_state_dict  # noqa: F401
from compute.progress import Progress
from compute.specs.models import MODELS, ModelSpec, default_dataset, default_model  # noqa: F401  (the table lives in specs)



def flush_denormals() -> None:
    """Treat denormal floats as zero on the CPU (process-wide).

    The digits are mostly exact zeros and training drives many weights and gradients into the denormal
    range, which x86 CPUs compute ~18x slower (measured: 12.4 s vs 0.68 s for one epoch).
    """
    torch.set_flush_denormal(True)


# The first layer is what the filters slide shows. Its 5x5 kernels were chosen by measurement over 3x3, 5x5 and 7x7
# on the digits (README, "The course's claims"): 5x5 learnt the most oriented stroke detectors, where 7x7 learnt mostly round
# blobs and 3x3 is too small to show a stroke. They start from a tenth of PyTorch's default initialisation: the
# untrained filters are white noise, only weak. The digits are 8x8 scans upsampled bilinearly and hold no high
# spatial frequencies, so no gradient ever reaches that part of a random kernel; at full size it would stay and
# hide what training draws (trained 5x5 filters then scored 0.33, against 0.80 from the small start). A small
# positive bias keeps every first-layer unit alive (with zero bias 6 of 16 died: they stay noise), and the layer
# learns at FIRST_LAYER_LR_FACTOR times the rest's rate (at the same rate 3 units died and 4, not 12, were
# oriented).
FIRST_KERNEL = 5
FIRST_INIT_SCALE = 0.1
FIRST_BIAS = 0.05
FIRST_LAYER_LR_FACTOR = 3.0
INPUT_SIDE = 32


class SmallCNN(nn.Module):
    """Three conv+ReLU+max-pool stages and two linear layers for ``in_channels`` x 32 x 32 images.

    Every stage is its own named module (ReLUs too) so each can be picked as a layer and hooked.
    ``width`` multiplies the conv channels (16, 32, 64 at the default 1.0, which saved checkpoints expect). The
    first conv has FIRST_KERNEL x FIRST_KERNEL kernels (see above), the others 3x3. ``input_shape`` (C, H, W) says
    what the model takes, so tools that need an input (layer listing, maximisation) need not guess it.
    """

    in_channels = 1

    def __init__(self, num_classes: int = 10, width: float = 1.0):
        super().__init__()
        c1, c2, c3 = (max(1, round(channels * width)) for channels in (16, 32, 64))
        self.input_shape = (self.in_channels, INPUT_SIDE, INPUT_SIDE)
        self.conv1 = nn.Conv2d(self.in_channels, c1, FIRST_KERNEL, padding=FIRST_KERNEL // 2)
        self.relu1, self.pool1 = nn.ReLU(), nn.MaxPool2d(2)
        self.conv2, self.relu2, self.pool2 = nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv3, self.relu3, self.pool3 = nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1, self.relu4 = nn.Linear(c3 * 4 * 4, 128), nn.ReLU()
        self.logits = nn.Linear(128, num_classes)
        with torch.no_grad():
            self.conv1.weight.mul_(FIRST_INIT_SCALE)
            self.conv1.bias.fill_(FIRST_BIAS)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(images)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.pool3(self.relu3(self.conv3(x)))
        return self.logits(self.relu4(self.fc1(self.flatten(x))))


class DigitsCNN(SmallCNN):
    """:class:`SmallCNN` for grey 1x32x32 images: the built-in model of the digits."""

    in_channels = 1


class ColourCNN(SmallCNN):
    """:class:`SmallCNN` for colour 3x32x32 images: the built-in model of CIFAR-10 (its first filters are colour)."""

    in_channels = 3


def small_cnn_class(in_channels: int) -> type[SmallCNN]:
    """The built-in architecture for images of ``in_channels`` channels (1: grey, 3: colour)."""
    if int(in_channels) not in (1, 3):
        raise ModelError(f"the built-in CNN takes 1 or 3 input channels, not {in_channels}")
    return DigitsCNN if int(in_channels) == 1 else ColourCNN


@dataclass(frozen=True)
class Checkpoint:
    epoch: int
    path: Path
    test_accuracy: float | None


def training_data(name: str, dataset: "data_module.Dataset | None" = None) -> "data_module.Dataset":
    """The data set built-in model ``name`` trains on: ``dataset`` when it is of the model's kind (CIFAR-10 from
    any ROOT, say), else the model's own (the digits CNN always learns the digits)."""
    spec = MODELS[name]
    if dataset is not None and dataset.name == spec.dataset:
        return dataset
    return data_module.load(spec.dataset)


def checkpoint_dir(name: str, dataset: "data_module.Dataset | None" = None) -> Path:
    """Where built-in model ``name`` keeps its per-epoch checkpoints when trained on ``dataset``.

    A model of a fixed table data set (the digits) has one folder, ``checkpoints/<name>``; one of a data set read
    from disk (CIFAR-10 from a ROOT) has one per content, ``checkpoints/<name>/data-<hash of its fingerprint>``, so a
    small CIFAR-format folder never shares checkpoints with the real CIFAR-10.
    """
    base = cache_dir() / "checkpoints" / name
    if MODELS[name].dataset in data_module.DATASETS:
        return base
    fingerprint = training_data(name, dataset).fingerprint
    return base / f"data-{hashlib.blake2b(fingerprint.encode(), digest_size=8).hexdigest()}"


def _history_path(name: str, dataset=None) -> Path:
    return checkpoint_dir(name, dataset) / "history.json"


def checkpoints(name: str = "digits-cnn", dataset: "data_module.Dataset | None" = None) -> list[Checkpoint]:
    """The per-epoch checkpoints of a built-in model (on ``dataset``, see :func:`training_data`), oldest first
    (empty until it has been trained)."""
    history_file = _history_path(name, dataset)
    if not history_file.exists():
        return []
    history = json.loads(history_file.read_text())
    if not history.get("complete"):
        return []
    return [
        Checkpoint(row["epoch"], history_file.parent / f"epoch_{row['epoch']:03d}.pt", row.get("test_accuracy"))
        for row in history["epochs"]
    ]


def _batches(images, indices: torch.Tensor, batch_size: int, device) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """(positions, images as float32 on ``device``) for ``indices`` in batches: a lazily decoded data set (CIFAR's
    uint8 images) is never held as floats all at once."""
    for start in range(0, len(indices), batch_size):
        chosen = indices[start : start + batch_size]
        yield chosen, images[chosen].to(device=device, dtype=torch.float32)


def accuracy(model: nn.Module, images, labels: torch.Tensor, batch_size: int = 512,
             index: torch.Tensor | None = None) -> float:
    """Fraction of ``images`` (N, C, H, W), a tensor or a lazily loaded data set, whose arg-max logit equals
    ``labels`` (N,); with ``index``, of those rows only."""
    model.eval()
    index = torch.arange(len(labels)) if index is None else index
    correct = 0
    with torch.no_grad():
        for chosen, batch in _batches(images, index, batch_size, device_of(model)):
            correct += int((model(batch).argmax(1).cpu() == labels[chosen]).sum())
    return correct / max(1, len(index))


def train_digits_cnn(epochs: int = 10, seed: int = 0, progress: Progress | None = None, lr: float = 3e-3,
                     width: float = 1.0, directory: Path | None = None, device: str | torch.device = "cpu") -> list[dict]:
    """:func:`train_built_in` of the digits CNN (the evolution view's runs use it with other settings)."""
    return train_built_in("digits-cnn", epochs, seed, progress, lr, width, directory, device)


def train_built_in(name: str = "digits-cnn", epochs: int | None = None, seed: int = 0,
                   progress: Progress | None = None, lr: float = 3e-3, width: float = 1.0,
                   directory: Path | None = None, device: str | torch.device = "cpu",
                   dataset: "data_module.Dataset | None" = None) -> list[dict]:
    """Train built-in model ``name`` on its training data (:func:`training_data`'s training split); save
    ``epoch_000.pt`` (untrained) to ``epoch_NNN.pt``.

    ``epochs`` defaults to the model's; ``lr`` is the one-cycle schedule's peak (the first conv layer's is
    FIRST_LAYER_LR_FACTOR times it), ``width`` the channel multiplier; checkpoints and ``history.json`` (with these
    settings) go to ``directory`` (default: :func:`checkpoint_dir`). Each epoch draws the model's ``train_images``
    of the training split (all when None). Deterministic for a given seed and thread count on the CPU. Returns the
    history rows (epoch, loss, test accuracy).
    """
    flush_denormals()
    spec = MODELS[name]
    epochs = spec.epochs if epochs is None else epochs
    dataset = training_data(name, dataset)
    directory = Path(directory) if directory is not None else checkpoint_dir(name, dataset)
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = spec.build(len(dataset.classes), width=width).to(device)
    train_index = (~dataset.is_test).nonzero().flatten()
    test_index = dataset.is_test.nonzero().flatten()
    labels = dataset.labels
    first = list(model.conv1.parameters())
    rest = [p for n, p in model.named_parameters() if not n.startswith("conv1.")]
    peaks = [lr, lr * FIRST_LAYER_LR_FACTOR]
    optimizer = torch.optim.Adam([{"params": rest, "lr": peaks[0]}, {"params": first, "lr": peaks[1]}])
    per_epoch = min(len(train_index), spec.train_images or len(train_index))
    steps_per_epoch = -(-per_epoch // 64)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=peaks, total_steps=max(1, epochs * steps_per_epoch))
    generator = torch.Generator().manual_seed(seed)
    history: list[dict] = []
    text = f"training {spec.short or name}"

    def save(epoch: int, loss: float | None) -> None:
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, directory / f"epoch_{epoch:03d}.pt")
        history.append({"epoch": epoch, "train_loss": loss, "test_accuracy": accuracy(model, dataset.images, labels, index=test_index)})

    save(0, None)
    for epoch in range(1, epochs + 1):
        if progress:
            progress((epoch - 1) / epochs, f"{text}: epoch {epoch}/{epochs}")
        model.train()
        order = train_index[torch.randperm(len(train_index), generator=generator)[:per_epoch]]
        total_loss = 0.0
        for start, (chosen, images) in zip(range(0, per_epoch, 64), _batches(dataset.images, order, 64, device)):
            if progress and start:  # every step, so a cancelled job stops within one batch
                progress((epoch - 1 + start / per_epoch) / epochs, f"{text}: epoch {epoch}/{epochs}")
            # Small random shifts: the 8x8 scans are centred, and shifting makes the maps more telling.
            shift = torch.randint(-2, 3, (2,), generator=generator).tolist()
            images = torch.roll(images, shifts=shift, dims=(2, 3))
            loss = nn.functional.cross_entropy(model(images), labels[chosen].to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(chosen)
        save(epoch, total_loss / per_epoch)
    # Written last: a run that was interrupted leaves no "complete" history and is redone.
    settings = {"epochs": epochs, "lr": lr, "width": width, "seed": seed}
    (directory / "history.json").write_text(json.dumps({"complete": True, "settings": settings,
                                                        "data": dataset.fingerprint, "epochs": history}, indent=1))
    if progress:
        progress(1.0, f"trained: test accuracy {history[-1]['test_accuracy']:.1%}")
    return history


def ensure_trained(name: str = "digits-cnn", progress: Progress | None = None,
                   dataset: "data_module.Dataset | None" = None) -> list[Checkpoint]:
    """Train the built-in model once on ``dataset`` (see :func:`training_data`); other processes wait on a lock
    instead of training twice."""
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}, or a torchvision name")
    dataset = training_data(name, dataset)
    found = checkpoints(name, dataset)
    if found:
        return found
    from filelock import FileLock  # installed with torch

    directory = checkpoint_dir(name, dataset)
    directory.mkdir(parents=True, exist_ok=True)
    # An OS file lock dies with its process, so a server killed mid-training does not block the next one.
    with FileLock(str(directory / "train.lock")):
        found = checkpoints(name, dataset)
        if not found:
            train_built_in(name, progress=progress, dataset=dataset)
            found = checkpoints(name, dataset)
    return found


def fresh_copy(model: nn.Module, seed: int = 0) -> nn.Module:
    """The architecture of ``model`` freshly initialised from ``seed`` (for the sanity check's untrained model), on
    the same device and in the same mode.

    Built-in models: ``type(model)()``. torchvision models: ``get_model(name, weights=None, num_classes=...)``
    with the same forward pre-hooks (the normalisation). Other models: a deep copy with every
    ``reset_parameters`` called. The global random state is left as it was.
    """
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        name = getattr(model, "torchvision_name", None)
        if isinstance(model, tuple(spec.build for spec in MODELS.values() if isinstance(spec.build, type))):
            fresh = type(model)()
        elif name is not None:
            import torchvision

            num_classes = [m for m in model.modules() if isinstance(m, nn.Linear)][-1].out_features
            fresh = torchvision.models.get_model(name, weights=None, num_classes=num_classes)
            fresh.torchvision_name = name
            fresh.input_shape = getattr(model, "input_shape", None)
            for hook in model._forward_pre_hooks.values():
                fresh.register_forward_pre_hook(hook)
        elif hasattr(model, "scripted"):
            raise ModelError("a TorchScript model cannot be re-initialised (its architecture is compiled code): "
                             "the untrained comparison needs a torchvision name or package.module:function")
        else:
            fresh = copy.deepcopy(model)
            for submodule in fresh.modules():
                if callable(getattr(submodule, "reset_parameters", None)):
                    submodule.reset_parameters()
    return fresh.to(device_of(model)).train(model.training)


def build(name: str = "digits-cnn", num_classes: int = 10) -> nn.Module:
    """The untrained architecture of a built-in model (cheap: for listing layers before training)."""
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name].build(num_classes)


def load(
    name: str = "digits-cnn",
    epoch: int | None = None,
    checkpoint: str | None = None,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    weights: str | None = None,
    num_classes: int | None = None,
    dataset: "data_module.Dataset | None" = None,
) -> nn.Module:
    """The model in eval mode on ``device``.

    ``name``: a built-in model (trained on first use; ``epoch`` picks a per-epoch checkpoint, None = last, or
    ``checkpoint`` a file of the same architecture); a torchvision classifier with ``weights`` (DEFAULT or an enum
    name, read from the torch hub cache; ``random``) or ``checkpoint``; ``package.module:function`` building the
    model (``checkpoint`` optional); or a TorchScript file. See :mod:`compute.model_sources`. ``num_classes``:
    the outputs of a torchvision model with random weights (default 1000). ``dataset``: the data a built-in model
    trains on when it is of the model's kind (CIFAR-10 from any ROOT for cifar10-cnn; see :func:`training_data`).
    """
    flush_denormals()
    if name in MODELS:
        if weights not in (None, ""):
            raise ModelError(f"--weights is for torchvision models; {name} is built in (use --checkpoint or --epoch)")
        if checkpoint is not None:
            model = build(name)
            load_state(model, read_state_dict(checkpoint), Path(checkpoint).name)
        else:
            dataset = training_data(name, dataset)
            model = build(name, len(dataset.classes))
            found = ensure_trained(name, progress, dataset)
            chosen = found[-1] if epoch is None else next((c for c in found if c.epoch == epoch), None)
            if chosen is None:
                raise ModelError(f"{name} has no checkpoint for epoch {epoch}; epochs 0..{found[-1].epoch}")
            load_state(model, read_state_dict(chosen.path), chosen.path.name)
    elif model_sources.is_factory(name):
        model = model_sources.factory_model(name, checkpoint)
    elif model_sources.is_torchscript(name):
        if checkpoint is not None:
            raise ModelError(f"{name} is a TorchScript file and holds its weights: leave out --checkpoint")
        model = model_sources.torchscript_model(name)
    elif model_sources.is_torchvision(name):
        model = model_sources.torchvision_model(name, weights, checkpoint, num_classes)
    else:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}, a torchvision classifier name "
                         "(resnet18, ...), package.module:function, or a TorchScript file")
    return model.to(device).eval()
