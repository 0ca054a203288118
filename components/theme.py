"""Colours, fonts and figure defaults shared by every figure, in one place."""
from __future__ import annotations

import plotly.graph_objects as go

FONT = "Inter, 'Segoe UI', system-ui, -apple-system, sans-serif"
TEXT = "#1f2430"
MUTED = "#6b7280"
ACCENT = "#d9480f"
SELECTED = "#111827"
BACKGROUND = "#ffffff"
# Ten distinguishable colours (Tableau 10), then the Plotly defaults for larger class counts.
CLASS_COLOURS = [
    "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
    "#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880", "#ff97ff", "#fecb52",
]
CORRECT_COLOURS = {"correct": "#59a14f", "wrong": "#e15759"}
ACTIVATION_SCALE = "Viridis"
ATTRIBUTION_SCALE = "Inferno"
SIGNED_SCALE = "RdBu_r"
IMAGE_SCALE = "gray"


def class_colour(index: int) -> str:
    return CLASS_COLOURS[index % len(CLASS_COLOURS)]


def base_layout(figure: go.Figure, title: str = "", height: int | None = None) -> go.Figure:
    """Apply the house style: white background, small margins, one font."""
    figure.update_layout(
        title={"text": title, "font": {"size": 13}, "x": 0.01, "xanchor": "left"} if title else None,
        font={"family": FONT, "color": TEXT, "size": 11},
        paper_bgcolor=BACKGROUND,
        plot_bgcolor=BACKGROUND,
        margin={"l": 8, "r": 8, "t": 30 if title else 8, "b": 8},
        height=height,
    )
    return figure


def image_axes(figure: go.Figure) -> go.Figure:
    """Hide ticks, keep pixels square (each y axis anchored to its own x axis) and the first row at the top."""
    figure.update_xaxes(visible=False, constrain="domain")
    figure.update_yaxes(visible=False, autorange="reversed", constrain="domain")
    for axis in figure.layout:
        if axis.startswith("yaxis"):
            figure.layout[axis].scaleanchor = "x" + axis[len("yaxis"):]
    return figure


def graph_config(filename: str) -> dict:
    """dcc.Graph config: a PNG export button at twice the resolution, no Plotly logo."""
    return {
        "displaylogo": False,
        "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2},
        "modeBarButtonsToRemove": ["lasso2d", "select2d"],
    }
