"""Colours, fonts and figure defaults shared by every figure, in one place.

Every colour and font size a figure uses is a field of :class:`Theme`; the module-level names (``TEXT``,
``FONT_SIZE``, ``CLASS_COLOURS``, ...) are those of the theme in use, so builders read them at call time and
:func:`use` can swap the whole set (a projector theme, say) without touching a builder.
"""
from __future__ import annotations

import math
import json
from dataclasses import asdict, dataclass, field, replace

import plotly.graph_objects as go


@dataclass(frozen=True)
class Theme:
    """One set of colours and fonts. Sizes are CSS pixels; 14 px is the smallest text read from a classroom's back."""

    FONT: str = "Inter, 'Segoe UI', system-ui, -apple-system, sans-serif"
    FONT_SIZE: int = 14
    TITLE_SIZE: int = 16
    TEXT: str = "#1f2430"
    MUTED: str = "#4b5563"  # darker than a typical muted grey so notes stay legible when projected
    ACCENT: str = "#d9480f"
    SELECTED: str = "#111827"
    BACKGROUND: str = "#ffffff"
    GRID: str = "#e5e7eb"
    BAR: str = "#9aa5b1"
    # Ten distinguishable colours (Tableau 10), then the Plotly defaults for larger class counts.
    CLASS_COLOURS: tuple[str, ...] = (
        "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
        "#636efa", "#ef553b", "#00cc96", "#ab63fa", "#ffa15a", "#19d3f3", "#ff6692", "#b6e880", "#ff97ff", "#fecb52",
    )
    # Okabe-Ito blue and vermillion: told apart with every common colour-vision deficiency (red/green is not).
    CORRECT_COLOURS: dict[str, str] = field(default_factory=lambda: {"correct": "#0072B2", "wrong": "#D55E00"})
    ACTIVATION_SCALE: str = "Viridis"
    ATTRIBUTION_SCALE: str = "Inferno"
    PROBABILITY_SCALE: str = "Viridis"
    SIGNED_SCALE: str = "RdBu_r"
    IMAGE_SCALE: str = "gray"
    LABEL_SHADOW: str = "0px 0px 3px black, 0px 0px 2px black"
    # Projector: markers and lines drawn this many times thicker (a dot of 5 px vanishes on a washed-out screen).
    MARKER_SCALE: float = 1.0
    LINE_SCALE: float = 1.0


LIGHT = Theme()
THEME: Theme = LIGHT
# Dark: light text on a near-black page (a dimmed lecture hall); the class colours stay, they read on both.
DARK = replace(LIGHT, TEXT="#f3f4f6", MUTED="#d1d5db", SELECTED="#f9fafb", BACKGROUND="#111827", GRID="#374151",
               BAR="#9ca3af")
# Projector: pure black on white (or white on black), large text, thick markers and grid lines that survive a
# washed-out beamer; sizes chosen so the back row of a classroom reads the ticks.
PROJECTOR_LIGHT = replace(LIGHT, FONT_SIZE=20, TITLE_SIZE=24, TEXT="#000000", MUTED="#111827", GRID="#9ca3af",
                          MARKER_SCALE=1.8, LINE_SCALE=2.0)
PROJECTOR_DARK = replace(PROJECTOR_LIGHT, TEXT="#ffffff", MUTED="#f3f4f6", SELECTED="#ffffff", BACKGROUND="#000000",
                         GRID="#6b7280", BAR="#d1d5db")
# The page's theme switch (header) picks one of these by name; "light" is the figures' own, as the server draws them.
THEMES: dict[str, Theme] = {"light": LIGHT, "dark": DARK, "projector-light": PROJECTOR_LIGHT,
                            "projector-dark": PROJECTOR_DARK}


def theme_name(projector: bool, dark: bool) -> str:
    """The THEMES key for the header's two switches."""
    return ("projector-" if projector else "") + ("dark" if dark else "light")


def figure_overrides(theme: Theme) -> dict:
    """What a theme changes in a figure already drawn in the house style, as plain values (JSON for the browser).

    ``layout``: relayout values for the whole figure; ``axis``: for every x and y axis; ``font_scale``: factor for
    font sizes a builder set explicitly (annotations, colour bars); ``marker_scale`` / ``line_scale``: factors for
    marker sizes and line widths. The page applies them in the browser to every graph (so switching theme runs no
    job), and :func:`apply_theme` applies them here (the HTML report, the tests).
    """
    return {
        "layout": {"font.size": theme.FONT_SIZE, "font.color": theme.TEXT, "paper_bgcolor": theme.BACKGROUND,
                   "plot_bgcolor": theme.BACKGROUND, "title.font.size": theme.TITLE_SIZE,
                   "title.font.color": theme.TEXT, "title.subtitle.font.size": theme.FONT_SIZE,
                   "title.subtitle.font.color": theme.MUTED, "hoverlabel.font.size": theme.FONT_SIZE,
                   "legend.font.size": theme.FONT_SIZE, "legend.font.color": theme.TEXT},
        "axis": {"gridcolor": theme.GRID, "linecolor": theme.MUTED, "zerolinecolor": theme.GRID,
                 "tickfont.color": theme.TEXT, "title.font.color": theme.TEXT},
        # The selection ring and the markers' outlines are drawn in the text and background colours.
        "selected": theme.SELECTED,
        "outline": {"from": LIGHT.BACKGROUND, "to": theme.BACKGROUND},
        # Text a builder coloured explicitly (bar labels, notes) in the house text colours takes the theme's.
        "colours": {LIGHT.TEXT: theme.TEXT, LIGHT.MUTED: theme.MUTED},
        "font_scale": theme.FONT_SIZE / LIGHT.FONT_SIZE,
        "marker_scale": theme.MARKER_SCALE,
        "line_scale": theme.LINE_SCALE,
    }


