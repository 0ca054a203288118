"""Faithfulness figures: the deletion / insertion / ROAD curves of one image's maps with the random floor, the verdict
in words, and the ranking of the methods over the test split (a plot with intervals, a table, a CSV).

Numbers in, plotly figures, Dash components and text out; no torch. ``kinds`` is a list of ``(key, title, axis,
better)`` with ``better`` "lower" or "higher" (which way a larger area under the curve points); ``labels`` maps each
method's key to its name. Curve areas are the mean probability along the curve (see compute.faithfulness).
"""
from __future__ import annotations

import csv
import io
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from dash import html
from plotly.subplots import make_subplots

from components import theme
from components.images import image_figure

CURVE_HEIGHT = 330
RANKING_ROW = 240  # pixels per row of ranking panels
RANDOM_LABEL = "random order"
# The two differences that rank a map on one number: how much faster p rises than it falls, for deletion/insertion
# and for ROAD. Larger is better for both.
COMBINED = {"difference": ("insertion − deletion", ("insertion", "deletion")),
            "road": ("ROAD: LeRF − MoRF", ("road_lerf", "road_morf"))}

Kind = tuple[str, str, str, str]  # key, title, axis text, better


def method_colour(position: int) -> str:
    return theme.class_colour(position)


def combined_scores(auc: Mapping[str, Mapping[str, float]], random_auc: Mapping[str, float]) -> dict:
    """{score: ({method: value}, random value)} of the :data:`COMBINED` scores the areas allow."""
    scores = {}
    for score, (_label, (plus, minus)) in COMBINED.items():
        if plus in auc and minus in auc:
            scores[score] = ({name: auc[plus][name] - auc[minus][name] for name in auc[plus]},
                             random_auc[plus] - random_auc[minus])
    return scores


def verdict(auc: Mapping[str, Mapping[str, float]], random_auc: Mapping[str, float], labels: Mapping[str, str]) -> str:
    """The most and least faithful map for this image in words, by insertion − deletion (and by ROAD when its curves
    are there), against the random order's score."""
    sentences = []
    for score, (values, floor) in combined_scores(auc, random_auc).items():
        label = COMBINED[score][0]
        ranked = sorted(values, key=values.get, reverse=True)
        best, worst = ranked[0], ranked[-1]
        if values[best] <= floor:
            sentences.append(f"By {label}, no map beats a random order on this image ({values[best]:+.2f} at best, "
                             f"random {floor:+.2f}).")
            continue
        text = f"By {label}, the most faithful map for this image is {labels.get(best, best)} ({values[best]:+.2f})"
        if worst != best:
            below = " (no better than a random order)" if values[worst] <= floor else ""
            text += f", the least faithful {labels.get(worst, worst)} ({values[worst]:+.2f}){below}"
        sentences.append(text + f"; a random order scores {floor:+.2f}.")
    return " ".join(sentences)


def curves_figure(fractions: Mapping[str, np.ndarray], curves: Mapping[str, Mapping[str, np.ndarray]],
                  random: Mapping[str, np.ndarray], kinds: Sequence[Kind], labels: Mapping[str, str],
                  methods: Sequence[str], class_name: str, title: str = "", random_count: int = 1,
                  colours: Mapping[str, str] | None = None, floor_row: str = "random 1") -> go.Figure:
    """One subplot per kind: p(class) against the share of pixels perturbed, a line per method and the random floor
    (dashed). Every point carries ``customdata`` [row, kind, point]: the curve's row (a method, or ``floor_row`` for
    the floor, whose pictures are those of the first random order), so a hover can ask for its image."""
    columns = min(2, len(kinds))
    rows = (len(kinds) + columns - 1) // columns
    figure = make_subplots(rows=rows, cols=columns, horizontal_spacing=0.08, vertical_spacing=0.2,
                           subplot_titles=[f"{kind_title} (area: {better} is better)"
                                           for _key, kind_title, _axis, better in kinds])
    colours = colours or {name: method_colour(k) for k, name in enumerate(methods)}
    floor_name = f"{RANDOM_LABEL} (mean of {random_count})" if random_count > 1 else RANDOM_LABEL
    for position, (key, _kind_title, axis, _better) in enumerate(kinds):
        row, column = position // columns + 1, position % columns + 1
        x = 100 * np.asarray(fractions[key], dtype=np.float64)
        lines = [(name, labels.get(name, name), np.asarray(curves[key][name]), colours[name], "solid")
                 for name in methods]
        lines.append((floor_row, floor_name, np.asarray(random[key]), theme.MUTED, "dash"))
        for row_key, name, values, colour, dash in lines:
            figure.add_trace(go.Scatter(
                x=x, y=values, mode="lines+markers", name=name, legendgroup=row_key, showlegend=position == 0,
                line={"color": colour, "width": 2, "dash": dash}, marker={"size": 5},
                customdata=[[row_key, key, point] for point in range(len(x))],
                hovertemplate=f"{name}<br>%{{x:.0f}} % {_verb(key)}<br>p({class_name}) = %{{y:.3f}}<extra></extra>"),
                row=row, col=column)
        figure.update_xaxes(title={"text": axis, "font": {"size": theme.FONT_SIZE}}, ticksuffix=" %", range=[-2, 102],
                            showgrid=True, gridcolor=theme.GRID, row=row, col=column)
    figure.update_yaxes(range=[-0.02, 1.02], tickformat=".0%", showgrid=True, gridcolor=theme.GRID)
    theme.base_layout(figure, title, CURVE_HEIGHT * rows, note=f"p({class_name}) as pixels are perturbed, most "
                      "important first; hover a point to see the image there")
    figure.update_layout(legend={"orientation": "h", "y": -0.18 if rows == 1 else -0.09}, hovermode="closest",
                         margin={"b": 90})
    return figure


