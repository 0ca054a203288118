"""Attribution figures: one panel layout (heatmap or overlay) shared by every method, so they compare side by side.

:func:`method_figure` draws any method's result: one subplot per *spec* ``(key, title, scale)``, reading
``maps[key]`` (H, W). Scales:

- ``"probability"``: a sequential scale fixed to 0..1, ticks in percent;
- ``"signed"``: a diverging scale centred on zero (``zmin == -zmax``), for maps where the sign means something;
- ``"auto"``: ``"signed"`` when the map has both signs, else a sequential scale over its own range.

Colour bars read in plain decimals or percent chosen from the data's magnitude, never SI suffixes ("600n").
Occlusion is two specs (the probability with the box at each pixel, and the signed drop from the clean image);
every other method is one, :data:`DEFAULT_SPECS`.
"""
from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from dash import html
from plotly.subplots import make_subplots

from components import theme
from components.images import image_trace, to_display

PANEL_HEIGHT = 300
SCALES = ("probability", "signed", "auto")
DEFAULT_SPECS: list[tuple[str, str, str]] = [("map", "attribution", "auto")]
# Below this clean probability an occlusion drop is tiny everywhere, and the figure says so in words.
NEAR_ZERO_PROBABILITY = 1e-3
# A map whose values differ by less than this share of its largest magnitude holds one value everywhere.
CONSTANT_TOLERANCE = 1e-5
# The sanity check's words for a rank correlation between the trained and the untrained model's maps.
SIMILAR, PARTLY_SIMILAR = 0.5, 0.2

Spec = tuple[str, str, str]


def resolve_scale(values: np.ndarray, scale: str) -> str:
    """``probability``, ``signed`` or ``sequential`` for ``values`` drawn with the spec's ``scale``."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; expected one of {SCALES}")
    if scale == "auto":
        return "signed" if bool((values < 0).any() and (values > 0).any()) else "sequential"
    return scale


def map_trace(values: np.ndarray, scale: str, opacity: float = 1.0, colorbar_title: str = "",
              colorbar_x: float | None = None, hover_label: str = "value") -> go.Heatmap:
    """A heatmap of ``values`` (H, W) on the colour scale ``scale`` names (see the module docstring)."""
    values = np.asarray(values, dtype=np.float32)
    kind = resolve_scale(values, scale)
    finite = values[np.isfinite(values)]
    if kind == "probability":
        colorscale, low, high, percent = theme.PROBABILITY_SCALE, 0.0, 1.0, True
    elif kind == "signed":
        limit = float(np.abs(finite).max()) if finite.size else 0.0
        limit = limit or 1.0  # an all-zero map still needs a non-degenerate range
        colorscale, low, high, percent = theme.SIGNED_SCALE, -limit, limit, False
    else:
        low = float(finite.min()) if finite.size else 0.0
        high = float(finite.max()) if finite.size else 1.0
        # A zero-width range would leave the colour scale undefined.
        high = max(high, low + 1e-6 * max(abs(low), 1.0))
        colorscale, percent = theme.ATTRIBUTION_SCALE, False
    extra = {} if colorbar_x is None else {"x": colorbar_x, "xanchor": "left"}
    return go.Heatmap(
        z=values, colorscale=colorscale, zmin=low, zmax=high, opacity=opacity,
        colorbar=theme.colorbar(max(abs(low), abs(high)), colorbar_title, percent, **extra),
        hovertemplate=f"x %{{x}}, y %{{y}}<br>{hover_label}: %{{z:.3g}}<extra></extra>",
    )


def method_figure(
    maps: Mapping[str, np.ndarray],
    specs: Sequence[Spec],
    image: np.ndarray,
    title: str,
    display: str = "heatmap",
    opacity: float = 0.6,
    note: str = "",
    height: int = PANEL_HEIGHT,
) -> go.Figure:
    """One subplot per spec ``(key, title, scale)`` showing ``maps[key]`` (H, W) as a heatmap, or with
    ``display="overlay"`` over ``image`` (C, H, W) at ``opacity``. ``note`` is a subtitle in words.

    With one spec its title labels the colour bar; with several, each subplot carries its title.
    """
    columns = len(specs)
    several = columns > 1
    figure = make_subplots(rows=1, cols=columns, horizontal_spacing=0.14 if several else 0.02,
                           subplot_titles=[spec_title for _, spec_title, _ in specs] if several else None)
    constant = []
    for column, (key, spec_title, scale) in enumerate(specs, start=1):
        values = np.asarray(maps[key], dtype=np.float32)
        finite = values[np.isfinite(values)]
        # Constant up to float noise: a batch's rows may differ in the last bits although every box is the same.
        if finite.size and float(np.ptp(finite)) <= CONSTANT_TOLERANCE * float(np.abs(finite).max()):
            constant.append((spec_title, float(finite.mean()), scale))
        axis = "xaxis" if column == 1 else f"xaxis{column}"
        colorbar_x = float(figure.layout[axis].domain[1]) + 0.01
        if display == "overlay":
            figure.add_trace(image_trace(image), row=1, col=column)
        figure.add_trace(map_trace(values, scale, opacity if display == "overlay" else 1.0,
                                   "" if several else spec_title, colorbar_x, hover_label=spec_title),
                         row=1, col=column)
    if constant:
        said = constant_note(constant, several)
        note = f"{note} · {said}" if note else said
    theme.base_layout(figure, title, height, note=note)
    theme.image_axes(figure)
    # Each map hugs the right edge of its column, next to its colour bar, whatever width the page gives it.
    figure.update_xaxes(constraintoward="right")
    return figure


def constant_value(value: float, scale: str) -> str:
    """One value of a map as its colour bar would read it: percent for a probability, signed for a signed map."""
    if scale == "probability":
        return f"{value:.1%}" if 0 < value < 0.995 else f"{value:.0%}"
    if value == 0:
        return "0"
    text = theme.plain_number(abs(value), 2)
    return f"{'+' if value > 0 else '-'}{text}" if scale == "signed" else theme.plain_number(value, 2)


def constant_note(constant: Sequence[tuple[str, float, str]], several: bool) -> str:
    """What a figure says of its maps that hold one value everywhere ((title, value, scale) each): that value. Only
    a map that is zero everywhere is no evidence for the class; one that is +0.30 everywhere is a uniform drop."""
    if all(value == 0 for _, value, _ in constant):
        what = "constant map" if not several else f"constant {', '.join(title for title, _, _ in constant)}"
        return f"{what}: no evidence for this class here"
    values = ", ".join((f"{title} " if several else "") + constant_value(value, scale)
                       for title, value, scale in constant)
    return f"the same at every position: {values}"


def clean_probability_note(clean: float, class_name: str) -> str:
    """The clean image's probability in words; says the drop is tiny everywhere when it is near zero."""
    if clean < NEAR_ZERO_PROBABILITY:
        return (f"p({class_name}) is only {theme.plain_number(clean)} on the clean image: "
                "the drop is tiny everywhere")
    return f"p({class_name}) = {clean:.1%} on the clean image; < 0 where covering raises it"


