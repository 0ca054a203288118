"""What an attack may ask for, without torch: one spec that clamps every value, from a control or from a link.

Epsilon and step sizes are in pixel units (8/255 moves each pixel by at most 8 grey levels of 255).
"""
from __future__ import annotations

from compute.specs.params import Param

METHODS = ("fgsm", "pgd")
MAX_STEPS = 200  # a PGD of one image the page (or a link) may ask for
ATTACK_PARAMS: tuple[Param, ...] = (
    Param("method", "choice", "fgsm", "attack", choices=METHODS),
    Param("epsilon", "float", 8 / 255, "epsilon", 0.0, 1.0),
    Param("steps", "int", 10, "PGD steps", 1, MAX_STEPS, 1),
    Param("step_size", "float", None, "PGD step size", 1e-6, 1.0),  # None: Madry et al.'s 2.5 epsilon / steps
    Param("seed", "int", 0, "seed", 0, 2**31 - 1, 1),
)
# The smallest flipping epsilon: a bisection of PGD runs.
SMALLEST_PARAMS: tuple[Param, ...] = (
    Param("max_epsilon", "float", 32 / 255, "largest epsilon tried", 1 / 255, 1.0),
    Param("tolerance", "float", 0.25 / 255, "bisection tolerance", 0.05 / 255, 8 / 255),
    Param("steps", "int", 20, "PGD steps", 1, MAX_STEPS, 1),
    Param("seed", "int", 0, "seed", 0, 2**31 - 1, 1),
)
# The robustness curve over the test split. Pixel units: from where ImageNet models already fall (1-4/255) to where
# the digits CNN does (16-32/255).
ROBUSTNESS_EPSILONS = tuple(value / 255 for value in (0, 1, 2, 4, 8, 12, 16, 24, 32))
MAX_EPSILONS = 16
ROBUSTNESS_PARAMS: tuple[Param, ...] = (
    Param("steps", "int", 10, "PGD steps", 1, 50, 1),
    Param("seed", "int", 0, "seed", 0, 2**31 - 1, 1),
    # An image folder's test split can be large: the curve uses at most this many, evenly spaced.
    Param("max_images", "int", 2000, "test images", 1, 2000, 1),
)


def coerced(specs: tuple[Param, ...], values: dict) -> dict:
    """``values`` with every parameter of ``specs`` clamped to its range (others pass through unchanged)."""
    table = {p.name: p for p in specs}
    return {**values, **{name: table[name].coerce(values.get(name)) for name in table}}


def epsilons(values) -> tuple[float, ...]:
    """The robustness curve's epsilons: at most MAX_EPSILONS distinct values, each in [0, 1]."""
    chosen = sorted({min(1.0, max(0.0, float(v))) for v in (values if values is not None else ROBUSTNESS_EPSILONS)})
    return tuple(chosen[:MAX_EPSILONS]) or ROBUSTNESS_EPSILONS