def _verb(kind: str) -> str:
    return "inserted" if kind == "insertion" else "imputed" if kind.startswith("road") else "removed"


def _cell(value: float, digits: int = 3) -> str:
    return f"{value:.{digits}f}"


def auc_table(auc: Mapping[str, Mapping[str, float]], random_auc: Mapping[str, float], kinds: Sequence[Kind],
              labels: Mapping[str, str], methods: Sequence[str]) -> html.Table:
    """Areas under each curve per method (the best of each column in bold), the combined scores, the random floor."""
    combined = combined_scores(auc, random_auc)
    header = ["method", *[f"{title} ({better} better)" for _k, title, _a, better in kinds],
              *[f"{COMBINED[score][0]} (higher better)" for score in combined]]
    best = {key: (min if better == "lower" else max)(auc[key].values()) for key, _t, _a, better in kinds}
    best.update({score: max(values.values()) for score, (values, _floor) in combined.items()})
    rows = []
    for name in methods:
        cells = [html.Td(labels.get(name, name))]
        for key, *_ in kinds:
            value = auc[key][name]
            cells.append(html.Td(html.B(_cell(value)) if value == best[key] else _cell(value)))
        for score, (values, _floor) in combined.items():
            cells.append(html.Td(html.B(f"{values[name]:+.3f}") if values[name] == best[score] else
                                 f"{values[name]:+.3f}"))
        rows.append(html.Tr(cells, **{"data-method": name}))
    floor = [html.Td(RANDOM_LABEL)] + [html.Td(_cell(random_auc[key])) for key, *_ in kinds] + \
        [html.Td(f"{value:+.3f}") for _values, value in combined.values()]
    rows.append(html.Tr(floor, className="faithfulness-floor", **{"data-method": "random"}))
    return html.Table([html.Thead(html.Tr([html.Th(text) for text in header])), html.Tbody(rows)],
                      className="faithfulness-table")


def step_figure(image: np.ndarray, title: str, height: int = 260) -> go.Figure:
    """The image at one point of a curve."""
    return image_figure(image, title, height)


# ------------------------------------------------------------------------------------------------ the ranking

def score_titles(kinds: Sequence[Kind]) -> dict[str, tuple[str, str]]:
    """{score: (title, better)} of the ranking's scores: each kind's area, then the combined scores."""
    titles = {key: (f"{title} area", better) for key, title, _axis, better in kinds}
    titles.update({score: (label, "higher") for score, (label, _parts) in COMBINED.items()})
    return titles


def ranking_figure(summary: Mapping[str, Mapping[str, np.ndarray]], scores: Sequence[str], kinds: Sequence[Kind],
                   labels: Mapping[str, str], methods: Sequence[str], count: int, title: str = "") -> go.Figure:
    """One panel per score: each method's mean over the images with its 95 % bootstrap interval, the best in the
    accent colour, and the random order's mean as a dashed line. ``summary[score]`` holds ``mean``, ``low``,
    ``high`` over the methods then the random floor, and ``rank`` over the methods."""
    titles = score_titles(kinds)
    shown = [score for score in scores if score in summary]
    columns = min(3, len(shown))
    rows = (len(shown) + columns - 1) // columns
    figure = make_subplots(rows=rows, cols=columns, horizontal_spacing=0.06, vertical_spacing=0.22,
                           shared_yaxes=True,
                           subplot_titles=[f"{titles[s][0]} ({titles[s][1]} is better)" for s in shown])
    names = [labels.get(name, name) for name in methods]
    for position, score in enumerate(shown):
        row, column = position // columns + 1, position % columns + 1
        stats = summary[score]
        mean, low, high = (np.asarray(stats[key], dtype=np.float64) for key in ("mean", "low", "high"))
        ranks = np.asarray(stats["rank"])
        colours = [theme.ACCENT if rank == 1 else theme.BAR for rank in ranks]
        figure.add_trace(go.Scatter(
            x=mean[:-1], y=names, mode="markers", showlegend=False, marker={"color": colours, "size": 11},
            error_x={"type": "data", "symmetric": False, "array": high[:-1] - mean[:-1],
                     "arrayminus": mean[:-1] - low[:-1], "color": theme.MUTED, "thickness": 1.5},
            customdata=np.stack([low[:-1], high[:-1]], axis=1),
            hovertemplate="%{y}: %{x:.3f} (95 % interval %{customdata[0]:.3f} to %{customdata[1]:.3f})"
                          f"<extra>{titles[score][0]}</extra>"), row=row, col=column)
        figure.add_vline(x=float(mean[-1]), line={"color": theme.MUTED, "dash": "dash", "width": 1.5},
                         row=row, col=column)
        figure.update_xaxes(showgrid=True, gridcolor=theme.GRID, row=row, col=column)
    figure.update_yaxes(autorange="reversed", type="category")
    theme.base_layout(figure, title or f"Faithfulness over {count:,} test images", 80 + RANKING_ROW * rows,
                      note="dots: mean over the images, bars: 95 % bootstrap interval, dashed: a random order")
    return figure


