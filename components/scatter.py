"""The embedding scatter: every point in ONE WebGL trace in sample order (``data[0]``, customdata ``[index, true
name, predicted name]``), coloured per point, then one legend key per colour group and the selection ring.

One trace in sample order is what lets the page update the scatter in place: a new layout (PCA, then t-SNE as it
converges, another layer) is x/y of ``data[0]`` moved point by point, and a colour change is ``marker.color`` of
``data[0]`` plus the legend keys, a ``Patch`` of a few bytes per point instead of every point resent.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from components import theme

COLOUR_MODES = {"true": "true class", "predicted": "predicted class", "correct": "correct / wrong"}
POINTS_TRACE = "points"
SELECTION_TRACE = "selected"
MARKER_SIZE = 6
WRONG_MARKER_SIZE = 9  # wrong predictions are what a teacher points at: larger, with an outline
FEATURE_MODES = {"pooled": "channel means", "flat": "flattened"}


OTHER_OUTPUT = "another output"  # a prediction outside the data's classes (ImageNet weights on a 3-class folder)


def legend_slots(classes: list[str]) -> int:
    """How many legend-key traces follow the points: the same for every colour mode, so a colour change patches
    them in place (the keys a mode does not use are hidden). One more than the classes: "another output"."""
    return max(len(classes) + 1, 2)


def _predicted_names(predicted: np.ndarray, classes: list[str], output_names: list[str] | None) -> np.ndarray:
    """The name of each predicted output: the model's own output names when given (e.g. ImageNet's categories),
    else the data's class names, else "output k" for an output beyond both."""
    names = list(output_names or classes)
    return np.asarray([names[k] if 0 <= k < len(names) else f"output {k}" for k in np.asarray(predicted).tolist()],
                      dtype=object)


