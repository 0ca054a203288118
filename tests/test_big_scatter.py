"""The scatter of a big layout: its density image equals a histogram per class, a zoom's points are the points
inside the view (at most the cap, the same ones while they stay in view), box and lasso selections count every
point as a plain point-in-polygon loop does, and the generated million-point layout stands for the data's samples."""
from __future__ import annotations

import base64
import io

import numpy as np
import pytest
from PIL import Image

from components import big_scatter, scatter
from compute.generated_layout import generated_layout
from dashboard.views import big_scatter as big_view
from dashboard.views import explore

CLASSES = [str(k) for k in range(10)]


@pytest.fixture(scope="module")
def layout():
    rng = np.random.default_rng(7)
    labels = rng.integers(0, 10, 500)
    predicted = np.where(rng.random(500) < 0.1, (labels + 1) % 10, labels)
    return {"sample_labels": labels, "sample_predicted": predicted, **generated_layout(labels, predicted, 200_000)}


def decoded_png(uri: str) -> np.ndarray:
    assert uri.startswith("data:image/png;base64,")
    return np.asarray(Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))).convert("RGBA"))


def naive_inside_polygon(px: float, py: float, xs, ys) -> bool:
    """Even-odd ray casting, one point at a time: the reference."""
    inside, n = False, len(xs)
    for k in range(n):
        x1, y1, x2, y2 = xs[k], ys[k], xs[(k + 1) % n], ys[(k + 1) % n]
        if (y1 > py) != (y2 > py) and px < x1 + (py - y1) * (x2 - x1) / (y2 - y1):
            inside = not inside
    return inside


def test_the_density_is_a_histogram_per_class_top_row_first(layout):
    coords, labels = layout["coords"], layout["labels"]
    x_range, y_range, pixels = (-5.0, 12.0), (-8.0, 6.0), (64, 40)
    counts = big_scatter.density_counts(coords, labels, 10, x_range, y_range, pixels)
    assert counts.shape == (10, 40, 64)
    for group in (0, 3, 9):
        mine = coords[labels == group]
        reference, _, _ = np.histogram2d(mine[:, 0], mine[:, 1], bins=(64, 40), range=(x_range, y_range))
        # histogram2d: [x bin, y bin] with y upwards (its last bin closed); the image: [row from the top, column].
        inside_open = (mine[:, 0] < x_range[1]) & (mine[:, 1] < y_range[1])
        assert counts[group].sum() == inside_open[(mine[:, 0] >= x_range[0]) & (mine[:, 1] >= y_range[0])].sum()
        np.testing.assert_array_equal(counts[group], reference.T[::-1].astype(int))


def test_a_pixel_takes_its_points_mean_colour_and_an_empty_pixel_is_transparent():
    counts = np.zeros((2, 1, 3), dtype=int)
    counts[0, 0, 0] = 4  # only group 0
    counts[:, 0, 1] = [1, 3]  # a quarter group 0, three quarters group 1
    rgba = big_scatter.density_rgba(counts, ["#ff0000", "#0000ff"])
    assert rgba[0, 0].tolist() == [255, 0, 0, 255]  # the densest pixel is opaque
    assert rgba[0, 1, :3].tolist() == [64, 0, 191]
    assert rgba[0, 2, 3] == 0
    assert 0 < rgba[0, 1, 3] <= 255


def test_the_density_image_is_stretched_over_the_view_under_the_points(layout):
    coords, labels = layout["coords"], layout["labels"]
    colours = [scatter.theme.class_colour(k) for k in range(10)]
    image = big_scatter.density_image(coords, labels, colours, (-5.0, 12.0), (-8.0, 6.0), (64, 40))
    counts = big_scatter.density_counts(coords, labels, 10, (-5.0, 12.0), (-8.0, 6.0), (64, 40))
    np.testing.assert_array_equal(decoded_png(image["source"]), big_scatter.density_rgba(counts, colours))
    assert (image["x"], image["y"], image["sizex"], image["sizey"]) == (-5.0, 6.0, 17.0, 14.0)
    assert (image["xanchor"], image["yanchor"], image["sizing"], image["layer"]) == ("left", "top", "stretch", "below")


