"""What every view gets: the start-up config, the compute service, the model's description; the page-wide ids.

The page-wide state is small keys in the browser (the session id, the selected sample, the open views, the URL);
arrays stay in the compute process and the service's result store.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from dash import Input, Output, State

from components import controls
from compute.errors import JobFailed, UserError
from dashboard.config import AppConfig
from dashboard.service import ComputeProcessDied, ComputeService

log = logging.getLogger("featurescope")

URL = "url"
SESSION = "session"
SELECTION = "selection"
OPEN_VIEWS = "open-views"
STATUS = "status-line"
# What another view marks in the scatter: {"label": str, "indices": [sample, ...] (rings on those points),
# "points": [[x, y, text], ...] (new points such as an adversarial image, drawn as stars),
# "lines": [[x0, y0, x1, y1], ...] (e.g. from an image to its adversarial twin)}; None clears it.
HIGHLIGHT = "scatter-highlight"
# The scatter's controls, which every view that works on "the layer" follows (the explore view draws them).
LAYER = "layer"
EMBEDDING = "embedding-method"
FEATURES = "feature-mode"
SCATTER = "scatter"
FEATURE_MAPS = "feature-maps"  # the clicked image's feature maps (details); a click on one picks its channel

# Errors whose message is meant for the user (a wrong layer, a bad channel): shown as they are, without "retry".
ERRORS_FOR_USERS = (UserError,)


@dataclass(frozen=True)
class Meta:
    """The model and data as the compute process described them at start-up (``describe`` job)."""

    model: str
    data: str
    classes: list[str]
    count: int
    test_count: int
    image_shape: list[int]
    layers: list[str]
    layer_shapes: dict[str, list[int]]
    conv_layers: list[str]
    default_layer: str
    device: str
    skipped: list[str]
    model_classes: list[str] = field(default_factory=list)  # the model's outputs, when not the data's classes

    @classmethod
    def from_description(cls, description: dict[str, Any]) -> "Meta":
        return cls(**{name: description[name] for name in cls.__dataclass_fields__ if name in description})


@dataclass(frozen=True)
class ViewContext:
    """What every view gets. ``views`` is the page's views table (``dashboard.views.VIEWS``), handed down so the
    views that work on all the others (links, tour, export, code) never import the table that imports them."""

    config: AppConfig
    service: ComputeService
    meta: Meta
    views: tuple = ()


def error_message(error: BaseException, panel: str = ""):
    """A readable message for the page: the text of a user error as it is; for anything else (a bug) "something
    went wrong in <panel>", with the traceback in a log (the compute process's for a job, else this server's)."""
    if isinstance(error, ComputeProcessDied):
        return controls.message(f"{str(error)[:1].upper()}{str(error)[1:]}. Press retry to compute it again.")
    if isinstance(error, ERRORS_FOR_USERS):
        return controls.message(str(error).strip("'\""))
    where = f" in {panel.replace('-', ' ')}" if panel else ""
    if isinstance(error, JobFailed):
        log.error("job %s failed%s: %s\n%s", error.job, where, error, error.traceback.rstrip())
        detail = f"{error.kind} in job {error.job}"
    else:
        log.error("unexpected error%s", where, exc_info=error)
        detail = type(error).__name__
    return controls.message(f"Something went wrong{where} ({detail}). Press retry to try again; the server log "
                            "has the details.")


def selected_index(selection) -> int | None:
    """The sample index held by the selection store, or None.

    The store holds ``{"index": i}`` for a data-set image, plus ``"variant": {"kind": ..., **params}`` for an image
    derived from it (an adversarial example): every panel then opens for that image.
    """
    if isinstance(selection, dict) and isinstance(selection.get("index"), int):
        return selection["index"]
    return None


def selected_variant(selection) -> dict | None:
    """The variant the selection names (see :func:`selected_index`), or None for the data-set image itself."""
    variant = selection.get("variant") if isinstance(selection, dict) else None
    return variant if isinstance(variant, dict) and variant.get("kind") else None


def selected_epoch(selection) -> int | None:
    """The saved epoch whose model the selection asks for (a point clicked in the evolution view), or None."""
    epoch = selection.get("epoch") if isinstance(selection, dict) else None
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None


