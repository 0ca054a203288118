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
    ),
}


def default_dataset(name: str) -> str:
    """The data set a model is meant for: its table entry's, else the digits."""
    spec = MODELS.get(name)
    return spec.dataset if spec else "digits"


def is_built_in(model: str, checkpoint: str | None) -> bool:
    """A built-in model trained here (per-epoch checkpoints exist), not one loaded from the user's checkpoint."""
    return model in MODELS and checkpoint is None
