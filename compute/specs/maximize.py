"""Activation maximisation as the page lists it, without torch: what to maximise (``OBJECTIVES``, written as
tuples), how an image is parameterised (``PARAMETERIZATIONS``), the random transforms (``TRANSFORMS``) and the
regularizers (``REGULARIZERS``), and the run's own controls (``RUN_PARAMS``).

The functions live in :mod:`compute.maximize` (torch); each entry names its own by import path.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from compute.errors import UserError
from compute.specs.params import Method, Param

# The table the UI reads. Combinations take two objectives as their arguments, so they have no number controls.
OBJECTIVES: dict[str, Method] = {
    "class": Method("compute.maximize.objectives:class_logit", "class logit", (Param("target", "int", 0, "class", 0),),
                    "the logit of one class (Yosinski et al.: the logit, not the probability)"),
    "channel": Method("compute.maximize.objectives:channel", "channel (spatial mean)", (
        Param("layer", "layer", "", "layer"), Param("target", "int", 0, "channel", 0)),
        "the mean over positions of one channel of any layer"),
    "neuron": Method("compute.maximize.objectives:neuron", "neuron (channel at one position)", (
        Param("layer", "layer", "", "layer"), Param("target", "int", 0, "channel", 0),
        Param("y", "int", 0, "row", 0), Param("x", "int", 0, "column", 0)),
        "one channel at one position of a conv layer's map"),
    "sum": Method("compute.maximize.objectives:total", "sum of two", (), "two objectives at once"),
    "difference": Method("compute.maximize.objectives:difference", "difference of two", (), "the first objective but not the second"),
}
COMBINATIONS = {"sum", "difference"}


def normalize(spec: Any) -> tuple:
    """A spec as nested tuples with per-image targets as tuples (JSON gives lists): a stable cache key."""
    if not isinstance(spec, (list, tuple)) or not spec or spec[0] not in OBJECTIVES:
        raise UserError(f"an objective is a tuple naming one of {', '.join(OBJECTIVES)} first, got {spec!r}")
    name, *arguments = spec
    if name in COMBINATIONS:
        if len(arguments) != 2:
            raise UserError(f"{name!r} takes two objectives, got {len(arguments)}")
        return (name, normalize(arguments[0]), normalize(arguments[1]))
    expected = len(OBJECTIVES[name].params)
    if len(arguments) != expected:
        names = ", ".join(p.name for p in OBJECTIVES[name].params)
        raise UserError(f"{name!r} takes {expected} argument(s) ({names}), got {len(arguments)}: {spec!r}")
    return (name, *[tuple(int(v) for v in a) if isinstance(a, (list, tuple)) else a for a in arguments])


def describe(spec: Any, class_names: list[str] | None = None) -> str:
    """A short human title: ``class 3``, ``conv2 ch 5``, ``conv2 ch 5 at (4, 4)``, ``class 3 − class 8``."""
    name, *arguments = normalize(spec)
    if name in COMBINATIONS:
        joiner = " + " if name == "sum" else " − "
        return describe(arguments[0], class_names) + joiner + describe(arguments[1], class_names)
    if name == "class":
        target = arguments[0]
        if class_names and isinstance(target, int) and 0 <= target < len(class_names):
            return f"class {class_names[target]}"
        return f"class {target}"
    if name == "channel":
        return f"{arguments[0]} ch {arguments[1]}"
    return f"{arguments[0]} ch {arguments[1]} at ({arguments[2]}, {arguments[3]})"


def item(spec: Any, index: int) -> tuple:
    """The spec of image ``index`` alone (per-image target lists reduced to their ``index``-th entry)."""
    name, *arguments = normalize(spec)
    if name in COMBINATIONS:
        return (name, item(arguments[0], index), item(arguments[1], index))
    return (name, *[a[index] if isinstance(a, tuple) else a for a in arguments])


# ------------------------------------------------------------------------------------------ parameterizations

PARAMETERIZATIONS: dict[str, Method] = {
    "fourier": Method("compute.maximize.param:fourier", "decorrelated Fourier (Lucent)", (
        Param("decay_power", "float", 1.0, "frequency decay", 0.0, 2.0, 0.1,
              help="steps shrink as 1/frequency^this: higher gives smoother images"),
        Param("init_scale", "float", 0.01, "initial noise", 0.0, 0.1, 0.005),
    ), "Lucent's parameterization: a 1/f-scaled spectrum, colour-decorrelated for RGB, through a sigmoid"),
    "maco": Method("compute.maximize.param:magnitude_constrained", "magnitude-constrained Fourier (MACO)", (),
                   "only the phase is optimised; the magnitude spectrum is fixed to the data set's (Fel et al. 2023)"),
    "pca": Method("compute.maximize.param:pca", "principal components of the data", (
        Param("count", "int", 32, "principal components", 1, 256, 1,
              help="how many of the data's leading principal components span the images"),
        Param("init_scale", "float", 0.1, "start (× typical distance)", 0.0, 1.0, 0.05),
        Param("radius_scale", "float", 1.0, "allowed distance (× typical)", 0.1, 4.0, 0.1,
              help="how far from the mean image the result may go, in units of a typical image's distance"),
    ), "images in the span of the data set's leading principal components, no further from the mean image than a "
       "typical image (a prior from the data)"),
    "pixels": Method("compute.maximize.param:pixels", "raw pixels", (
        Param("init_noise", "float", 0.1, "initial noise", 0.0, 0.5, 0.01),
    ), "the image itself, clamped to [0, 1] after each step (Yosinski et al. 2015)"),
}


# The page's default: for small grey scans (digits, MNIST), images in the span of the data's principal components;
# Lucent's Fourier images there are black-and-white blobs the model reads at 100% but a person does not (measured on
# the digits: every class image 2.9-4.3 from its nearest scan, where 99% of the scans lie within 1.66 of another;
# with pca 0.8-1.5, and each read as its digit by a nearest-neighbour classifier of the scans). Colour and larger
# images keep Fourier: their leading components are blurry colour fields, and Fourier is the field's standard.
PRIOR_MAX_SIDE = 64


def suggested_parameterization(image_shape) -> str:
    """``pca`` for grey images up to PRIOR_MAX_SIDE pixels a side, else ``fourier`` (see above)."""
    channels, height, width = (int(v) for v in image_shape)
    return "pca" if channels == 1 and max(height, width) <= PRIOR_MAX_SIDE else "fourier"


# ------------------------------------------------------------------------------------------ transforms and regularizers

@dataclass(frozen=True)
class Transform(Method):
    """A :class:`Method` with its kind: ``pad`` (edits the canvas) or ``geometric`` (returns matrices)."""

    kind: str = "geometric"


TRANSFORMS: dict[str, Transform] = {
    "pad": Transform("compute.maximize.transforms:pad", "pad", (Param("pixels", "int", 2, "pixels", 0, 64, 1),),
                  "pad with the mean colour before the other transforms (cropped back afterwards)", kind="pad"),
    "jitter": Transform("compute.maximize.transforms:jitter", "jitter", (Param("pixels", "int", 1, "pixels", 0, 32, 1),),
                     "random whole-pixel shift"),
    "scale": Transform("compute.maximize.transforms:scale", "scale", (Param("amount", "float", 0.05, "± fraction", 0.0, 0.5, 0.01),),
                    "random zoom"),
    "rotate": Transform("compute.maximize.transforms:rotate", "rotate", (Param("degrees", "float", 5.0, "± degrees", 0.0, 45.0, 1.0),),
                     "random rotation"),
}


def suggested_transforms(height: int, width: int) -> dict[str, dict]:
    """Transforms at the model's own scale: Lucent's pad 12 / jitter 8 at 224 px, 2 / 1 at 32 px; never upsampling."""
    side = max(height, width)
    return {
        "pad": {"pixels": max(1, round(side / 18))},
        "jitter": {"pixels": max(1, round(side / 28))},
        "scale": {"amount": 0.05 if side < 64 else 0.1},
        "rotate": {"degrees": 5.0 if side < 64 else 10.0},
    }


@dataclass(frozen=True)
class Regularizer(Method):
    """A :class:`Method` with its kind: ``penalty`` (added to the loss) or ``projection`` (edits the image)."""

    kind: str = "projection"


REGULARIZERS: dict[str, Regularizer] = {
    "decay": Regularizer("compute.maximize.transforms:decay", "L2 decay", (Param("strength", "float", 0.01, "strength", 0.0, 0.5, 0.005),),
                         "shrink towards the mean colour each step (Yosinski et al.)", kind="projection"),
    "blur": Regularizer("compute.maximize.transforms:blur", "blur every few steps", (
        Param("every", "int", 4, "every (steps)", 1, 50, 1), Param("sigma", "float", 0.5, "sigma (px)", 0.0, 4.0, 0.1)),
        "Gaussian blur every few steps (Yosinski et al.)", kind="projection"),
    "clip_norm": Regularizer("compute.maximize.transforms:clip_small_norm", "clip small-norm pixels", (
        Param("percentile", "float", 10.0, "percentile", 0.0, 99.0, 1.0),),
        "set the pixels closest to the mean colour to it (Yosinski et al.)", kind="projection"),
    "clip_contribution": Regularizer("compute.maximize.transforms:clip_small_contribution", "clip small-contribution pixels", (
        Param("percentile", "float", 10.0, "percentile", 0.0, 99.0, 1.0),),
        "set the pixels that matter least for the objective to the mean colour (Yosinski et al.)", kind="projection"),
    "total_variation": Regularizer("compute.maximize.transforms:total_variation", "total variation", (
        Param("weight", "float", 1.0, "weight", 0.0, 100.0, 0.1),), "penalise differences between neighbours",
        kind="penalty"),
    "l2": Regularizer("compute.maximize.transforms:l2_penalty", "L2 penalty", (Param("weight", "float", 1.0, "weight", 0.0, 100.0, 0.1),),
                      "penalise distance from the mean colour", kind="penalty"),
}


# ------------------------------------------------------------------------------------------ the run's own controls
# (the pieces' controls come from OBJECTIVES, PARAMETERIZATIONS, TRANSFORMS, REGULARIZERS)
RUN_PARAMS: tuple[Param, ...] = (
    Param("steps", "int", 256, "steps", 1, 4096, 1),
    Param("n", "int", 1, "starts", 1, 16, 1, help="several starts find different local maxima"),
    Param("seed", "int", 0, "seed", 0, 2**31 - 1, 1),
    Param("lr", "float", 0.05, "learning rate (Adam)", 0.001, 1.0, 0.005),
    Param("parameterization", "choice", "fourier", "parameterization", choices=tuple(PARAMETERIZATIONS)),
)
