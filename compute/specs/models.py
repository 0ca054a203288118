"""The built-in models by name, without torch: what the command line lists and which data set each is meant for."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from compute.specs.params import resolve


@dataclass(frozen=True)
class ModelSpec:
    """A built-in model: its class by import path (built without weights), data set, epochs and first layer."""

    implementation: str
    dataset: str
    description: str
    epochs: int = 0
    default_layer: str = ""
    short: str = ""  # how progress texts name it ("the digits CNN")
    train_images: int | None = None  # training images drawn per epoch (None: the whole training split)

    @property
    def build(self) -> Callable:
        return resolve(self.implementation)


MODELS: dict[str, ModelSpec] = {
    "digits-cnn": ModelSpec(
        implementation="compute.models:DigitsCNN",
        dataset="digits",
        description="small CNN (3 conv stages, 2 linear) trained here on the digits, a checkpoint per epoch",
        epochs=10,
        default_layer="relu2",
        short="the digits CNN",
    ),
    "cifar10-cnn": ModelSpec(
        implementation="compute.models:ColourCNN",
        dataset="cifar10",
        description="the same small CNN for colour images, trained here on CIFAR-10 (--data cifar10[:ROOT]), a "
                    "checkpoint per epoch",
        epochs=6,  # CIFAR-10 on two CPU cores: a fixed share of the training images per epoch (train_images)
        default_layer="relu2",
        short="the CIFAR-10 CNN",
        train_images=10_000,
    ),
}


def default_dataset(name: str) -> str:
    """The data set a model is meant for: its table entry's, else the digits."""
    spec = MODELS.get(name)
    return spec.dataset if spec else "digits"


def default_model(data: str | None) -> str:
    """The built-in model for a ``--data`` value: the one whose data set it names (``cifar10:/path`` ->
    cifar10-cnn), else the digits CNN."""
    kind = (data or "").split(":", 1)[0].lower()
    return next((name for name, spec in MODELS.items() if spec.dataset == kind), "digits-cnn")


def is_built_in(model: str, checkpoint: str | None) -> bool:
    """A built-in model trained here (per-epoch checkpoints exist), not one loaded from the user's checkpoint."""
    return model in MODELS and checkpoint is None
