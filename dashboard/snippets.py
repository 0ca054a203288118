"""The Python code behind each view: a few lines that reproduce a panel's numbers in a notebook.

One table, keyed by view NAME, says in words what each of the view's jobs computes and which of its result's
entries hold the figure's numbers; :func:`snippet` fills in the job's own parameters (the current settings) and the
source (model, data, cache folder), so the code runs as written and returns the arrays the page shows. The code calls
the same job the page called (``compute.jobs.table.run``; no Dash, no server), so it hits the same cache.
"""
from __future__ import annotations

import dataclasses
import pprint
from typing import Any

import numpy as np

from compute.specs.source import Source

# view NAME -> job name -> (what it computes, the result entries that hold the figure's numbers, most telling first)
SNIPPETS: dict[str, dict[str, tuple[str, tuple[str, ...]]]] = {
    "explore": {"explore.scatter": ("the scatter: each image's activations at a layer, embedded in 2-D",
                                    ("coords", "labels", "predicted"))},
    "details": {"details.panels": ("the selected image's prediction and the layer's feature maps",
                                   ("layer_output", "probabilities", "image"))},
    "attribution": {"attribution.maps": ("each attribution method's map for the selected image and target",
                                         ("maps", "untrained", "correlation"))},
    "faithfulness": {"faithfulness.curves": ("each attribution map's deletion and insertion (and ROAD) curves, "
                                             "their areas and the random floor", ("auc", "random_auc", "curves")),
                     "faithfulness.step": ("the image at one point of a faithfulness curve", ("image", "probability")),
                     "faithfulness.ranking": ("the attribution methods ranked by faithfulness over test images",
                                              ("summary", "correlation", "values"))},
    "inversion": {"inversion.reconstruct": ("the deconvnet / guided-backprop reconstruction from one channel",
                                            ("reconstruction", "image"))},
    "maximize": {"maximize.run": ("images optimized to maximize the objective", ("images", "history", "values")),
                 "maximize.layer": ("one optimized image per channel of the layer", ("images", "history", "values"))},
    "weights": {"weights.evolution": ("the layer's filters at every saved epoch",
                                      ("grids", "smoothness", "diversity"))},
    "channels": {"channels.stats": ("per channel over the data set: firing rate, mean, dead flags",
                                    ("firing_rate", "mean_activation", "dead")),
                 "channels.top_images": ("the images that excite one channel most", ("indices", "values", "maps")),
                 "channels.dead_table": ("dead channels of every ReLU layer", ("rows",))},
    "evolution": {"evolution.embed": ("the embedding at every saved epoch, aligned", ("layouts", "epochs"))},
    "adversarial": {"adversarial.attack": ("the adversarial image and the predictions before and after",
                                           ("adversarial", "perturbation", "before", "after")),
                    "adversarial.smallest_epsilon": ("the smallest epsilon that flips the prediction", ("epsilon",)),
                    "adversarial.robustness": ("accuracy under attack over epsilon", ("epsilons", "accuracy"))},
    "neighbours": {"neighbours.nearest": ("the images nearest to the selected one in the layer's feature space",
                                          ("indices", "distances", "labels"))},
    "gallery": {"images.selection": ("the images picked in the scatter", ("indices", "labels"))},
    "upload": {"uploads.place": ("an uploaded image's prediction and its place in the scatter",
                                 ("probabilities", "point", "image"))},
}
MAX_LINES_PER_RESULT = 4


def describe(value: Any) -> str:
    """A short comment for a result entry: shape and dtype of an array, the keys of a dict, a number."""
    if isinstance(value, np.ndarray):
        return f"{value.shape} {value.dtype}"
    if isinstance(value, dict):
        inner = next(iter(value.values()), None)
        keys = ", ".join(map(str, list(value)[:6]))
        return f"{{{keys}}}" + (f" -> {describe(inner)}" if isinstance(inner, (dict, np.ndarray)) else "")
    if isinstance(value, (list, tuple)):
        return f"list of {len(value)}"
    return repr(value) if isinstance(value, (int, float, str, bool)) or value is None else type(value).__name__


def _source_code(source: Source) -> str:
    """``Source(...)`` with the model, the data and every setting the command line changed (weights, image size,
    resize, checkpoint, device, ...): the same model on the same images as the dashboard."""
    defaults = Source()
    fields = {name: getattr(source, name) for name in ("model", "data")}
    fields.update({field.name: getattr(source, field.name) for field in dataclasses.fields(Source)
                   if field.name not in fields and getattr(source, field.name) != getattr(defaults, field.name)})
    return "Source(" + ", ".join(f"{name}={value!r}" for name, value in fields.items()) + ")"


def entries(view: str, job: str, result: dict | None) -> list[str]:
    """The result entries a snippet names for ``job`` of ``view``: the table's, then (unknown job) its arrays."""
    named = SNIPPETS.get(view, {}).get(job, ("", ()))[1]
    if result is not None:
        present = [name for name in named if name in result]
        arrays = [name for name, value in result.items() if isinstance(value, np.ndarray) and name not in present]
        return (present + arrays)[:MAX_LINES_PER_RESULT]
    return list(named[:MAX_LINES_PER_RESULT])


def snippet(view: str, job: str, params: dict, source: Source, result: dict | None = None,
            cache_dir: str | None = None) -> str:
    """Python code that runs ``job`` with ``params`` on ``source`` and names its result's main entries.

    ``result`` (the job's result, when at hand) adds each entry's shape to its comment; ``cache_dir`` (the
    dashboard's --cache-dir) makes the code reuse the dashboard's trained model and cached results.
    """
    what = SNIPPETS.get(view, {}).get(job, (f"the numbers of the job {job}", ()))[0]
    lines = [f"# {what[:1].upper()}{what[1:]}: the same numbers as the dashboard, from its Python API."]
    if cache_dir:
        lines += ["import os", f"os.environ.setdefault('FEATURESCOPE_CACHE_DIR', {str(cache_dir)!r})  "
                  "# the dashboard's cache: its trained model and results"]
    lines += ["from compute.jobs.table import run", "from compute.specs.source import Source", ""]
    arguments = pprint.pformat(params, width=100, sort_dicts=True)
    lines.append(f"result = run({_source_code(source)}, {job!r},")
    lines += ["             " + line for line in arguments.splitlines()]
    lines[-1] += ")"
    for name in entries(view, job, result):
        if not name.isidentifier():
            continue
        comment = f"  # {describe(result[name])}" if result is not None and name in result else ""
        lines.append(f"{name} = result[{name!r}]{comment}")
    return "\n".join(lines) + "\n"
