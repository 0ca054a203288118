"""The attribution methods and inversions as the page lists them: labels, parameter specs and what each returns.

The functions live in :mod:`compute.attribution` and :mod:`compute.gradients` (torch); this table names them by
import path, so the web server reads it without torch.
"""
from __future__ import annotations

from compute.specs.params import MapSpec, Method, Param

# The occlusion fill of each menu choice: "data" is the data set's own per-channel mean, None the image's mean.
FILLS = {"data mean": "data", "image mean": None, "zero": 0.0, "one": 1.0}

INVERSIONS: dict[str, str] = {
    "deconvnet": "Deconvnet (Zeiler & Fergus 2014)",
    "guided_backprop": "Guided backpropagation (Springenberg et al. 2015)",
}


def occlusion_suggest(image_shape: tuple[int, ...]) -> dict:
    """Box a quarter of the shorter side, stride a sixteenth: 8 and 2 for a 32-pixel digit, 56 and 14 for a
    224-pixel photo (256 forward passes instead of 12,544 with the digit's settings)."""
    side = int(min(image_shape[-2:]))
    return {"box": side // 4, "stride": side // 16}


def occlusion_covers_image(box: int, stride: int, image_shape: tuple[int, ...]) -> bool:
    """True when the box, centred at every grid position (0, stride, 2*stride, ...), covers the whole image: then
    every position gives the same probability and the map shows nothing of where the evidence is."""
    for size in image_shape[-2:]:
        last_centre = (int(size) - 1) // int(stride) * int(stride)
        if box // 2 < last_centre or box - box // 2 < int(size):
            return False
    return True


METHODS: dict[str, Method] = {
    "occlusion": Method(
        "compute.attribution:occlusion_with_fill",
        "Occlusion",
        (
            Param("box", "int", 8, "Box size", 1, 64, 1, help="side of the occluding square, in pixels"),
            Param("stride", "int", 2, "Stride", 1, 32, 1, help="pixels between box centres"),
            Param("fill", "choice", "data mean", "Fill", choices=tuple(FILLS), help="value inside the box"),
        ),
        "Drop in the class probability when a square around each pixel is greyed out (Zeiler & Fergus 2014).",
        suggest=occlusion_suggest,
        explainer="compute.attribution:occlusion_explain",
        planner="compute.attribution:occlusion_plan",
        maps=(MapSpec("probability", "p(class) with the box here", "probability"),
              MapSpec("map", "drop in probability (clean - occluded)", "signed")),
    ),
    "saliency": Method(
        "compute.gradients:saliency",
        "Saliency",
        (Param("absolute", "bool", True, "Absolute", help="max |gradient| over channels; off: signed sum"),),
        "Gradient of the class score with respect to the pixels (Simonyan et al. 2014).",
        planner="compute.gradients:saliency_plan",
    ),
    "smoothgrad": Method(
        "compute.gradients:smoothgrad",
        "SmoothGrad",
        (
            Param("samples", "int", 32, "Samples", 1, 256, 1, help="noisy copies averaged"),
            Param("sigma", "float", 0.15, "Noise level", 0.0, 0.5, 0.01, help="noise std / image value range"),
        ),
        "Saliency averaged over noisy copies of the image (Smilkov et al. 2017).",
        planner="compute.gradients:smoothgrad_plan",
    ),
    "integrated_gradients": Method(
        "compute.gradients:integrated_gradients",
        "Integrated gradients",
        (
            Param("steps", "int", 32, "Steps", 4, 256, 1, help="quadrature points along the path"),
            Param("baseline", "choice", "zero", "Baseline", choices=("zero", "mean"), help="start of the path"),
        ),
        "Gradients integrated along the path from a baseline to the image; signed, sums to the score change "
        "(Sundararajan et al. 2017).",
        planner="compute.gradients:integrated_gradients_plan",
    ),
    "gradcam": Method(
        "compute.gradients:gradcam",
        "Grad-CAM",
        (Param("layer", "layer", "", "Layer", help="conv layer; empty = the last conv block's activated output"),),
        "Channels of a conv layer weighted by their mean gradient, rectified and upsampled (Selvaraju et al. 2017).",
        planner="compute.gradients:gradcam_plan",
    ),
}


def suggested_params(method: str, image_shape: tuple[int, ...]) -> dict:
    """Defaults of ``METHODS[method]`` with its ``suggest(image_shape)`` values for an image of ``image_shape``
    (C, H, W), each kept inside its Param's bounds (so those bounds live in one place)."""
    spec = METHODS[method]
    params = spec.defaults()
    if spec.suggest is not None:
        params.update(spec.coerce({**params, **spec.suggest(tuple(image_shape))}))
    return params
