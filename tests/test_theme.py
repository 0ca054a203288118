"""The projector and dark themes: contrast, sizes, and the restyle of a figure drawn in the house style."""
from __future__ import annotations

import json

import numpy as np
import plotly.graph_objects as go
import pytest

from components import scatter, theme


def _luminance(colour: str) -> float:
    """WCAG relative luminance of a #rrggbb colour (written out from the WCAG 2.1 definition)."""
    channels = [int(colour[k:k + 2], 16) / 255 for k in (1, 3, 5)]
    linear = [c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4 for c in channels]
    return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]


def contrast(a: str, b: str) -> float:
    high, low = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("name", sorted(theme.THEMES))
def test_text_reads_on_every_theme(name):
    chosen = theme.THEMES[name]
    assert contrast(chosen.TEXT, chosen.BACKGROUND) >= 7.0  # WCAG AAA for body text
    assert contrast(chosen.MUTED, chosen.BACKGROUND) >= 4.5
    assert chosen.FONT_SIZE >= 14


def test_projector_themes_are_larger_thicker_and_highest_contrast():
    for name in ("projector-light", "projector-dark"):
        chosen = theme.THEMES[name]
        assert chosen.FONT_SIZE >= 20 and chosen.TITLE_SIZE >= 24
        assert chosen.MARKER_SCALE >= 1.5 and chosen.LINE_SCALE >= 1.5
        assert contrast(chosen.TEXT, chosen.BACKGROUND) == pytest.approx(21.0)  # pure black on white, and back


def test_theme_name_follows_the_two_switches():
    assert theme.theme_name(False, False) == "light"
    assert theme.theme_name(False, True) == "dark"
    assert theme.theme_name(True, False) == "projector-light"
    assert theme.theme_name(True, True) == "projector-dark"
    assert set(json.loads(theme.overrides_json())) == set(theme.THEMES)


def _house_scatter() -> go.Figure:
    rng = np.random.default_rng(0)
    coords = rng.normal(size=(50, 2)).astype(np.float32)
    labels = rng.integers(0, 3, 50)
    return scatter.embedding_scatter(coords, labels, labels, ["a", "b", "c"], "correct", 4, title="t")


def test_apply_theme_restyles_fonts_colours_and_markers():
    light = _house_scatter()
    before = light.to_plotly_json()
    themed = theme.apply_theme(go.Figure(light), theme.PROJECTOR_DARK)
    layout = themed.layout
    assert layout.font.size == 20 and layout.font.color == "#ffffff"
    assert layout.paper_bgcolor == "#000000" and layout.plot_bgcolor == "#000000"
    assert layout.title.font.size == 24
    assert layout.xaxis.gridcolor == theme.PROJECTOR_DARK.GRID and layout.yaxis.tickfont.color == "#ffffff"
    for old, new in zip(before["data"], themed.to_plotly_json()["data"]):
        size = old.get("marker", {}).get("size")
        if size is None:
            continue
        expected = np.asarray(size, dtype=float) * 1.8  # each point's own size, scaled (wrong ones stay larger)
        np.testing.assert_allclose(np.asarray(new["marker"]["size"], dtype=float), expected)
        if old.get("name") == "selected":
            assert new["marker"]["line"]["color"] == theme.PROJECTOR_DARK.SELECTED
            assert new["marker"]["line"]["width"] == old["marker"]["line"]["width"] * 2.0
        elif old["marker"].get("line", {}).get("color") == theme.LIGHT.BACKGROUND:
            assert new["marker"]["line"]["color"] == "#000000"  # outlines follow the background


def test_light_theme_changes_nothing_the_house_style_set():
    figure = _house_scatter()
    before = figure.to_plotly_json()
    after = theme.apply_theme(go.Figure(figure), theme.LIGHT).to_plotly_json()
    assert after["data"] == before["data"]
    for key in ("font", "paper_bgcolor", "plot_bgcolor"):
        assert after["layout"][key] == before["layout"][key]


def test_theme_switch_sends_every_theme_to_the_browser():
    from dashboard.views import theme_switch

    code = theme_switch.SWITCH % (theme_switch.RESTYLE % theme.overrides_json(), theme_switch.STORE)
    table = json.loads(code.split("const themes = ", 1)[1].split(";\n", 1)[0])
    assert table == json.loads(theme.overrides_json())
    assert table["projector-dark"]["layout"]["font.size"] == 20


def test_text_the_builders_coloured_follows_the_theme():
    figure = go.Figure(go.Bar(x=[1], y=["6"], orientation="h", text=["99%"],
                              textfont={"size": theme.LIGHT.FONT_SIZE, "color": theme.LIGHT.TEXT}))
    figure.add_annotation(text="note", font={"size": 14, "color": theme.LIGHT.MUTED})
    themed = theme.apply_theme(figure, theme.PROJECTOR_DARK)
    assert themed.data[0].textfont.color == "#ffffff" and themed.data[0].textfont.size == 20
    assert themed.layout.annotations[0].font.color == theme.PROJECTOR_DARK.MUTED
    assert themed.layout.annotations[0].font.size == 20