def sample_params(selection) -> dict:
    """The job parameters naming the selected image: its index, its variant when it is a derived image, and the
    epoch of the model to use when the selection names one."""
    variant, epoch = selected_variant(selection), selected_epoch(selection)
    return {"index": selected_index(selection), **({"variant": variant} if variant else {}),
            **({"epoch": epoch} if epoch is not None else {})}


def selection_note(selection) -> str:
    """" (adversarial, FGSM 8/255)" for a derived image (the store's own "label", else the variant's kind), and
    " · model of epoch 3" when the selection names an epoch; "" for a plain data-set image."""
    variant, epoch = selected_variant(selection), selected_epoch(selection)
    note = f" ({selection.get('label') or variant['kind']})" if variant else ""
    return note + (f" · model of epoch {epoch}" if epoch is not None else "")


def image_name(index: int | None, note: str = "") -> str:
    """How a title names the selected image: "image #12" and its ``note`` (:func:`selection_note`); an upload has no
    number (its index is -1), so it is named by its own label from the note ("your image: cat.png") or "your image"."""
    if index is not None and index >= 0:
        return f"image #{index}{note}"
    label = note.strip()
    if label.startswith("(") and ")" in label:  # " (your image: cat.png) · model of epoch 3"
        inner, _, rest = label[1:].partition(")")
        return f"{inner if inner.startswith('your image') else 'your image (' + inner + ')'}{rest}"
    return f"your image{note}"


def share_mark(view: str, prefix: str) -> str:
    """A clientside callback (mark, open views, current highlight) -> highlight: copies a view's own scatter mark
    into the page-wide HIGHLIGHT while ``view`` is open, and takes it back (only a highlight whose label starts
    with ``prefix``: one another view set is left alone) when the view closes or has nothing to mark."""
    return """
function(mark, open, current) {
    const none = window.dash_clientside.no_update;
    const ours = !current || String(current.label || '').startsWith('%(prefix)s');
    if (!(open || []).includes('%(view)s') || !mark) { return (current && ours) ? null : none; }
    return mark;
}
""" % {"prefix": prefix, "view": view}


# Without a GPU (the browser renders WebGL in software: SwiftShader, llvmpipe), WebGL scatters draw their canvas at
# the screen's own pixel ratio: plotly.js uses 2 whatever the screen, four times the pixels of an ordinary (ratio 1)
# screen or projector, and in software that was half of every redraw: an evolution animation frame took 65-95 ms
# instead of 120-170 ms, measured on the same busy 2-core machine. With a GPU plotly's 2 stays (sharp exports).
SCREEN_PIXEL_RATIO = """
function(_id, ...configs) {
    if (window.featurescopeSoftwareGl === undefined) {
        let renderer = '';
        try {
            const gl = document.createElement('canvas').getContext('webgl');
            const info = gl && gl.getExtension('WEBGL_debug_renderer_info');
            renderer = info ? String(gl.getParameter(info.UNMASKED_RENDERER_WEBGL)) : '';
            const lose = gl && gl.getExtension('WEBGL_lose_context');
            if (lose) { lose.loseContext(); }
        } catch (e) { renderer = ''; }
        window.featurescopeSoftwareGl = /swiftshader|llvmpipe|softpipe|software|basic render/i.test(renderer);
    }
    const screen = Math.min(2, Math.max(1, Math.round(window.devicePixelRatio || 1)));
    const ratio = window.featurescopeSoftwareGl ? screen : 2;
    const set = config => Object.assign({}, config, {plotGlPixelRatio: ratio});
    return configs.length === 1 ? set(configs[0]) : configs.map(set);
}
"""


def draw_at_gl_pixel_ratio(app, *graphs: str) -> None:
    """Register the clientside callback that sets ``plotGlPixelRatio`` of these dcc.Graph ids once the page opens
    (the screen's ratio where WebGL runs in software, else plotly's own 2)."""
    app.clientside_callback(SCREEN_PIXEL_RATIO, *[Output(graph, "config") for graph in graphs],
                            Input(graphs[0], "id"), *[State(graph, "config") for graph in graphs])
