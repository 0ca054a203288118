"""The embedding scatter: one WebGL trace per colour group (so the legend toggles them), plus the selection."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from components import theme

COLOUR_MODES = {"true": "true class", "predicted": "predicted class", "correct": "correct / wrong"}
SELECTION_TRACE = "selected"


def _groups(color_by: str, labels: np.ndarray, predicted: np.ndarray, classes: list[str]):
    if color_by == "correct":
        correct = labels == predicted
        return [("correct", correct, theme.CORRECT_COLOURS["correct"]), ("wrong", ~correct, theme.CORRECT_COLOURS["wrong"])]
    values = predicted if color_by == "predicted" else labels
    return [(name, values == k, theme.class_colour(k)) for k, name in enumerate(classes)]


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

    Each point carries ``customdata = [index, true name, predicted name]``; the last trace rings ``selected``.
    """
    labels = np.asarray(labels)
    predicted = np.asarray(predicted)
    names = np.asarray(classes, dtype=object)
    customdata = np.stack([np.arange(len(labels)), names[labels], names[predicted]], axis=1)
    figure = go.Figure()
    for name, mask, colour in _groups(color_by, labels, predicted, classes):
        if not mask.any():
            continue
        figure.add_trace(
            go.Scattergl(
                # Plain lists, not typed arrays: the browser-side selection ring reads x/y directly.
                x=coords[mask, 0].tolist(), y=coords[mask, 1].tolist(), mode="markers", name=name,
                marker={"size": 6, "color": colour, "opacity": 0.8, "line": {"width": 0}},
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
        legend={"title": {"text": COLOUR_MODES.get(color_by, "")}, "itemsizing": "constant"},
        uirevision=revision, clickmode="event", hovermode="closest", dragmode="pan",
    )
    figure.update_xaxes(showticklabels=False, zeroline=False, showgrid=False)
    figure.update_yaxes(showticklabels=False, zeroline=False, showgrid=False)
    return figure


def empty_figure(message: str) -> go.Figure:
    """A blank figure showing ``message`` in its centre (while waiting, or after an error)."""
    figure = go.Figure()
    figure.add_annotation(text=message, showarrow=False, font={"size": 13, "color": theme.MUTED}, x=0.5, y=0.5,
                          xref="paper", yref="paper")
    figure.update_xaxes(visible=False)
    figure.update_yaxes(visible=False)
    return theme.base_layout(figure)