def overrides_json() -> str:
    """Every theme's :func:`figure_overrides`, by name, as JSON (read by the page's theme switch)."""
    return json.dumps({name: figure_overrides(theme) for name, theme in THEMES.items()})


def _scaled(value, factor: float):
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return value * factor
    if isinstance(value, (list, tuple)):
        return [_scaled(item, factor) for item in value]
    return value


def apply_theme(figure: go.Figure, theme: Theme) -> go.Figure:
    """``figure`` (drawn in the LIGHT house style) redrawn in ``theme``: the same changes the page makes in the
    browser (see :func:`figure_overrides`), for exports made on the server."""
    spec = figure_overrides(theme)
    figure.update_layout({key.replace(".", "_"): value for key, value in spec["layout"].items()})
    axis = {key.replace(".", "_"): value for key, value in spec["axis"].items()}
    figure.update_xaxes(axis)
    figure.update_yaxes(axis)
    for annotation in figure.layout.annotations:
        annotation.font.size = (annotation.font.size or LIGHT.FONT_SIZE) * spec["font_scale"]
        annotation.font.color = spec["colours"].get(annotation.font.color, annotation.font.color)
    for trace in figure.data:
        marker = getattr(trace, "marker", None)
        if marker is not None and "size" in marker and marker.size is not None:
            marker.size = _scaled(marker.size, spec["marker_scale"])
        if marker is not None and "line" in marker:
            if marker.line.width is not None:
                marker.line.width = _scaled(marker.line.width, spec["line_scale"])
            if trace.name == "selected":
                marker.line.color = spec["selected"]
            elif marker.line.color == spec["outline"]["from"]:
                marker.line.color = spec["outline"]["to"]
        line = getattr(trace, "line", None)
        if line is not None and getattr(line, "width", None) is not None:
            line.width = _scaled(line.width, spec["line_scale"])
        textfont = getattr(trace, "textfont", None)
        if textfont is not None and textfont.size is not None:
            textfont.size = _scaled(textfont.size, spec["font_scale"])
        if textfont is not None and isinstance(textfont.color, str):
            textfont.color = spec["colours"].get(textfont.color, textfont.color)
        colorbar = getattr(trace, "colorbar", None)
        if colorbar is not None and colorbar.tickfont.size is not None:
            colorbar.tickfont.size = colorbar.tickfont.size * spec["font_scale"]
    return figure

# The module-level names callers use; rebound by use().
FONT = LIGHT.FONT
FONT_SIZE = LIGHT.FONT_SIZE
TITLE_SIZE = LIGHT.TITLE_SIZE
TEXT = LIGHT.TEXT
MUTED = LIGHT.MUTED
ACCENT = LIGHT.ACCENT
SELECTED = LIGHT.SELECTED
BACKGROUND = LIGHT.BACKGROUND
GRID = LIGHT.GRID
BAR = LIGHT.BAR
CLASS_COLOURS = list(LIGHT.CLASS_COLOURS)
CORRECT_COLOURS = dict(LIGHT.CORRECT_COLOURS)
ACTIVATION_SCALE = LIGHT.ACTIVATION_SCALE
ATTRIBUTION_SCALE = LIGHT.ATTRIBUTION_SCALE
PROBABILITY_SCALE = LIGHT.PROBABILITY_SCALE
SIGNED_SCALE = LIGHT.SIGNED_SCALE
IMAGE_SCALE = LIGHT.IMAGE_SCALE
LABEL_SHADOW = LIGHT.LABEL_SHADOW


def use(theme: Theme) -> None:
    """Make ``theme`` the one every builder reads from now on (process-wide: call it once, at start-up)."""
    global THEME
    THEME = theme
    for name, value in asdict(theme).items():
        globals()[name] = list(value) if isinstance(value, tuple) else value


def class_colour(index: int) -> str:
    return CLASS_COLOURS[index % len(CLASS_COLOURS)]


