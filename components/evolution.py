"""Figures of the evolution during training: the animated scatter, the before | after pair, the per-epoch numbers.

All take numpy arrays (layouts (E, N, 2), labels (N,)) and return plotly figures. The animated scatter carries
every epoch as a plotly frame, so the slider and the play button run in the browser without a server round trip.
"""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components import theme

PATH_TRACE = "path of the selected image"
SELECTION_TRACE = "selected"
FRAME_MS = 600
# The numbers under the slider: (key in the evolution's result, legend label, colour).
METRICS = [
    ("test_accuracy", "test accuracy", theme.TEXT),
    ("knn_features", "k-NN accuracy, features", theme.class_colour(0)),
    ("knn_layout", "k-NN accuracy, 2-D", theme.class_colour(1)),
    ("trustworthiness", "trustworthiness", theme.class_colour(4)),
]


def axis_ranges(layouts: np.ndarray, pad: float = 0.05) -> tuple[list[float], list[float]]:
    """x and y ranges covering every epoch of ``layouts`` (E, N, 2) (or one layout (N, 2)), padded by ``pad``."""
    points = np.asarray(layouts).reshape(-1, 2)
    low, high = points.min(axis=0), points.max(axis=0)
    margin = (high - low) * pad + 1e-9
    return [float(low[0] - margin[0]), float(high[0] + margin[0])], [float(low[1] - margin[1]), float(high[1] + margin[1])]


def _rounded(values: np.ndarray) -> np.ndarray:
    # Layouts have unit RMS radius: three decimals are sub-pixel and keep the frames payload small.
    return np.round(np.asarray(values, dtype=np.float32), 3)


def _class_traces(layout: np.ndarray, labels: np.ndarray, classes: list[str], epoch: int, webgl: bool,
                  legend: bool = True, with_style: bool = True) -> list:
    """One trace per class present; ``customdata = [sample index, epoch]`` so a click says which model to use."""
    trace_type = go.Scattergl if webgl else go.Scatter
    traces = []
    for k, name in enumerate(classes):
        members = np.flatnonzero(labels == k)
        if not len(members):
            continue
        data = {"x": _rounded(layout[members, 0]), "y": _rounded(layout[members, 1]),
                "customdata": np.stack([members, np.full(len(members), epoch)], axis=1)}
        if with_style:
            data.update(mode="markers", name=name, legendgroup=name, showlegend=legend,
                        marker={"size": 5, "color": theme.class_colour(k), "opacity": 0.8, "line": {"width": 0}},
                        hovertemplate=f"#%{{customdata[0]}} · class {name} · epoch %{{customdata[1]}}<extra></extra>")
        traces.append(trace_type(**data))
    return traces


def _selection_marker(layout: np.ndarray, selected: int | None, epoch: int, webgl: bool, with_style: bool = True):
    trace_type = go.Scattergl if webgl else go.Scatter
    chosen = selected is not None and 0 <= selected < len(layout)
    data = {"x": [float(layout[selected, 0])] if chosen else [], "y": [float(layout[selected, 1])] if chosen else [],
            "customdata": [[selected, epoch]] if chosen else []}
    if with_style:
        data.update(name=SELECTION_TRACE, mode="markers", showlegend=False, hoverinfo="skip",
                    marker={"size": 16, "color": "rgba(0,0,0,0)", "line": {"width": 3, "color": theme.SELECTED}})
    return trace_type(**data)


def selection_path(layouts: np.ndarray, selected: int | None) -> dict:
    """x/y of the selected image's position at every epoch (empty when nothing is selected), for a Patch."""
    if selected is None or not 0 <= selected < np.asarray(layouts).shape[1]:
        return {"x": [], "y": [], "customdata": []}
    path = np.asarray(layouts)[:, selected, :]
    return {"x": path[:, 0].tolist(), "y": path[:, 1].tolist(), "customdata": [[selected, e] for e in range(len(path))]}


