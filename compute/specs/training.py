"""What a training run of the built-in CNN may ask for (the evolution view's controls), without torch."""
from __future__ import annotations

from compute.errors import UserError
from compute.specs.models import MODELS

MODEL = "digits-cnn"
DEFAULT_RUN = "default"
# The built-in model's own training (``models.train_digits_cnn``'s defaults).
DEFAULT_SETTINGS = {"epochs": MODELS[MODEL].epochs, "lr": 3e-3, "width": 1.0, "seed": 0}
# What a run may ask for: enough to compare settings, small enough to train on a CPU in minutes.
LIMITS = {"epochs": (1, 50), "lr": (1e-5, 1.0), "width": (0.125, 4.0), "seed": (0, 2**31 - 1)}


def check_settings(epochs: int, lr: float, width: float, seed: int) -> dict:
    """The settings as plain numbers; UserError naming the allowed range of the first one out of range."""
    settings = {"epochs": int(epochs), "lr": float(lr), "width": float(width), "seed": int(seed)}
    for key, value in settings.items():
        low, high = LIMITS[key]
        if not low <= value <= high:
            raise UserError(f"{key} must be between {low:g} and {high:g}, not {value:g}")
    return settings
