"""Tests of components/faithfulness.py: numbers in, figures, tables and words out, checked against the numbers."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from components import faithfulness as figures
from components import theme

KINDS = [("deletion", "Deletion", "share of pixels removed", "lower"),
         ("insertion", "Insertion", "share of pixels inserted", "higher")]
ROAD = [("road_morf", "ROAD, most relevant first", "share imputed", "lower"),
        ("road_lerf", "ROAD, least relevant first", "share imputed", "higher")]
LABELS = {"a": "Alpha", "b": "Beta", "c": "Gamma"}


def curves_data(kinds=KINDS, steps=4):
    rng = np.random.default_rng(0)
    fractions = {key: np.linspace(0, 1, steps + 1)[:steps if key.startswith("road") else steps + 1]
                 for key, *_ in kinds}
    curves = {key: {name: rng.uniform(0, 1, len(fractions[key])) for name in LABELS} for key, *_ in kinds}
    random = {key: rng.uniform(0, 1, len(fractions[key])) for key, *_ in kinds}
    return fractions, curves, random


def test_curves_figure_draws_each_kind_with_a_line_per_method_and_the_floor():
    fractions, curves, random = curves_data(KINDS + ROAD)
    figure = figures.curves_figure(fractions, curves, random, KINDS + ROAD, LABELS, ["a", "b", "c"], "seven",
                                   "title", random_count=3)
    assert len(figure.data) == 4 * 4  # 4 kinds x (3 methods + floor)
    for k, (key, *_rest) in enumerate(KINDS + ROAD):
        traces = figure.data[4 * k:4 * k + 4]
        for trace, name in zip(traces, ["a", "b", "c"]):
            np.testing.assert_allclose(trace.y, curves[key][name])
            np.testing.assert_allclose(trace.x, 100 * fractions[key])
            assert [list(point) for point in trace.customdata] == [[name, key, p] for p in range(len(trace.x))]
            assert trace.showlegend == (k == 0) and trace.legendgroup == name
        floor = traces[3]
        np.testing.assert_allclose(floor.y, random[key])
        assert floor.line.dash == "dash" and floor.name == "random order (mean of 3)"
        assert floor.customdata[0][0] == "random 1"
    assert "p(seven)" in figure.data[0].hovertemplate and "removed" in figure.data[0].hovertemplate
    assert "inserted" in figure.data[4].hovertemplate and "imputed" in figure.data[8].hovertemplate
    titles = [annotation.text for annotation in figure.layout.annotations]
    assert titles[0] == "Deletion (area: lower is better)" and titles[1] == "Insertion (area: higher is better)"


def test_verdict_names_the_best_and_worst_by_insertion_minus_deletion_and_by_road():
    auc = {"deletion": {"a": 0.1, "b": 0.5, "c": 0.3}, "insertion": {"a": 0.9, "b": 0.6, "c": 0.8},
           "road_morf": {"a": 0.6, "b": 0.2, "c": 0.5}, "road_lerf": {"a": 0.7, "b": 0.9, "c": 0.8}}
    floor = {"deletion": 0.55, "insertion": 0.7, "road_morf": 0.9, "road_lerf": 0.9}
    text = figures.verdict(auc, floor, LABELS)
    assert "By insertion − deletion, the most faithful map for this image is Alpha (+0.80), the least faithful " \
           "Beta (+0.10) (no better than a random order); a random order scores +0.15." in text
    assert "By ROAD: LeRF − MoRF, the most faithful map for this image is Beta (+0.70)" in text
    worse = figures.verdict({"deletion": {"a": 0.5}, "insertion": {"a": 0.5}}, {"deletion": 0.2, "insertion": 0.8},
                            LABELS)
    assert worse.startswith("By insertion − deletion, no map beats a random order on this image")


def test_auc_table_bolds_the_best_of_each_column_in_its_own_direction():
    auc = {"deletion": {"a": 0.1, "b": 0.5}, "insertion": {"a": 0.6, "b": 0.9}}
    table = figures.auc_table(auc, {"deletion": 0.4, "insertion": 0.7}, KINDS, LABELS, ["a", "b"])
    header = [cell.children for cell in table.children[0].children.children]
    assert header == ["method", "Deletion (lower better)", "Insertion (higher better)",
                      "insertion − deletion (higher better)"]
    rows = table.children[1].children
    a, b, floor = ([cell.children for cell in row.children] for row in rows)
    assert a[0] == "Alpha" and a[1].children == "0.100" and a[2] == "0.600" and a[3].children == "+0.500"
    assert b[1] == "0.500" and b[2].children == "0.900" and b[3] == "+0.400"
    assert floor == ["random order", "0.400", "0.700", "+0.300"]


def ranking_result(first_share=(0.97, 0.03)):
    values = np.array([[0.2, 0.4, 0.6], [0.1, 0.5, 0.7]])
    summary = {}
    for score, means in (("deletion", [0.15, 0.45, 0.65]), ("insertion", [0.9, 0.7, 0.6]),
                         ("difference", [0.75, 0.25, -0.05])):
        means = np.asarray(means)
        better_first = np.argsort(means[:-1]) if score == "deletion" else np.argsort(-means[:-1])
        ranks = np.empty(2, dtype=int)
        ranks[better_first] = [1, 2]
        summary[score] = {"mean": means, "low": means - 0.05, "high": means + 0.04, "rank": ranks,
                          "first_share": np.asarray(first_share)}
    return {"methods": ["a", "b"], "count": 200, "test_count": 360, "scores": list(summary), "summary": summary,
            "values": {"deletion": values}, "resamples": 2000,
            "correlation": {"mean": np.array([0.1, 0.8]), "low": np.array([0.0, 0.7]), "high": np.array([0.2, 0.9])}}


def test_ranking_figure_draws_means_with_their_intervals_and_the_floor():
    result = ranking_result()
    figure = figures.ranking_figure(result["summary"], result["scores"], KINDS, LABELS, ["a", "b"], 200)
    assert len(figure.data) == 3
    deletion = figure.data[0]
    np.testing.assert_allclose(deletion.x, [0.15, 0.45])
    assert list(deletion.y) == ["Alpha", "Beta"]
    np.testing.assert_allclose(deletion.error_x.array, [0.04, 0.04])
    np.testing.assert_allclose(deletion.error_x.arrayminus, [0.05, 0.05])
    assert list(deletion.marker.color) == [theme.ACCENT, theme.BAR]  # the best (lowest deletion) in the accent
    lines = [shape for shape in figure.layout.shapes if shape.line.dash == "dash"]
    assert [round(shape.x0, 6) for shape in lines] == [0.65, 0.6, -0.05]  # each panel's random order
    assert "Faithfulness over 200 test images" in figure.layout.title.text


@pytest.mark.parametrize("share, word", [((0.97, 0.03), "clearly"), ((0.8, 0.2), "probably"),
                                         ((0.6, 0.4), "not clearly")])
def test_ranking_verdict_says_how_sure_from_the_bootstrap(share, word):
    text = figures.ranking_verdict(ranking_result(share), KINDS, LABELS)
    assert text.startswith("Over 200 of the 360 test images")
    assert (f"by insertion − deletion the most faithful is Alpha (+0.750 [+0.700, +0.790]), {word} so: first in "
            f"{share[0]:.0%} of 2,000 bootstrap resamples") in text


def test_ranking_table_and_csv_carry_every_number():
    result = ranking_result()
    table = figures.ranking_table(result, KINDS, LABELS)
    rows = table.children[1].children
    first = [cell.children for cell in rows[0].children]
    assert first[0] == "Alpha" and first[1][0].children == "0.150 [0.100, 0.190]" and first[1][2] == "first in 97%"
    assert first[-1] == "+0.100 [+0.000, +0.200]"
    assert [cell.children for cell in rows[2].children][0] == "random order"
    rows = list(csv.DictReader(io.StringIO(figures.ranking_csv(result, KINDS, LABELS))))
    assert len(rows) == 3 * 3 + 2
    alpha = rows[0]
    assert (alpha["method"], alpha["score"], alpha["better"]) == ("Alpha", "Deletion area", "lower")
    assert float(alpha["mean"]) == 0.15 and float(alpha["low_95"]) == pytest.approx(0.10)
    assert alpha["rank"] == "1" and float(alpha["first_share"]) == pytest.approx(0.97)
    assert rows[2]["method"] == "random order" and rows[2]["rank"] == ""
    assert rows[-1]["score"].startswith("sanity") and float(rows[-1]["mean"]) == pytest.approx(0.8)