def test_a_views_points_are_the_points_inside_it_at_most_the_cap_and_stay_while_in_view(layout):
    coords = layout["coords"]
    priority = big_scatter.point_priority(len(coords))
    assert sorted(priority.tolist()) == list(range(len(coords)))
    inside = np.flatnonzero((coords[:, 0] >= 6) & (coords[:, 0] <= 12) & (coords[:, 1] >= -3) & (coords[:, 1] <= 4))
    shown, in_view = big_scatter.shown_points(coords, priority, (12, 6), (-3, 4), cap=1_000)
    assert in_view == len(inside) > 1_000 and len(shown) == 1_000 and set(shown) <= set(inside)
    everything, in_view = big_scatter.shown_points(coords, priority, (12, 6), (-3, 4), cap=len(coords))
    np.testing.assert_array_equal(everything, inside)
    # Zooming in keeps every shown point that is still in view (no flicker), and adds others.
    smaller, _ = big_scatter.shown_points(coords, priority, (8, 10), (-1, 2), cap=1_000)
    still = [k for k in shown if 8 <= coords[k, 0] <= 10 and -1 <= coords[k, 1] <= 2]
    assert set(still) <= set(smaller) and len(smaller) > len(still)


def test_box_and_lasso_count_every_point_as_a_naive_loop_does(layout):
    coords = layout["coords"]
    rng = np.random.default_rng(3)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 40))
    radii = rng.uniform(2, 9, 40)  # a star-shaped lasso: not convex
    xs, ys = 3 + radii * np.cos(angles), 1 + radii * np.sin(angles)
    probe = rng.choice(len(coords), 4_000, replace=False)
    expected = [naive_inside_polygon(float(coords[k, 0]), float(coords[k, 1]), xs, ys) for k in probe]
    inside = big_scatter.inside_polygon(coords, xs, ys)
    assert inside[probe].tolist() == expected and 0 < sum(expected) < len(probe)
    lasso = big_view.selection_count(layout, {"points": [], "lassoPoints": {"x": xs.tolist(), "y": ys.tolist()}})
    assert lasso["count"] == int(inside.sum()) and lasso["kind"] == "lasso"
    assert lasso["by_class"] == np.bincount(layout["labels"][inside], minlength=10).tolist()
    box = big_view.selection_count(layout, {"range": {"x": [7.5, -2.0], "y": [-1.0, 3.0]}})
    x, y = coords[:, 0], coords[:, 1]
    assert box["count"] == int(((x >= -2) & (x <= 7.5) & (y >= -1) & (y <= 3)).sum()) and box["kind"] == "box"
    assert big_view.selection_count(layout, {"points": []}) is None


def test_a_relayout_event_gives_the_new_view(layout):
    coords = layout["coords"]
    full_x, full_y = big_scatter.full_view(coords)
    assert big_view.view_after({"xaxis.range[0]": 3, "xaxis.range[1]": 1, "yaxis.range[0]": 0, "yaxis.range[1]": 2},
                               None, coords) == {"x": [1.0, 3.0], "y": [0.0, 2.0]}
    assert big_view.view_after({"xaxis.range": [0, 1]}, {"x": [5, 6], "y": [7, 8]}, coords) == {"x": [0, 1],
                                                                                            "y": [7, 8]}
    assert big_view.view_after({"xaxis.autorange": True, "yaxis.autorange": True}, {"x": [0, 1], "y": [0, 1]},
                               coords) == {"x": list(full_x), "y": list(full_y)}
    assert big_view.view_after({"autosize": True}, None, coords) is None
    assert big_view.view_after({"dragmode": "lasso"}, None, coords) is None