def title_spec(title: str, note: str = "") -> dict | None:
    """A figure title at TITLE_SIZE, with an optional ``note`` as a subtitle (FONT_SIZE, muted)."""
    if not title and not note:
        return None
    # Pinned to the top of the figure: left to itself, a title with a subtitle floats down the margin.
    spec = {"text": title, "font": {"size": TITLE_SIZE}, "x": 0.01, "xanchor": "left",
            "yref": "container", "y": 1.0, "yanchor": "top", "pad": {"t": 8}}
    if note:
        spec["subtitle"] = {"text": note, "font": {"size": FONT_SIZE, "color": MUTED}}
    return spec


def base_layout(figure: go.Figure, title: str = "", height: int | None = None, note: str = "") -> go.Figure:
    """Apply the house style: white background, small margins, one font at FONT_SIZE, the title at TITLE_SIZE."""
    top = 8 + (TITLE_SIZE + 16 if title else 0) + (FONT_SIZE + 8 if note else 0)
    # Subplot titles (make_subplots' annotations, anchored at the top of the plot area) sit in the top margin too.
    if any(a.yref == "paper" and a.yanchor == "bottom" and (a.y or 0) >= 1 for a in figure.layout.annotations):
        top += FONT_SIZE + 10
    figure.update_layout(
        title=title_spec(title, note),
        font={"family": FONT, "color": TEXT, "size": FONT_SIZE},
        hoverlabel={"font": {"size": FONT_SIZE}},
        paper_bgcolor=BACKGROUND,
        plot_bgcolor=BACKGROUND,
        margin={"l": 8, "r": 8, "t": top, "b": 8},
        height=height,
    )
    # Subplot titles are annotations created before the theme applies: bring them up to the base size.
    figure.update_annotations(font_size=FONT_SIZE)
    return figure


def image_axes(figure: go.Figure) -> go.Figure:
    """Hide ticks, keep pixels square (each y axis anchored to its own x axis) and the first row at the top."""
    figure.update_xaxes(visible=False, constrain="domain")
    figure.update_yaxes(visible=False, autorange="reversed", constrain="domain")
    for axis in figure.layout:
        if axis.startswith("yaxis"):
            figure.layout[axis].scaleanchor = "x" + axis[len("yaxis"):]
    return figure


def number_format(limit: float, percent: bool = False) -> str:
    """A d3 tick format for values up to ``limit`` in magnitude: plain decimals (or percent), never SI suffixes.

    Enough decimals for two significant digits of ``limit`` (0.46 -> ".2f", 4.6 -> ".1f"); with ``percent`` the
    same in percent (0.46 -> ".0%", 0.0046 -> ".2%") down to 0.0001. Magnitudes that would need more than six decimals use
    exponent notation (".1e": "4.6e-10"), which reads better than "0.00000000046" on an axis.
    """
    limit = abs(float(limit))
    if not math.isfinite(limit) or limit == 0.0:
        return ".0%" if percent else ".1f"
    decimals = max(0, 1 - math.floor(math.log10(limit)))
    if percent and decimals - 2 <= 3:
        return f".{max(0, decimals - 2)}%"
    return f".{decimals}f" if decimals <= 6 else ".1e"


def plain_number(value: float, digits: int = 2) -> str:
    """``value`` written out in plain decimals with ``digits`` significant digits: 6.3e-10 -> "0.00000000063"."""
    value = float(value)
    if value == 0.0 or not math.isfinite(value):
        return f"{value:g}"
    decimals = max(0, digits - 1 - math.floor(math.log10(abs(value))))
    return f"{value:.{decimals}f}"


def colorbar(limit: float, title: str = "", percent: bool = False, **extra) -> dict:
    """A colour bar whose ticks read as plain numbers (or percent) chosen from the data's magnitude ``limit``."""
    spec = {"thickness": 12, "len": 0.9, "tickformat": number_format(limit, percent), "exponentformat": "e",
            "tickfont": {"size": FONT_SIZE}}
    if title:
        spec["title"] = {"text": title, "side": "right", "font": {"size": FONT_SIZE}}
    spec.update(extra)
    return spec


# Buttons that would send the figure to Plotly's cloud: the app works offline, and "share" here looks like the
# app's own share link.
CLOUD_BUTTONS = ["sendDataToCloud", "editInChartStudio"]


def graph_config(filename: str) -> dict:
    """dcc.Graph config: PNG export at twice the resolution, no Plotly logo, no cloud buttons.

    Plotly's camera button takes one format per graph (``toImageButtonOptions.format``); PNG at scale 2 stays
    the one, since it pastes into slides. An SVG export would need a second, custom mode-bar button.
    """
    return {
        "displaylogo": False,
        "showSendToCloud": False,
        "showEditInChartStudio": False,
        "showLink": False,
        "toImageButtonOptions": {"format": "png", "filename": filename, "scale": 2},
        "modeBarButtonsToRemove": ["lasso2d", "select2d", *CLOUD_BUTTONS],
    }