def inversion_figure(reconstruction: np.ndarray, image: np.ndarray, title: str) -> go.Figure:
    """The input reconstructed from one channel (C, H, W), min-max scaled for display, beside its image."""
    reconstruction = np.asarray(reconstruction, dtype=np.float32)
    low, high = float(reconstruction.min()), float(reconstruction.max())
    scaled = (reconstruction - low) / (high - low) if high > low else np.zeros_like(reconstruction)
    figure = make_subplots(rows=1, cols=2, horizontal_spacing=0.04, subplot_titles=("reconstruction", "image"))
    if scaled.shape[0] == 1:
        figure.add_trace(go.Heatmap(z=scaled[0], colorscale=theme.IMAGE_SCALE, showscale=False,
                                    hovertemplate="x %{x}, y %{y}: %{z:.2f}<extra></extra>"), row=1, col=1)
    else:
        figure.add_trace(go.Image(z=to_display(scaled)), row=1, col=1)
    figure.add_trace(image_trace(image), row=1, col=2)
    theme.base_layout(figure, title, PANEL_HEIGHT)
    return theme.image_axes(figure)


def sanity_reading(rho: float) -> str:
    """What a rank correlation between a method's maps on the trained and the untrained model says (Adebayo et al.
    2018: a map that stays the same when the weights are random does not explain what the model learned)."""
    if abs(rho) >= SIMILAR:
        return "similar without training: the map shows the image more than what the model learned"
    if abs(rho) >= PARTLY_SIMILAR:
        return "partly similar: some of the map comes from the image alone"
    return "different without training: the map depends on what the model learned"


def correlation_text(rho: float) -> str:
    """A rank correlation as the titles and the table print it."""
    return f"ρ = {rho:+.2f}"


def sanity_table(rows: Sequence[tuple[str, float]]) -> html.Table:
    """The sanity check in one table: each method's rank correlation between its map on the trained and on the
    untrained model (``rows``: (method label, rho)), with what it says in words. HTML, so it wraps and is never
    cut off at any width."""
    body = [html.Tr([html.Td(label), html.Td(correlation_text(rho), className="number"), html.Td(sanity_reading(rho))])
            for label, rho in rows]
    return html.Table([
        html.Caption("Sanity check (Adebayo et al. 2018): Spearman rank correlation ρ of each map with the same "
                     "method's map on the untrained model. Near 0: the map depends on the learned weights; near 1: "
                     "it barely changes when the weights are random."),
        html.Thead(html.Tr([html.Th("method"), html.Th("ρ (trained vs untrained)"), html.Th("what it says")])),
        html.Tbody(body),
    ], className="sanity-table")