def test_the_big_figure_holds_the_density_then_the_shown_points_standing_for_their_samples(layout):
    figure = big_scatter.big_scatter(layout["coords"], layout["labels"], layout["predicted"], CLASSES, "correct",
                                     selected=7, samples=layout["samples"])
    names = [trace.get("name") for trace in figure["data"]]
    assert names[0] == "points" and names[-1] == "selected" and len(names) == 1 + scatter.legend_slots(CLASSES) + 1
    assert [image["name"] for image in figure["layout"]["images"]] == ["density"]
    points = figure["data"][0]
    assert len(points["x"]) == big_scatter.SHOWN_POINTS == figure["layout"]["meta"]["shown"]
    assert figure["layout"]["meta"]["in_view"] == len(layout["coords"])
    shown, _ = big_scatter.shown_points(layout["coords"], big_scatter.point_priority(len(layout["coords"])),
                                        *big_scatter.full_view(layout["coords"]))
    np.testing.assert_allclose(points["x"], layout["coords"][shown, 0])
    assert [row[0] for row in points["customdata"]] == (shown % 500).tolist()  # point i stands for sample i % 500
    assert [row[1] for row in points["customdata"]] == [str(k) for k in layout["sample_labels"][shown % 500]]
    wrong = layout["labels"][shown] != layout["predicted"][shown]
    assert points["marker"]["color"] == wrong.astype(int).tolist()
    ring = figure["data"][-1]
    assert ring["customdata"][0][0] == 7 and ring["x"][0] == pytest.approx(float(layout["coords"][7, 0]))
    assert figure["layout"]["yaxis"]["autorange"] is False and figure["layout"]["xaxis"]["autorange"] is False


def test_a_zoom_patches_the_density_and_the_points_of_the_new_view(layout):
    view = {"x": [6.0, 12.0], "y": [-3.0, 4.0]}
    patch, note = big_view.view_patch(layout, CLASSES, "true", view, None)
    assigned = {tuple(op["location"]): op["params"]["value"] for op in patch.to_plotly_json()["operations"]}
    shown, in_view = big_scatter.shown_points(layout["coords"], big_scatter.point_priority(len(layout["coords"])),
                                              view["x"], view["y"])
    np.testing.assert_allclose(assigned[("data", 0, "x")], layout["coords"][shown, 0])
    assert assigned[("data", 0, "selectedpoints")] is None
    assert assigned[("layout", "images")][0]["x"] == 6.0 and assigned[("layout", "images")][0]["sizey"] == 7.0
    assert assigned[("layout", "meta")]["in_view"] == in_view and note.startswith(f"{in_view:,} points in view")


def test_a_big_layout_reaches_the_page_without_its_points_and_a_small_one_with_them(layout):
    shown = {"layer": "relu2", "method": "tsne"}
    result = {**layout, "mode": "flat", "values_per_image": 10, "method": "tsne", "generated": True}
    placed = explore.placed_layout(result, shown, True)
    assert "x" not in placed and placed["count"] == 200_000 and placed["title"].endswith("(generated layout)")
    small = {**result, "coords": layout["coords"][:1000], "labels": layout["labels"][:1000], "generated": False}
    assert len(explore.placed_layout(small, shown, True)["x"]) == 1000


def test_the_generated_layout_stands_for_the_samples_in_order(layout):
    count = len(layout["coords"])
    assert layout["coords"].shape == (count, 2) and layout["coords"].dtype == np.float32
    np.testing.assert_array_equal(layout["samples"], np.arange(count) % 500)
    np.testing.assert_array_equal(layout["labels"], layout["sample_labels"][np.arange(count) % 500])
    np.testing.assert_array_equal(layout["predicted"], layout["sample_predicted"][np.arange(count) % 500])
    # Each class is a cloud around its own centre: its mean is nearer its centre than any other class's mean.
    means = np.stack([layout["coords"][layout["labels"] == k].mean(0) for k in range(10)])
    assert np.linalg.norm(means[:, None] - means[None], axis=-1)[~np.eye(10, dtype=bool)].min() > 2
