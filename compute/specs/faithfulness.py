"""The faithfulness settings and curve kinds as plain data (no torch): the web server builds its controls from them.

:mod:`compute.faithfulness` computes the curves; this table says what a user may set and how each curve is read.
"""
from __future__ import annotations

from compute.specs.params import Param

# Curve kinds, in the order they are computed and drawn. "better": which way a larger area under the curve points.
KINDS: dict[str, dict] = {
    "deletion": {"label": "Deletion", "axis": "share of pixels removed, most important first", "better": "lower",
                 "help": "pixels replaced by the fill, most important first: a faithful map makes p(class) fall fast"},
    "insertion": {"label": "Insertion", "axis": "share of pixels inserted into the blurred image",
                  "better": "higher",
                  "help": "pixels of the image put back into a blurred copy, most important first: a faithful map "
                          "makes p(class) rise fast"},
    "road_morf": {"label": "ROAD, most relevant first", "axis": "share of pixels imputed, most important first",
                  "better": "lower",
                  "help": "removed pixels filled by noisy linear imputation from their neighbours (Rong et al. "
                          "2022), so the image stays near the data: p(class) should fall fast"},
    "road_lerf": {"label": "ROAD, least relevant first", "axis": "share of pixels imputed, least important first",
                  "better": "higher",
                  "help": "the least important pixels imputed first: p(class) should stay high"},
}
BASIC_KINDS = ("deletion", "insertion")
ROAD_KINDS = ("road_morf", "road_lerf")
DELETION_FILLS = ("zero", "data mean", "blur")

SETTINGS: tuple[Param, ...] = (
    Param("steps", "int", 20, "Steps", 4, 100, 1, help="points of each curve after the first: 20 = 5 % of the "
                                                        "pixels per step"),
    Param("fill", "choice", "zero", "Deletion fill", choices=DELETION_FILLS,
          help="what a removed pixel becomes in the deletion curve (RISE: zero)"),
    Param("blur", "float", 25, "Insertion blur (% of the side)", 1, 50, 1,
          help="Gaussian sigma of the insertion curve's starting image, in percent of the image's shorter side "
               "(the jobs take it as a share: 0.25)"),
    Param("random_orders", "int", 3, "Random orders", 1, 16, 1,
          help="random pixel orders averaged into the floor every map should beat"),
    Param("road", "bool", False, "ROAD", help="also ROAD's curves (noisy linear imputation, Rong et al. 2022)"),
    Param("images", "int", 200, "Images ranked", 10, 2000, 1,
          help="test images in the ranking over the test split (evenly spaced through it)"),
)
PER_IMAGE_SETTINGS = ("steps", "fill", "blur", "random_orders", "road")
RANKING_SETTINGS = ("steps", "fill", "blur", "images")
RANKING_RANDOM_ORDERS = 1  # one random order per image: the floor is averaged over the images anyway
FLOOR_ROW = "random 1"  # the curve row whose pictures a page shows for the random floor (its first order)
ROAD_NOISE = 0.01  # Rong et al. 2022: the imputed values get N(0, 0.01^2) noise (pixel units: images are in [0, 1])