def _interval(mean: float, low: float, high: float, signed: bool = False) -> str:
    form = "+.3f" if signed else ".3f"
    return f"{mean:{form}} [{low:{form}}, {high:{form}}]"


def ranking_table(result: Mapping, kinds: Sequence[Kind], labels: Mapping[str, str]) -> html.Table:
    """Per method: every score's mean with its 95 % interval (the best in bold, with the share of resamples in which
    it comes first), and the sanity check's rank correlation with the untrained model beside them."""
    titles = score_titles(kinds)
    methods, summary = list(result["methods"]), result["summary"]
    scores = [score for score in result["scores"] if score in summary]
    header = ["method", *[f"{titles[s][0]} ({titles[s][1]} better)" for s in scores],
              "sanity: rank correlation with the untrained model (near 0 passes)"]
    correlation = result["correlation"]
    rows = []
    for m, name in enumerate(methods + ["random"]):
        is_floor = m == len(methods)
        cells = [html.Td(RANDOM_LABEL if is_floor else labels.get(name, name))]
        for score in scores:
            stats = summary[score]
            text = _interval(stats["mean"][m], stats["low"][m], stats["high"][m], score in COMBINED)
            if not is_floor and int(stats["rank"][m]) == 1:
                cells.append(html.Td([html.B(text), html.Br(), f"first in {stats['first_share'][m]:.0%}"]))
            else:
                cells.append(html.Td(text))
        cells.append(html.Td("" if is_floor else _interval(correlation["mean"][m], correlation["low"][m],
                                                             correlation["high"][m], True)))
        rows.append(html.Tr(cells, className="faithfulness-floor" if is_floor else None,
                            **{"data-method": name}))
    return html.Table([html.Thead(html.Tr([html.Th(text) for text in header])), html.Tbody(rows)],
                      className="faithfulness-table")


def ranking_verdict(result: Mapping, kinds: Sequence[Kind], labels: Mapping[str, str]) -> str:
    """Which method is most faithful by each combined score over the sample, and how sure that is."""
    titles = score_titles(kinds)
    methods, summary = list(result["methods"]), result["summary"]
    resamples = int(result.get("resamples", 0))
    parts = [f"Over {result['count']:,} of the {result['test_count']:,} test images (evenly spaced through the "
             "split; each image's maps for its predicted class):"]
    for score in COMBINED:
        if score not in summary:
            continue
        stats = summary[score]
        first = int(np.argmin(stats["rank"]))
        share = float(stats["first_share"][first])
        sure = "clearly" if share >= 0.95 else "probably" if share >= 0.75 else "not clearly"
        parts.append(f"by {titles[score][0]} the most faithful is {labels.get(methods[first], methods[first])} "
                     f"({_interval(stats['mean'][first], stats['low'][first], stats['high'][first], True)}), "
                     f"{sure} so: first in {share:.0%} of {resamples:,} bootstrap resamples of the images; "
                     f"a random order scores {stats['mean'][-1]:+.3f}.")
    return " ".join(parts)


def ranking_csv(result: Mapping, kinds: Sequence[Kind], labels: Mapping[str, str]) -> str:
    """One row per method (and the random order) and score: mean, 95 % interval, rank and first-place share, and the
    sanity check's rank correlation; ``images`` is the sample size."""
    titles = score_titles(kinds)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["method", "score", "better", "mean", "low_95", "high_95", "rank", "first_share", "images"])
    methods, summary = list(result["methods"]), result["summary"]
    for score in result["scores"]:
        stats = summary[score]
        for m, name in enumerate(methods + ["random"]):
            floor = m == len(methods)
            writer.writerow([RANDOM_LABEL if floor else labels.get(name, name), titles[score][0], titles[score][1],
                             f"{stats['mean'][m]:.6f}", f"{stats['low'][m]:.6f}", f"{stats['high'][m]:.6f}",
                             "" if floor else int(stats["rank"][m]),
                             "" if floor else f"{stats['first_share'][m]:.4f}", result["count"]])
    correlation = result["correlation"]
    for m, name in enumerate(methods):
        writer.writerow([labels.get(name, name), "sanity rank correlation with the untrained model", "nearer 0",
                         f"{correlation['mean'][m]:.6f}", f"{correlation['low'][m]:.6f}",
                         f"{correlation['high'][m]:.6f}", "", "", result["count"]])
    return out.getvalue()
