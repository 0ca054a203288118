"""The selection gallery and the neighbours view, called as functions with their jobs run in this process."""
from __future__ import annotations

import numpy as np
from dash import html

from components import gallery as figures
from compute.jobs.table import run
from compute.specs.source import Source
from dashboard.views import gallery, neighbours
from dashboard.views.context import ViewContext
from dashboard.views.panel import Message


def selected_data(indices, extra=()):
    points = [{"curveNumber": 0, "pointIndex": k, "customdata": [int(i), "3", "3"]} for k, i in enumerate(indices)]
    return {"points": points + list(extra)}


def images_in(component) -> list[str]:
    found = []

    def walk(node):
        if isinstance(node, html.Img):
            found.append(node.src)
        children = getattr(node, "children", None)
        for child in children if isinstance(children, list) else [children] if children is not None else []:
            walk(child)

    walk(component)
    return found


def test_a_selection_is_its_sample_indices_once_each():
    marks = [{"curveNumber": 5, "pointIndex": 0, "x": 1.0, "y": 2.0}, {"customdata": [7, "", ""]}]  # ring, star
    assert gallery.selected_indices(selected_data([30, 7, 30, 2], marks)) == [2, 7, 30]
    assert gallery.selected_indices(None) == []


def test_no_selection_asks_for_nothing_and_an_empty_one_says_so():
    assert gallery.gallery_request(None) is None
    assert isinstance(gallery.gallery_request({"points": []}), Message)


def test_the_gallery_shows_capped_thumbnails_a_true_histogram_and_the_count(context, digits):
    indices = list(range(0, 1500, 10))  # 150 images: more than the gallery draws
    request = gallery.gallery_request(selected_data(indices))
    result = run(Source(), request.job, request.params)
    asked = []
    render = gallery.gallery_render(context, prefetch=lambda indices, size: asked.append((indices, size)))
    summary, grid, histogram, export_disabled = render(result, request.context)
    assert asked == [(indices[:gallery.SHOWN], 128)]  # the drawn thumbnails, fetched in one job before the page asks
    sources = images_in(grid)
    assert len(sources) == gallery.SHOWN
    assert sources[0] == "/_featurescope/thumbnail/0.png?size=128"
    assert "150 images selected" in str(summary) and f"first {gallery.SHOWN}" in str(summary)
    expected = np.bincount(digits.labels[indices].numpy(), minlength=10)
    np.testing.assert_array_equal(histogram.data[0].y, expected)
    assert export_disabled is False


def test_the_export_lists_one_name_a_line(context):
    result = run(Source(), "images.selection", gallery.export_request([4, 9]))
    assert figures.paths_text(result["names"]) == "digits#4\ndigits#9\n"


def test_a_folder_exports_its_file_paths(tmp_path):
    from PIL import Image

    from compute import data, images

    for name in ("cats", "dogs"):
        (tmp_path / name).mkdir()
        for k in range(2):
            Image.new("RGB", (10, 10), (k * 100, 0, 0)).save(tmp_path / name / f"{k}.png")
    folder = data.load_folder(tmp_path, size=16)
    assert images.sample_names(folder, [0, 3]) == [str(tmp_path / "cats" / "0.png"), str(tmp_path / "dogs" / "1.png")]


class InProcessService:
    def run(self, name, params, timeout=None):
        return run(Source(), name, params)


def test_the_neighbours_view_shows_the_image_large_and_its_neighbours_as_buttons(context, digits):
    selection = {"index": 21}
    request = neighbours.neighbours_request(selection, "fc1", "auto", 6)
    assert request.params == {"index": 21, "layer": "fc1", "features": "auto", "k": 6}
    result = run(Source(), request.job, request.params)
    (body,) = neighbours.neighbours_render(context)(result, request.context)
    sources = images_in(body)
    assert sources[0] == "/_featurescope/thumbnail/21.png?size=128"
    assert sources[1:] == [f"/_featurescope/thumbnail/{int(i)}.png?size=128" for i in result["indices"]]
    agreeing = int((digits.labels[result["indices"]] == digits.labels[21]).sum())
    assert f"{agreeing} of them share its class" in str(body)


def test_a_derived_images_neighbours_show_the_image_from_the_job(context):
    variant = {"kind": "adversarial", "method": "fgsm", "epsilon": 0.1}
    selection = {"index": 4, "variant": variant, "label": "adversarial, FGSM"}
    request = neighbours.neighbours_request(selection, "fc1", "auto", 6)
    assert request.params["variant"] == variant
    result = run(Source(), request.job, request.params)
    (body,) = neighbours.neighbours_render(context)(result, request.context)
    assert images_in(body)[0].startswith("data:image/png;base64,")
    assert "adversarial, FGSM" in str(body)


def test_no_selection_lists_no_neighbours():
    assert neighbours.neighbours_request(None, "fc1", "auto", 6) is None


def test_the_histogram_counts_each_class():
    figure = figures.class_histogram(np.array([0, 2, 2, 1, 2]), ["a", "b", "c", "d"])
    assert list(figure.data[0].y) == [1, 1, 3, 0]
    assert list(figure.data[0].x) == ["a", "b", "c", "d"]


def test_the_views_are_in_the_table():
    from dashboard.views import VIEWS

    names = [view.NAME for view in VIEWS]
    assert {"upload", "neighbours", "gallery"} <= set(names)
    assert isinstance(ViewContext, type)
