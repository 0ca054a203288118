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
from compute.cache import cache_dir
from compute.device import model_device as device_of

Progress = Callable[[float, str], None]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
MAX_CHECKPOINT_BYTES = 2 * 1024**3
TORCHVISION_INPUT_SHAPE = (3, 224, 224)


def flush_denormals() -> None:
    """Treat denormal floats as zero on the CPU (process-wide).

    The digits are mostly exact zeros and training drives many weights and gradients into the denormal
    range, which x86 CPUs compute ~18x slower (measured: 12.4 s vs 0.68 s for one epoch).
    """
    torch.set_flush_denormal(True)


class ModelError(ValueError):
    """A model or checkpoint that cannot be used, with a message meant for the user."""


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
class ModelSpec:
    build: Callable[[], nn.Module]
    dataset: str
    description: str
    epochs: int = 0
    default_layer: str = ""


MODELS: dict[str, ModelSpec] = {
    "digits-cnn": ModelSpec(
        build=DigitsCNN,
        dataset="digits",
        description="small CNN (3 conv stages, 2 linear) trained here on the digits, a checkpoint per epoch",
        epochs=10,
        default_layer="relu2",
    ),
}


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


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """``torch.load(weights_only=True)`` with readable errors for missing, huge or foreign files."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(f"checkpoint {path} does not exist")
    if path.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise ModelError(f"checkpoint {path.name} is larger than {MAX_CHECKPOINT_BYTES // 1024**3} GB")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, zip and weights-only refusals all mean: not a usable checkpoint
        # from None: torch's own text advises weights_only=False, i.e. running code from the file; never repeat it.
        raise ModelError(f"{path.name} is not a usable checkpoint: {_load_failure(error)}") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{path.name} holds no state_dict (a dict of tensors)")
    return {k.removeprefix("module."): v for k, v in state.items()}


def _load_failure(error: Exception) -> str:
    """Why torch.load refused a file, in one line, without torch's advice to load it unsafely."""
    text = str(error)
    unsupported = re.search(r"Unsupported global: GLOBAL ([\w.]+)", text)
    if unsupported:
        return f"it holds Python objects ({unsupported.group(1)}), not only tensors; save model.state_dict() instead"
    if "central directory" in text or "zip archive" in text or isinstance(error, EOFError):
        return "the file is truncated or damaged (not a complete PyTorch zip archive)"
    if "Unsupported operand" in text or "invalid load key" in text or type(error).__name__ == "UnpicklingError":
        return "its contents are not a PyTorch checkpoint"
    sentences = [s.strip() for s in re.split(r"(?<=[.!?])\s+", text.replace("\n", " ")) if s.strip()]
    kept = [s for s in sentences if "weights_only" not in s and "trust" not in s]
    return (kept[0] if kept else type(error).__name__)[:200]


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


def load_state(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Load ``state`` into ``model``; a mismatch raises ModelError listing what differs."""
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong_shape = [k for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or wrong_shape:
        details = []
        for label, keys in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong_shape)):
            if keys:
                details.append(f"{label}: {', '.join(keys[:4])}{' ...' if len(keys) > 4 else ''}")
        raise ModelError(f"{source} does not match {type(model).__name__} ({'; '.join(details)})")
    model.load_state_dict(state)
    return model


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
    from compute import model_sources

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


def default_dataset(name: str) -> str:
    """The data set a model is meant for: its table entry's, else the digits."""
    spec = MODELS.get(name)
    return spec.dataset if spec else "digits"
