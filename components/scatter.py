"""The embedding scatter: one WebGL trace per colour group (so the legend toggles them), plus the selection."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from components import theme

COLOUR_MODES = {"true": "true class", "predicted": "predicted class", "correct": "correct / wrong"}
SELECTION_TRACE = "selected"
MARKER_SIZE = 6
WRONG_MARKER_SIZE = 9  # wrong predictions are what a teacher points at: larger, and drawn on top
FEATURE_MODES = {"pooled": "channel means", "flat": "flattened"}


def _groups(color_by: str, labels: np.ndarray, predicted: np.ndarray, classes: list[str]):
    """(legend name, mask, marker) per trace, in drawing order (later traces on top)."""
    def marker(colour: str, size: int = MARKER_SIZE, opacity: float = 0.8, outline: float = 0) -> dict:
        return {"size": size, "color": colour, "opacity": opacity, "line": {"width": outline, "color": theme.BACKGROUND}}

    if color_by == "correct":
        correct = labels == predicted
        # The wrong group comes last so its points sit above the correct ones; the counts go in the legend.
        return [(f"correct ({int(correct.sum()):,})", correct, marker(theme.CORRECT_COLOURS["correct"])),
                (f"wrong ({int((~correct).sum()):,})", ~correct,
                 marker(theme.CORRECT_COLOURS["wrong"], WRONG_MARKER_SIZE, 1.0, outline=1))]
    values = predicted if color_by == "predicted" else labels
    return [(name, values == k, marker(theme.class_colour(k))) for k, name in enumerate(classes)]


def scatter_title(method_label: str, layer: str, mode: str, values_per_image: int, count: int) -> str:
    """The scatter's title, e.g. "t-SNE of layer relu2 (channel means, 32 values per image), 1,797 images".

    ``values_per_image`` is what the embedding was fitted on, which the caller knows and this module cannot:
    the channel count C for ``mode="pooled"`` (channel means of a (C, h, w) output), C*h*w for ``"flat"``.
    """
    mode_note = FEATURE_MODES.get(mode, mode)
    return (f"{method_label} of layer {layer} ({mode_note}, {values_per_image:,} values per image), "
            f"{count:,} images")


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
) -> go.Figure:
    """Scatter of ``coords`` (N, 2), coloured by true or predicted class or correctness.

    Coloured by correctness, the legend counts each group ("correct (1,766)", "wrong (31)") and the wrong points
    are larger and drawn last (on top), in Okabe-Ito vermillion against blue, told apart by colour-blind viewers.

    Each point carries ``customdata = [index, true name, predicted name]``; the last trace rings ``selected``.
    """
    labels = np.asarray(labels)
    predicted = np.asarray(predicted)
    names = np.asarray(classes, dtype=object)
    customdata = np.stack([np.arange(len(labels)), names[labels], names[predicted]], axis=1)
    figure = go.Figure()
    for name, mask, marker in _groups(color_by, labels, predicted, classes):
        if not mask.any():
            continue
        figure.add_trace(
            go.Scattergl(
                # Plain lists, not typed arrays: the browser-side selection ring reads x/y directly.
                x=coords[mask, 0].tolist(), y=coords[mask, 1].tolist(), mode="markers", name=name,
                marker=marker,
                customdata=customdata[mask].tolist(),
                hovertemplate="#%{customdata[0]}<br>true: %{customdata[1]}<br>predicted: %{customdata[2]}<extra></extra>",
            )
        )
    figure.add_trace(
        go.Scattergl(
            name=SELECTION_TRACE, mode="markers", showlegend=False, hoverinfo="skip",
            marker={"size": 18, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": theme.SELECTED}},
            **selection_marker(coords, selected),
        )
    )
    theme.base_layout(figure, title)
    figure.update_layout(
        legend={"title": {"text": COLOUR_MODES.get(color_by, "")}, "itemsizing": "constant",
                "font": {"size": theme.FONT_SIZE}},
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