def evolution_scatter(
    layouts: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    epochs: list[int] | None = None,
    selected: int | None = None,
    start: int = -1,
    webgl: bool = True,
    title: str = "",
    revision: str = "",
) -> go.Figure:
    """The animated scatter of ``layouts`` (E, N, 2): one frame per epoch, a slider and a play button.

    Points are coloured by class (``labels`` (N,) indexes ``classes``); axis ranges are fixed over all epochs so
    the animation does not rescale. ``selected`` is ringed in every frame and its path across the epochs drawn
    (the path trace stays put; frames move the class traces and the ring). ``start`` is the frame shown first.
    """
    layouts = np.asarray(layouts)
    labels = np.asarray(labels)
    epochs = list(range(len(layouts))) if epochs is None else [int(e) for e in epochs]
    first = range(len(layouts))[start]
    trace_type = go.Scattergl if webgl else go.Scatter
    path = selection_path(layouts, selected)
    figure = go.Figure(_class_traces(layouts[first], labels, classes, epochs[first], webgl))
    figure.add_trace(trace_type(name=PATH_TRACE, mode="lines+markers", showlegend=False, hoverinfo="skip",
                                line={"color": theme.SELECTED, "width": 1.5}, marker={"size": 4, "color": theme.SELECTED},
                                **path))
    figure.add_trace(_selection_marker(layouts[first], selected, epochs[first], webgl))
    moving = [i for i, trace in enumerate(figure.data) if trace.name != PATH_TRACE]
    figure.frames = [
        go.Frame(name=str(epoch), traces=moving,
                 data=_class_traces(layout, labels, classes, epoch, webgl, with_style=False)
                 + [_selection_marker(layout, selected, epoch, webgl, with_style=False)])
        for layout, epoch in zip(layouts, epochs)
    ]
    # Scattergl cannot tween, so each frame redraws; SVG scatter moves the points smoothly between epochs.
    frame_args = {"mode": "immediate", "frame": {"duration": FRAME_MS, "redraw": webgl},
                  "transition": {"duration": 0 if webgl else FRAME_MS // 2}}
    x_range, y_range = axis_ranges(layouts)
    theme.base_layout(figure, title)
    figure.update_layout(
        uirevision=revision, clickmode="event", hovermode="closest", dragmode="pan",
        legend={"itemsizing": "constant", "title": {"text": "class"}},
        # Play and pause on a row of their own, the slider below them at full width: side by side they ran into
        # each other in a narrow column (two runs compared) or at projector size.
        margin={"b": 130},
        updatemenus=[{"type": "buttons", "direction": "left", "x": 0.0, "y": -0.02, "xanchor": "left", "yanchor": "top",
                      "pad": {"t": 6, "r": 8}, "showactive": False,
                      "buttons": [{"label": "▶ play", "method": "animate",
                                   "args": [None, {**frame_args, "fromcurrent": True}]},
                                  {"label": "❚❚ pause", "method": "animate",
                                   "args": [[None], {**frame_args, "frame": {"duration": 0, "redraw": False}}]}]}],
        sliders=[{"active": first, "x": 0.0, "len": 1.0, "y": -0.02, "yanchor": "top", "pad": {"t": 48},
                  "currentvalue": {"prefix": "epoch ", "font": {"size": 12}},
                  "steps": [{"label": str(epoch), "method": "animate", "args": [[str(epoch)], frame_args]}
                            for epoch in epochs]}],
    )
    figure.update_xaxes(range=x_range, autorange=False, showticklabels=False, zeroline=False, showgrid=False)
    figure.update_yaxes(range=y_range, autorange=False, showticklabels=False, zeroline=False, showgrid=False)
    return figure


def before_after(
    layouts: np.ndarray,
    labels: np.ndarray,
    classes: list[str],
    epochs: list[int] | None = None,
    selected: int | None = None,
    webgl: bool = True,
) -> go.Figure:
    """The first and the last epoch of ``layouts`` (E, N, 2) side by side, same axis ranges, ``selected`` ringed."""
    layouts = np.asarray(layouts)
    labels = np.asarray(labels)
    epochs = list(range(len(layouts))) if epochs is None else [int(e) for e in epochs]
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.04,
                           subplot_titles=(f"before training (epoch {epochs[0]})", f"after training (epoch {epochs[-1]})"))
    for column, index in ((1, 0), (2, len(layouts) - 1)):
        for trace in _class_traces(layouts[index], labels, classes, epochs[index], webgl, legend=column == 1):
            figure.add_trace(trace, row=1, col=column)
        figure.add_trace(_selection_marker(layouts[index], selected, epochs[index], webgl), row=1, col=column)
    x_range, y_range = axis_ranges(layouts[[0, -1]])
    theme.base_layout(figure)
    figure.update_layout(clickmode="event", hovermode="closest", legend={"itemsizing": "constant"}, margin={"t": 30})
    figure.update_xaxes(range=x_range, autorange=False, showticklabels=False, zeroline=False, showgrid=False)
    figure.update_yaxes(range=y_range, autorange=False, showticklabels=False, zeroline=False, showgrid=False)
    return figure


def evolution_metrics(numbers: dict, epochs: list[int], current: int | None = None, title: str = "") -> go.Figure:
    """Per-epoch lines of test accuracy, k-NN accuracy (features and 2-D) and trustworthiness, in [0, 1].

    ``numbers`` maps the keys of ``METRICS`` to lists with one value per epoch (missing keys are skipped);
    ``current`` (an epoch) is marked by a vertical line.
    """
    figure = go.Figure()
    for key, label, colour in METRICS:
        if key in numbers:
            values = [None if v is None or not np.isfinite(v) else float(v) for v in numbers[key]]
            figure.add_trace(go.Scatter(x=list(epochs), y=values, mode="lines+markers", name=label,
                                        line={"color": colour, "width": 2}, marker={"size": 5},
                                        hovertemplate=f"{label}: %{{y:.1%}} at epoch %{{x}}<extra></extra>"))
    if current is not None:
        figure.add_vline(x=current, line={"color": theme.MUTED, "width": 1, "dash": "dot"})
    theme.base_layout(figure, title)
    # The legend at the figure's foot and the axis pushing the margin: at projector size the tick labels and the
    # axis title grow, and a legend placed at a fixed fraction below the plot ran into them.
    figure.update_layout(hovermode="x unified", legend={"orientation": "h", "yref": "container", "y": 0,
                                                        "yanchor": "bottom", "x": 0})
    figure.update_xaxes(title={"text": "epoch"}, dtick=1, automargin=True)
    figure.update_yaxes(range=[0, 1.02], tickformat=".0%")
    return figure
