"""Model table, the built-in digits CNN, its training with a checkpoint per epoch, and loading.

``load("digits-cnn")`` trains the built-in model on first use (CPU, well under a minute) and keeps one
checkpoint per epoch, epoch 0 (untrained) included, in the cache directory; later calls only read them.
``load("resnet18", weights="DEFAULT")`` builds a torchvision classifier with weights from the local torch hub cache
(``checkpoint=`` a state dict, ``weights="random"``); ``package.module:function`` and TorchScript files load too
(:mod:`compute.model_sources`). Nothing is downloaded; every ``torch.load`` is ``weights_only=True``.
"""
from __future__ import annotations

import copy
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

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
from compute.specs.models import MODELS, ModelSpec, default_dataset  # noqa: F401  (the table lives in specs)



def flush_denormals() -> None:
    """Treat denormal floats as zero on the CPU (process-wide).

    The digits are mostly exact zeros and training drives many weights and gradients into the denormal
    range, which x86 CPUs compute ~18x slower (measured: 12.4 s vs 0.68 s for one epoch).
    """
    torch.set_flush_denormal(True)


class DigitsCNN(nn.Module):
    """Three conv+ReLU+max-pool stages and two linear layers for 1x32x32 digits.

    Every stage is its own named module (ReLUs too) so each can be picked as a layer and hooked.
    ``width`` multiplies the conv channels (16, 32, 64 at the default 1.0, which saved checkpoints expect).
    """

    def __init__(self, num_classes: int = 10, width: float = 1.0):
        super().__init__()
        c1, c2, c3 = (max(1, round(channels * width)) for channels in (16, 32, 64))
        self.conv1, self.relu1, self.pool1 = nn.Conv2d(1, c1, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv2, self.relu2, self.pool2 = nn.Conv2d(c1, c2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv3, self.relu3, self.pool3 = nn.Conv2d(c2, c3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.flatten = nn.Flatten()
        self.fc1, self.relu4 = nn.Linear(c3 * 4 * 4, 128), nn.ReLU()
        self.logits = nn.Linear(128, num_classes)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = self.pool1(self.relu1(self.conv1(images)))
        x = self.pool2(self.relu2(self.conv2(x)))
        x = self.pool3(self.relu3(self.conv3(x)))
        return self.logits(self.relu4(self.fc1(self.flatten(x))))




@dataclass(frozen=True)
class Checkpoint:
    epoch: int
    path: Path
    test_accuracy: float | None


def _checkpoint_dir(name: str) -> Path:
    return cache_dir() / "checkpoints" / name


def _history_path(name: str) -> Path:
    return _checkpoint_dir(name) / "history.json"


def checkpoints(name: str = "digits-cnn") -> list[Checkpoint]:
    """The per-epoch checkpoints of a built-in model, oldest first (empty until it has been trained)."""
    history_file = _history_path(name)
    if not history_file.exists():
        return []
    history = json.loads(history_file.read_text())
    if not history.get("complete"):
        return []
    return [
        Checkpoint(row["epoch"], _checkpoint_dir(name) / f"epoch_{row['epoch']:03d}.pt", row.get("test_accuracy"))
        for row in history["epochs"]
    ]


def accuracy(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 512) -> float:
    """Fraction of ``images`` (N, C, H, W) whose arg-max logit equals ``labels`` (N,)."""
    model.eval()
    correct = 0
    with torch.no_grad():
        for start in range(0, len(labels), batch_size):
            logits = model(images[start : start + batch_size])
            correct += int((logits.argmax(1) == labels[start : start + batch_size]).sum())
    return correct / max(1, len(labels))


def train_digits_cnn(epochs: int = 10, seed: int = 0, progress: Progress | None = None, lr: float = 3e-3,
                     width: float = 1.0, directory: Path | None = None, device: str | torch.device = "cpu") -> list[dict]:
    """Train :class:`DigitsCNN` on the digits' training split; save ``epoch_000.pt`` (untrained) to ``epoch_NNN.pt``.

    ``lr`` is the one-cycle schedule's peak, ``width`` the channel multiplier; checkpoints and ``history.json``
    (with these settings) go to ``directory`` (default: the built-in model's). Deterministic for a given seed and
    thread count on the CPU. Returns the history rows (epoch, loss, test accuracy).
    """
    flush_denormals()
    dataset = data_module.load("digits")
    directory = Path(directory) if directory is not None else _checkpoint_dir("digits-cnn")
    directory.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    model = DigitsCNN(len(dataset.classes), width=width).to(device)
    train_images, train_labels = dataset.images[~dataset.is_test].to(device), dataset.labels[~dataset.is_test].to(device)
    test_images, test_labels = dataset.images[dataset.is_test].to(device), dataset.labels[dataset.is_test].to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = -(-len(train_labels) // 64)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(seed)
    history: list[dict] = []

    def save(epoch: int, loss: float | None) -> None:
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, directory / f"epoch_{epoch:03d}.pt")
        history.append({"epoch": epoch, "train_loss": loss, "test_accuracy": accuracy(model, test_images, test_labels)})

    save(0, None)
    for epoch in range(1, epochs + 1):
        if progress:
            progress((epoch - 1) / epochs, f"training the digits CNN: epoch {epoch}/{epochs}")
        model.train()
        order = torch.randperm(len(train_labels), generator=generator)
        total_loss = 0.0
        for start in range(0, len(order), 64):
            if progress and start:  # every step, so a cancelled job stops within one batch
                progress((epoch - 1 + start / len(order)) / epochs, f"training the digits CNN: epoch {epoch}/{epochs}")
            batch = order[start : start + 64].to(device)
            # Small random shifts: the 8x8 scans are centred, and shifting makes the maps more telling.
            shift = torch.randint(-2, 3, (2,), generator=generator).tolist()
            images = torch.roll(train_images[batch], shifts=shift, dims=(2, 3))
            loss = nn.functional.cross_entropy(model(images), train_labels[batch])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            schedule.step()
            total_loss += loss.item() * len(batch)
        save(epoch, total_loss / len(order))
    # Written last: a run that was interrupted leaves no "complete" history and is redone.
    settings = {"epochs": epochs, "lr": lr, "width": width, "seed": seed}
    (directory / "history.json").write_text(json.dumps({"complete": True, "settings": settings, "epochs": history}, indent=1))
    if progress:
        progress(1.0, f"trained: test accuracy {history[-1]['test_accuracy']:.1%}")
    return history


def ensure_trained(name: str = "digits-cnn", progress: Progress | None = None) -> list[Checkpoint]:
    """Train the built-in model once (other processes wait on a lock instead of training twice)."""
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}, or a torchvision name")
    found = checkpoints(name)
    if found:
        return found
    from filelock import FileLock  # installed with torch

    _checkpoint_dir(name).mkdir(parents=True, exist_ok=True)
    # An OS file lock dies with its process, so a server killed mid-training does not block the next one.
    with FileLock(str(_checkpoint_dir(name) / "train.lock")):
        found = checkpoints(name)
        if not found:
            train_digits_cnn(MODELS[name].epochs, progress=progress)
            found = checkpoints(name)
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


def build(name: str = "digits-cnn") -> nn.Module:
    """The untrained architecture of a built-in model (cheap: for listing layers before training)."""
    if name not in MODELS:
        raise ModelError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}")
    return MODELS[name].build()


def load(
    name: str = "digits-cnn",
    epoch: int | None = None,
    checkpoint: str | None = None,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    weights: str | None = None,
    num_classes: int | None = None,
) -> nn.Module:
    """The model in eval mode on ``device``.

    ``name``: a built-in model (trained on first use; ``epoch`` picks a per-epoch checkpoint, None = last, or
    ``checkpoint`` a file of the same architecture); a torchvision classifier with ``weights`` (DEFAULT or an enum
    name, read from the torch hub cache; ``random``) or ``checkpoint``; ``package.module:function`` building the
    model (``checkpoint`` optional); or a TorchScript file. See :mod:`compute.model_sources`. ``num_classes``:
    the outputs of a torchvision model with random weights (default 1000).
    """
    flush_denormals()
    if name in MODELS:
        if weights not in (None, ""):
            raise ModelError(f"--weights is for torchvision models; {name} is built in (use --checkpoint or --epoch)")
        model = build(name)
        if checkpoint is not None:
            load_state(model, read_state_dict(checkpoint), Path(checkpoint).name)
        else:
            found = ensure_trained(name, progress)
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
