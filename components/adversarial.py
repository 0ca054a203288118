"""Adversarial-example figures (slide 13, Goodfellow et al. 2015): the three-image panel, top-5 before and after,
the robustness curve, and the traces that mark an adversarial image in the embedding scatter.

Images are (C, H, W) numpy arrays in [0, 1]; epsilons are in pixel units and shown as multiples of 1/255.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from components import theme
from components.images import image_trace

PANEL_HEIGHT = 300
TOP_K_HEIGHT = 240
CURVE_HEIGHT = 320


def over_255(epsilon: float) -> str:
    """An epsilon in pixel units as a multiple of 1/255: 8/255 -> "8/255", 0.5/255 -> "0.5/255"."""
    return f"{epsilon * 255:.3g}/255"


def magnification(perturbation: np.ndarray) -> int:
    """The whole factor that stretches the largest |perturbation| to at most half the grey range (1 if zero)."""
    largest = float(np.abs(perturbation).max()) if np.size(perturbation) else 0.0
    return max(1, math.floor(0.5 / largest)) if largest > 0 else 1


def magnified(perturbation: np.ndarray, factor: int) -> np.ndarray:
    """The perturbation shown as an image: mid-grey is zero, ``factor`` times the change either way."""
    return np.clip(0.5 + factor * np.asarray(perturbation, dtype=np.float32), 0.0, 1.0)


def prediction_text(name: str, confidence: float) -> str:
    return f"“{name}” {confidence:.1%}"


def attack_figure(original: np.ndarray, perturbation: np.ndarray, adversarial: np.ndarray,
                  before: tuple[str, float], after: tuple[str, float], epsilon: float | None = None,
                  factor: int | None = None, title: str = "", height: int = PANEL_HEIGHT) -> go.Figure:
    """Original | perturbation (magnified; the factor is in its title) | adversarial, as on the slide.

    ``before`` and ``after`` are (predicted class name, confidence) of the original and the adversarial image.
    """
    factor = factor or magnification(perturbation)
    change = f"perturbation ×{factor}" + (f" (ε = {over_255(epsilon)})" if epsilon is not None else "")
    titles = (f"original: {prediction_text(*before)}", change, f"adversarial: {prediction_text(*after)}")
    figure = make_subplots(rows=1, cols=3, subplot_titles=titles, horizontal_spacing=0.04)
    for column, image in enumerate((original, magnified(perturbation, factor), adversarial), start=1):
        figure.add_trace(image_trace(np.asarray(image, dtype=np.float32)), row=1, col=column)
    figure.add_annotation(text="+", x=0.325, y=0.5, xref="paper", yref="paper", showarrow=False,
                          font={"size": 2 * theme.FONT_SIZE, "color": theme.MUTED})
    figure.add_annotation(text="=", x=0.675, y=0.5, xref="paper", yref="paper", showarrow=False,
                          font={"size": 2 * theme.FONT_SIZE, "color": theme.MUTED})
    theme.base_layout(figure, title, height)
    figure.update_layout(margin={"t": 60 if title else 40})
    return theme.image_axes(figure)


def top_k_comparison(before: Sequence[tuple[str, float]], after: Sequence[tuple[str, float]], true_name: str,
                     target_name: str | None = None, height: int = TOP_K_HEIGHT) -> go.Figure:
    """Top-5 (class name, probability) before and after the attack, side by side, most probable at the top.

    The true class is drawn in the accent colour, the target of a targeted attack in the selection colour.
    """
    figure = make_subplots(rows=1, cols=2, subplot_titles=("before the attack", "after the attack"),
                           horizontal_spacing=0.18)
    for column, pairs in enumerate((before, after), start=1):
        names = [name for name, _ in pairs][::-1]
        values = [float(p) for _, p in pairs][::-1]
        colours = [theme.ACCENT if n == true_name else theme.SELECTED if n == target_name else theme.BAR
                   for n in names]
        figure.add_trace(go.Bar(x=values, y=names, orientation="h", marker_color=colours, showlegend=False,
                                text=[f"{v:.1%}" for v in values], textposition="outside", cliponaxis=False,
                                hovertemplate="%{y}: %{x:.3g}<extra></extra>"), row=1, col=column)
    theme.base_layout(figure, "", height)
    figure.update_xaxes(range=[0, 1.25], tickformat=".0%", tickvals=[0, 0.5, 1], showgrid=True,
                        gridcolor=theme.GRID)
    figure.update_yaxes(type="category")
    return figure


def robustness_figure(epsilons: Sequence[float], success_rate: Sequence[float], accuracy: Sequence[float],
                      count: int | None = None, steps: int | None = None, height: int = CURVE_HEIGHT) -> go.Figure:
    """Attack success rate and accuracy under attack against epsilon (x axis in multiples of 1/255)."""
    order = np.argsort(np.asarray(epsilons, dtype=np.float64))
    x = np.asarray(epsilons, dtype=np.float64)[order] * 255
    figure = go.Figure()
    for name, values, colour in (("attack success", success_rate, theme.ACCENT),
                                 ("accuracy under attack", accuracy, theme.CORRECT_COLOURS["correct"])):
        figure.add_trace(go.Scatter(x=x, y=np.asarray(values, dtype=np.float64)[order], name=name,
                                    mode="lines+markers", line={"color": colour, "width": 2},
                                    hovertemplate="ε %{x:.3g}/255: %{y:.1%}<extra>" + name + "</extra>"))
    what = f"{steps}-step PGD" if steps else "PGD"
    images = f" over {count:,} test images" if count else ""
    theme.base_layout(figure, f"Robustness: {what}{images}", height)
    # Ticks as plain numbers with the unit in the axis title: "0/255", "1/255", "2/255" ran into each other.
    figure.update_xaxes(title={"text": "ε in grey levels (/255; images in [0, 1])"}, tickvals=x.tolist(),
                        ticktext=[f"{v:.3g}" for v in x], showgrid=True, gridcolor=theme.GRID, automargin=True)
    figure.update_yaxes(range=[0, 1.02], tickformat=".0%", showgrid=True, gridcolor=theme.GRID)
    figure.update_layout(legend={"orientation": "h", "yref": "container", "y": 0, "yanchor": "bottom", "x": 0},
                         hovermode="x unified")
    return figure
