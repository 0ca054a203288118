"""Inputs that maximise a class, a channel or a neuron (activation maximisation), in Lucent's spirit.

Small composable pieces: :mod:`.param` (how an image is parameterised), :mod:`.objectives` (what is maximised),
:mod:`.transforms` (random transforms and regularizers), combined by the one loop in :mod:`.render`;
:mod:`.priors` (what a parameterization may know of the data: its principal components, a sample across classes);
:mod:`.quality` compares a result with the best image of the data set; :mod:`.results` runs a maximisation on a data
set's image shape and returns it as plain arrays (cached), as the page shows it (``compute.jobs.maximize``).

    result = maximize(model, ("class", 3), steps=256, n=4, seed=0, image_shape=(1, 32, 32))
    result.images        # (4, 1, 32, 32) in [0, 1]
    result.history       # (256, 4) objective per step
    layer = maximize_layer(model, "conv2", steps=128, image_shape=(1, 32, 32))   # one image per channel
"""
from compute.maximize.objectives import OBJECTIVES, describe
from compute.maximize.param import PARAMETERIZATIONS, magnitude_spectrum, suggested_parameterization
from compute.maximize.priors import class_balanced_sample, principal_components
from compute.maximize.quality import best_in_data, ratios
from compute.maximize.render import (MaximizeResult, image_shape_of, layer_objective, maximize, maximize_layer,
                                     resolve_settings)
from compute.maximize.transforms import REGULARIZERS, TRANSFORMS, suggested_transforms
from compute.maximize.results import cached_maximize, preview
from compute.specs.maximize import RUN_PARAMS

__all__ = [
    "OBJECTIVES", "PARAMETERIZATIONS", "REGULARIZERS", "RUN_PARAMS", "TRANSFORMS", "cached_maximize", "preview",
    "MaximizeResult", "best_in_data", "describe",
    "image_shape_of", "layer_objective", "magnitude_spectrum", "maximize", "maximize_layer", "ratios",
    "resolve_settings", "suggested_transforms", "suggested_parameterization", "class_balanced_sample",
    "principal_components",
]