def colour_groups(color_by: str, labels: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict:
    """The colour group of each point under ``color_by``: ``values`` (N,) int colour numbers into ``colours``,
    ``legend``: (name, colour, size) keys, and ``wrong`` (N,) bool when coloured by correctness (else None)."""
    labels, predicted = np.asarray(labels), np.asarray(predicted)
    wrong = None
    if color_by == "correct":
        wrong = labels != predicted
        colours = [theme.CORRECT_COLOURS["correct"], theme.CORRECT_COLOURS["wrong"]]
        values = wrong.astype(np.int8)
        legend = [(f"correct ({int((~wrong).sum()):,})", colours[0], MARKER_SIZE),
                  (f"wrong ({int(wrong.sum()):,})", colours[1], WRONG_MARKER_SIZE)]
    else:
        values = predicted if color_by == "predicted" else labels
        colours = [theme.class_colour(k) for k in range(len(classes))]
        legend = [(name, colours[k], MARKER_SIZE) for k, name in enumerate(classes)]
        beyond = (values < 0) | (values >= len(classes))
        if beyond.any():  # a model with more outputs than the data has classes: those predictions in grey
            values = np.where(beyond, len(classes), values)
            colours.append(theme.MUTED)
            legend.append((f"{OTHER_OUTPUT} ({int(beyond.sum()):,})", theme.MUTED, MARKER_SIZE))
    return {"values": np.asarray(values).astype(int), "colours": colours, "legend": legend, "wrong": wrong}


def discrete_marker(values: np.ndarray, colours: list[str], sizes) -> dict:
    """A points trace's marker: colour number k (0..K-1) on a discrete scale, where it sits in its own band
    [k/K, (k+1)/K] of one colour."""
    count = len(colours)
    scale = [[edge / count, colour] for k, colour in enumerate(colours) for edge in (k, k + 1)]
    return {"color": np.asarray(values).astype(int).tolist(), "colorscale": scale, "cmin": -0.5,
            "cmax": count - 0.5, "size": sizes, "opacity": 0.85,
            "line": {"width": 0, "color": theme.BACKGROUND}}


def point_colours(color_by: str, labels: np.ndarray, predicted: np.ndarray, classes: list[str]) -> dict:
    """How the points look under ``color_by``: ``marker`` for the points trace (a colour number per point on a
    discrete colour scale; sizes per point when wrong ones are larger) and ``legend``: (name, colour, size) keys."""
    groups = colour_groups(color_by, labels, predicted, classes)
    wrong = groups["wrong"]
    sizes = MARKER_SIZE if wrong is None else np.where(wrong, WRONG_MARKER_SIZE, MARKER_SIZE).astype(np.int8).tolist()
    return {"marker": discrete_marker(groups["values"], groups["colours"], sizes), "legend": groups["legend"]}


def legend_traces(legend: list[tuple], slots: int) -> list[dict]:
    """``slots`` legend-key traces (no points of their own): the keys of ``legend`` first, the rest hidden."""
    traces = []
    for slot in range(slots):
        name, colour, size = legend[slot] if slot < len(legend) else ("", theme.MUTED, MARKER_SIZE)
        # One empty point: plotly leaves a trace with no data at all out of the legend.
        traces.append({"type": "scattergl", "mode": "markers", "x": [None], "y": [None], "name": name,
                       "showlegend": slot < len(legend), "hoverinfo": "skip",
                       "marker": {"color": colour, "size": size}})
    return traces


def scatter_title(method_label: str, layer: str, mode: str, values_per_image: int, count: int,
                  sample_size: int | None = None) -> str:
    """The scatter's title, e.g. "t-SNE of layer relu2 (channel means, 32 values per image), 1,797 images";
    with ``sample_size``: "..., 50,000 images (fitted on 10,000, the rest placed)".

    ``values_per_image`` is what the embedding was fitted on, which the caller knows and this module cannot:
    the channel count C for ``mode="pooled"`` (channel means of a (C, h, w) output), C*h*w for ``"flat"``.
    """
    mode_note = FEATURE_MODES.get(mode, mode)
    sampled = f" (fitted on {sample_size:,}, the rest placed)" if sample_size and sample_size < count else ""
    return (f"{method_label} of layer {layer} ({mode_note}, {values_per_image:,} values per image), "
            f"{count:,} images{sampled}")


def selection_marker(coords: np.ndarray | None, index: int | None) -> dict:
    """The x/y/customdata of the selection ring (empty when nothing is selected)."""
    if coords is None or index is None or not 0 <= index < len(coords):
        return {"x": [], "y": [], "customdata": []}
    return {"x": [float(coords[index, 0])], "y": [float(coords[index, 1])], "customdata": [[index, "", ""]]}


def embedding_scatter(
    coords: np.ndarray,
    labels: np.ndarray,
    predicted: np.ndarray,
    classes: list[str],
    color_by: str = "true",
    selected: int | None = None,
    title: str = "",
    revision: str = "",
    output_names: list[str] | None = None,
) -> go.Figure:
    """Scatter of ``coords`` (N, 2), coloured by true or predicted class or correctness.

    ``output_names`` names the model's outputs when they are not the data's classes (ImageNet weights on a folder):
    hover texts then name the predicted category, and predictions outside ``classes`` are coloured grey.

    Coloured by correctness, the legend counts each group ("correct (1,766)", "wrong (31)") and the wrong points
    are larger and outlined, in Okabe-Ito vermillion against blue, told apart by colour-blind viewers.

    ``data[0]`` holds every point in sample order, each with ``customdata = [index, true name, predicted name]``;
    then :func:`legend_slots` legend keys; the last trace rings ``selected``.
    """
    labels = np.asarray(labels)
    predicted = np.asarray(predicted)
    names = np.asarray(classes, dtype=object)
    customdata = np.stack([np.arange(len(labels)), names[labels], _predicted_names(predicted, classes, output_names)],
                          axis=1)
    look = point_colours(color_by, labels, predicted, classes)
    figure = go.Figure()
    figure.add_trace(go.Scattergl(
        # Plain lists, not typed arrays: the browser-side selection ring and the layout animation read x/y directly.
        x=np.asarray(coords[:, 0], dtype=float).tolist(), y=np.asarray(coords[:, 1], dtype=float).tolist(),
        mode="markers", name=POINTS_TRACE, showlegend=False, marker=look["marker"], customdata=customdata.tolist(),
        hovertemplate="#%{customdata[0]}<br>true: %{customdata[1]}<br>predicted: %{customdata[2]}<extra></extra>",
    ))
    for trace in legend_traces(look["legend"], legend_slots(classes)):
        figure.add_trace(go.Scattergl(**{key: value for key, value in trace.items() if key != "type"}))
    figure.add_trace(
        go.Scattergl(
            name=SELECTION_TRACE, mode="markers", showlegend=False, hoverinfo="skip",
            marker={"size": 18, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": theme.SELECTED}},
            **selection_marker(coords, selected),
        )
    )
    theme.base_layout(figure, title)
    figure.update_layout(
        # The legend keys have no points of their own: clicking one would hide nothing, so it does nothing.
        legend={"title": {"text": COLOUR_MODES.get(color_by, "")}, "itemsizing": "constant",
                "font": {"size": theme.FONT_SIZE}, "itemclick": False, "itemdoubleclick": False},
        uirevision=revision, clickmode="event", hovermode="closest", dragmode="pan",
    )
    figure.update_xaxes(showticklabels=False, zeroline=False, showgrid=False)
    figure.update_yaxes(showticklabels=False, zeroline=False, showgrid=False)
    return figure


def empty_figure(message: str, height: int | None = None) -> go.Figure:
    """A blank figure showing ``message`` in its centre (while waiting, or after an error).

    Pass the ``height`` the real figure will have (``images.IMAGE_HEIGHT``, ``images.feature_map_height(shape)``,
    ...) so the page does not jump when it arrives.
    """
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, font={"size": theme.FONT_SIZE, "color": theme.MUTED},
                          x=0.5, y=0.5, xref="paper", yref="paper")
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return theme.base_layout(figure, height=height)
