"""Tests of the figure builders in components/: numpy in, plotly figures out, checked trace by trace."""
from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest

from components import attribution, images, scatter, theme

CLASSES = ["zero", "one", "two", "three"]


def scatter_data(seed: int = 0):
    rng = np.random.default_rng(seed)
    coords = rng.normal(size=(40, 2)).astype(np.float32)
    labels = np.array([0, 1, 2] * 13 + [0])  # class 3 ("three") never occurs
    predicted = labels.copy()
    predicted[[1, 5, 9, 20]] = [0, 0, 3, 1]  # four mistakes, one predicting the absent class
    return coords, labels, predicted


def point_traces(figure: go.Figure):
    return [trace for trace in figure.data if trace.name != scatter.SELECTION_TRACE]


def channel_labels(figure: go.Figure):
    """(x, y, channel) of each label drawn on the feature-map grid."""
    trace = next(t for t in figure.data if t.name == images.CHANNEL_LABELS)
    return [(x, y, int(text)) for x, y, text in zip(trace.x, trace.y, trace.text)]


def annotation_channels(figure: go.Figure) -> list[int]:
    return [channel for _, _, channel in channel_labels(figure)]


def heatmap_values(figure: go.Figure) -> np.ndarray:
    z = np.asarray(figure.data[0].z, dtype=np.float64)
    return z[~np.isnan(z)]


def resolved_scale(name: str):
    """The colour scale plotly makes of ``name`` (a figure stores the resolved list, not the name)."""
    return go.Heatmap(colorscale=name).colorscale


# ------------------------------------------------------------------------------------------ scatter

def test_scatter_has_one_trace_per_class_present_plus_the_selection():
    coords, labels, predicted = scatter_data()
    figure = scatter.embedding_scatter(coords, labels, predicted, CLASSES)
    assert [trace.name for trace in figure.data] == ["zero", "one", "two", scatter.SELECTION_TRACE]
    assert figure.data[-1].showlegend is False
    for trace, k in zip(point_traces(figure), range(3)):
        assert trace.marker.color == theme.class_colour(k)
        assert len(trace.x) == int((labels == k).sum())


def test_scatter_customdata_covers_every_index_once_with_names_and_coordinates():
    coords, labels, predicted = scatter_data()
    figure = scatter.embedding_scatter(coords, labels, predicted, CLASSES)
    seen = []
    for trace in point_traces(figure):
        customdata = np.asarray(trace.customdata, dtype=object)
        indices = customdata[:, 0].astype(int)
        seen.extend(indices.tolist())
        np.testing.assert_allclose(np.asarray(trace.x, dtype=np.float32), coords[indices, 0])
        np.testing.assert_allclose(np.asarray(trace.y, dtype=np.float32), coords[indices, 1])
        assert list(customdata[:, 1]) == [CLASSES[labels[i]] for i in indices]
        assert list(customdata[:, 2]) == [CLASSES[predicted[i]] for i in indices]
    assert sorted(seen) == list(range(len(coords)))


def test_scatter_coloured_by_predicted_class_groups_by_prediction():
    coords, labels, predicted = scatter_data()
    figure = scatter.embedding_scatter(coords, labels, predicted, CLASSES, color_by="predicted")
    counts = {trace.name: len(trace.x) for trace in point_traces(figure)}
    assert counts == {CLASSES[k]: int((predicted == k).sum()) for k in np.unique(predicted)}
    assert counts["three"] == 1  # a class only ever predicted still gets its trace
    assert figure.layout.legend.title.text == scatter.COLOUR_MODES["predicted"]


def test_scatter_coloured_by_correctness_has_correct_and_wrong_groups():
    coords, labels, predicted = scatter_data()
    figure = scatter.embedding_scatter(coords, labels, predicted, CLASSES, color_by="correct")
    traces = {trace.name: trace for trace in point_traces(figure)}
    assert set(traces) == {"correct", "wrong"}
    assert len(traces["wrong"].x) == 4 and len(traces["correct"].x) == 36
    wrong = sorted(np.asarray(traces["wrong"].customdata, dtype=object)[:, 0].astype(int).tolist())
    assert wrong == [1, 5, 9, 20]
    assert traces["wrong"].marker.color == theme.CORRECT_COLOURS["wrong"]
    assert traces["correct"].marker.color == theme.CORRECT_COLOURS["correct"]


def test_scatter_with_all_predictions_right_has_no_wrong_trace():
    coords, labels, _ = scatter_data()
    figure = scatter.embedding_scatter(coords, labels, labels, CLASSES, color_by="correct")
    assert [trace.name for trace in figure.data] == ["correct", scatter.SELECTION_TRACE]


def test_selection_ring_is_at_the_selected_points_coordinates():
    coords, labels, predicted = scatter_data()
    figure = scatter.embedding_scatter(coords, labels, predicted, CLASSES, selected=17)
    ring = figure.data[-1]
    assert ring.name == scatter.SELECTION_TRACE
    assert list(ring.x) == pytest.approx([float(coords[17, 0])])
    assert list(ring.y) == pytest.approx([float(coords[17, 1])])
    assert int(ring.customdata[0][0]) == 17


@pytest.mark.parametrize("selected", [None, -1, 40])
def test_no_or_out_of_range_selection_gives_an_empty_ring(selected):
    coords, labels, predicted = scatter_data()
    ring = scatter.embedding_scatter(coords, labels, predicted, CLASSES, selected=selected).data[-1]
    assert ring.name == scatter.SELECTION_TRACE
    assert len(ring.x) == 0 and len(ring.y) == 0


def test_empty_figure_shows_its_message():
    figure = scatter.empty_figure("computing t-SNE")
    assert len(figure.data) == 0
    assert [annotation.text for annotation in figure.layout.annotations] == ["computing t-SNE"]


# ------------------------------------------------------------------------------------------ feature maps

def test_feature_maps_are_ordered_by_mean_activation():
    rng = np.random.default_rng(0)
    maps = rng.normal(size=(10, 4, 5)).astype(np.float32) + rng.permutation(10)[:, None, None] * 3.0
    figure = images.feature_map_grid(maps)
    expected = np.argsort(maps.mean(axis=(1, 2)))[::-1]
    assert annotation_channels(figure) == expected.tolist()
    np.testing.assert_array_equal(images.channel_order(maps), expected)


def test_feature_map_grid_places_each_channel_where_its_annotation_says():
    rng = np.random.default_rng(1)
    maps = (rng.random((5, 3, 4)) + np.arange(5)[:, None, None]).astype(np.float32)
    figure = images.feature_map_grid(maps)
    z = np.asarray(figure.data[0].z, dtype=np.float32)
    for x, y, channel in channel_labels(figure):
        left, top = int(x + 0.5), int(y + 0.5)
        np.testing.assert_array_equal(z[top : top + 3, left : left + 4], maps[channel])


def test_shared_scale_keeps_raw_values():
    rng = np.random.default_rng(2)
    maps = (rng.normal(size=(6, 3, 3)) * 7).astype(np.float32)
    figure = images.feature_map_grid(maps, scale="shared")
    np.testing.assert_allclose(np.sort(heatmap_values(figure)), np.sort(maps.ravel()), rtol=1e-6)
    assert figure.data[0].zmin is None and figure.data[0].zmax is None


def test_per_map_scale_puts_every_map_in_the_unit_range():
    rng = np.random.default_rng(3)
    maps = (rng.normal(size=(6, 3, 3)) * np.arange(1, 7)[:, None, None] + 10).astype(np.float32)
    maps[2] = 4.0  # a constant map must not divide by zero
    figure = images.feature_map_grid(maps, scale="per-map")
    values = heatmap_values(figure)
    assert values.min() >= 0.0 and values.max() <= 1.0
    assert np.isfinite(values).all()
    assert np.sum(values == 1.0) >= 5 and np.sum(values == 0.0) >= 5  # every varying map reaches both ends
    assert (figure.data[0].zmin, figure.data[0].zmax) == (0, 1)
    # the raw values stay in the hover data
    raw = np.asarray(figure.data[0].customdata, dtype=np.float64)[..., 1]
    np.testing.assert_allclose(np.sort(raw[~np.isnan(raw)]), np.sort(maps.ravel()), rtol=1e-6)


def test_at_most_64_channels_are_shown_and_the_title_says_so():
    rng = np.random.default_rng(4)
    maps = rng.random((100, 2, 2)).astype(np.float32) + rng.permutation(100)[:, None, None]
    figure = images.feature_map_grid(maps, title="conv3")
    shown = annotation_channels(figure)
    assert len(shown) == 64
    assert shown == np.argsort(maps.mean(axis=(1, 2)))[::-1][:64].tolist()
    assert heatmap_values(figure).size == 64 * 4
    assert figure.layout.title.text.startswith("conv3")
    assert "64" in figure.layout.title.text and "100" in figure.layout.title.text


def test_all_channels_shown_means_no_note_in_the_title():
    figure = images.feature_map_grid(np.ones((8, 2, 2), dtype=np.float32), title="conv1")
    assert figure.layout.title.text == "conv1"
    assert len(annotation_channels(figure)) == 8


def test_linear_layer_units_are_shown_as_a_grid_in_their_own_order():
    units = np.arange(10, dtype=np.float32) * 0.5
    figure = images.feature_map_grid(units)
    assert len(figure.data) == 1
    z = np.asarray(figure.data[0].z, dtype=np.float64)
    assert z.shape == (3, 4)  # ceil(sqrt(10)) columns
    np.testing.assert_array_equal(z.ravel()[:10], units)
    assert np.isnan(z.ravel()[10:]).all()
    np.testing.assert_array_equal(np.asarray(figure.data[0].customdata).ravel()[:10], np.arange(10))
    assert figure.layout.title.text == "10 units"


def test_tile_places_map_k_at_its_row_and_column_offset():
    count, height, width, columns, gap = 7, 2, 3, 3, 1
    maps = np.arange(count * height * width, dtype=np.float32).reshape(count, height, width)
    mosaic = images.tile(maps, columns, gap)
    rows = math.ceil(count / columns)
    assert mosaic.shape == (rows * height + (rows - 1) * gap, columns * width + (columns - 1) * gap)
    # Independent reference: a mosaic assembled from row/column blocks joined by NaN strips.
    blank = np.full((height, width), np.nan, dtype=np.float32)
    cells = [maps[k] if k < count else blank for k in range(rows * columns)]
    column_gap = np.full((height, gap), np.nan, dtype=np.float32)
    row_gap = np.full((gap, mosaic.shape[1]), np.nan, dtype=np.float32)
    strips = []
    for r in range(rows):
        parts = []
        for c in range(columns):
            parts += [cells[r * columns + c], column_gap]
        strips += [np.hstack(parts[:-1]), row_gap]
    np.testing.assert_array_equal(mosaic, np.vstack(strips[:-1]))
    np.testing.assert_array_equal(mosaic[3:5, 4:7], maps[4])  # row 1, column 1
    np.testing.assert_array_equal(mosaic[6:8, 0:3], maps[6])  # row 2, column 0
    assert np.isnan(mosaic[6:8, 3:]).all()  # the two empty cells of the last row


def test_tile_with_a_wider_gap():
    maps = np.ones((2, 2, 2), dtype=np.float32)
    mosaic = images.tile(maps, 2, gap=3)
    assert mosaic.shape == (2, 7)
    assert np.isnan(mosaic[:, 2:5]).all()
    assert (mosaic[:, :2] == 1).all() and (mosaic[:, 5:] == 1).all()


# ------------------------------------------------------------------------------------------ images

def test_image_figure_of_one_channel_is_a_grey_heatmap_of_the_pixels():
    image = np.random.default_rng(0).random((1, 6, 5)).astype(np.float32)
    figure = images.image_figure(image, title="sample 3")
    assert len(figure.data) == 1
    trace = figure.data[0]
    assert trace.type == "heatmap"
    np.testing.assert_allclose(np.asarray(trace.z, dtype=np.float32), image[0])
    assert (trace.zmin, trace.zmax) == (0, 1)
    assert trace.colorscale == resolved_scale(theme.IMAGE_SCALE)
    assert figure.layout.yaxis.autorange == "reversed"
    assert figure.layout.title.text == "sample 3"


def test_image_figure_of_three_channels_is_an_rgb_image():
    image = np.zeros((3, 4, 6), dtype=np.float32)
    image[0] = 1.0  # red
    image[2, :, 3:] = 2.0  # blue, out of range on the right half: clipped
    figure = images.image_figure(image)
    assert len(figure.data) == 1
    trace = figure.data[0]
    assert trace.type == "image"
    z = np.asarray(trace.z)
    assert z.shape == (4, 6, 3)
    assert z.dtype == np.uint8
    np.testing.assert_array_equal(z[:, :3], np.broadcast_to([255, 0, 0], (4, 3, 3)))
    np.testing.assert_array_equal(z[:, 3:], np.broadcast_to([255, 0, 255], (4, 3, 3)))


def test_top_k_figure_highlights_the_true_class():
    pairs = [("7", 0.6), ("1", 0.25), ("9", 0.1), ("4", 0.04), ("2", 0.01)]
    figure = images.top_k_figure(pairs, true_name="9")
    bar = figure.data[0]
    names = [label.strip() for label in bar.y]
    assert names == ["2", "4", "9", "1", "7"]  # most probable at the top
    assert list(bar.x) == pytest.approx([0.01, 0.04, 0.1, 0.25, 0.6])
    colours = list(bar.marker.color)
    assert colours[names.index("9")] == theme.ACCENT
    assert sum(colour == theme.ACCENT for colour in colours) == 1
    assert list(figure.layout.xaxis.range) == [0, 1]


def test_top_k_figure_without_the_true_class_highlights_nothing():
    figure = images.top_k_figure([("a", 0.7), ("b", 0.3)], true_name="c")
    assert theme.ACCENT not in list(figure.data[0].marker.color)


# ------------------------------------------------------------------------------------------ attribution

def test_signed_attribution_uses_a_diverging_scale_centred_on_zero():
    values = np.array([[-0.5, 0.1], [0.2, 2.0]], dtype=np.float32)
    figure = attribution.attribution_figure(values, np.zeros((1, 2, 2)), "saliency")
    assert len(figure.data) == 1
    trace = figure.data[0]
    assert trace.colorscale == resolved_scale(theme.SIGNED_SCALE)
    assert trace.zmin == pytest.approx(-2.0) and trace.zmax == pytest.approx(2.0)
    assert trace.zmin == -trace.zmax
    np.testing.assert_array_equal(np.asarray(trace.z, dtype=np.float32), values)


def test_unsigned_attribution_uses_a_sequential_scale_over_its_range():
    values = np.array([[0.0, 0.5], [1.5, 3.0]], dtype=np.float32)
    trace = attribution.attribution_figure(values, np.zeros((1, 2, 2)), "saliency").data[0]
    assert trace.colorscale == resolved_scale(theme.ATTRIBUTION_SCALE)
    assert (trace.zmin, trace.zmax) == (pytest.approx(0.0), pytest.approx(3.0))


def test_overlay_has_the_image_and_the_map_with_its_opacity():
    values = np.array([[-1.0, 1.0], [0.5, 0.0]], dtype=np.float32)
    image = np.random.default_rng(0).random((3, 2, 2))
    figure = attribution.attribution_figure(values, image, "guided", display="overlay", opacity=0.4)
    assert len(figure.data) == 2
    assert figure.data[0].type == "image"
    overlay = figure.data[1]
    assert overlay.type == "heatmap" and overlay.opacity == pytest.approx(0.4)
    assert overlay.colorscale == resolved_scale(theme.SIGNED_SCALE)
    assert overlay.zmin == -overlay.zmax == pytest.approx(-1.0)


def test_all_zero_attribution_builds_with_a_non_degenerate_scale():
    figure = attribution.attribution_figure(np.zeros((3, 3)), np.zeros((1, 3, 3)), "flat")
    trace = figure.data[0]
    assert trace.zmin == 0.0 and trace.zmax > trace.zmin  # a zero-width range would leave the colour scale undefined
    assert np.asarray(trace.z).shape == (3, 3)
    assert "constant map" in figure.layout.title.text


@pytest.mark.parametrize("display, traces", [("heatmap", 2), ("overlay", 3)])
def test_occlusion_figure_has_the_probability_map_and_the_drop(display, traces):
    probability = np.array([[0.9, 0.8], [0.3, 0.9]], dtype=np.float32)
    image = np.random.default_rng(0).random((1, 2, 2))
    figure = attribution.occlusion_figure(probability, image, "seven", display=display)
    assert len(figure.data) == traces
    np.testing.assert_allclose(np.asarray(figure.data[0].z, dtype=np.float32), probability)
    drop = np.asarray(figure.data[-1].z, dtype=np.float32)
    np.testing.assert_allclose(drop, [[0.0, 0.1], [0.6, 0.0]], atol=1e-6)
    assert "p(seven)" in figure.layout.annotations[0].text
    assert figure.data[-1].xaxis == "x2"  # the drop sits in the right-hand panel


def test_probability_drop_is_clipped_at_zero():
    np.testing.assert_allclose(attribution.baseline_probability_drop(np.array([0.2, 0.7, 0.9]), 0.7), [0.5, 0.0, 0.0])


@pytest.mark.parametrize("channels, first_type", [(1, "heatmap"), (3, "image")])
def test_inversion_figure_shows_the_scaled_reconstruction_beside_the_image(channels, first_type):
    rng = np.random.default_rng(0)
    reconstruction = rng.normal(size=(channels, 5, 5)) * 4 - 3
    image = rng.random((channels, 5, 5))
    figure = attribution.inversion_figure(reconstruction, image, "channel 3")
    assert len(figure.data) == 2
    assert [trace.type for trace in figure.data] == [first_type, first_type]
    assert figure.data[1].xaxis == "x2"
    if channels == 1:
        shown = np.asarray(figure.data[0].z, dtype=np.float64)
        expected = (reconstruction[0] - reconstruction.min()) / (reconstruction.max() - reconstruction.min())
        np.testing.assert_allclose(shown, expected, rtol=1e-5, atol=1e-6)
    else:
        shown = np.asarray(figure.data[0].z)
        assert shown.dtype == np.uint8 and shown.min() == 0 and shown.max() == 255
    assert figure.layout.title.text == "channel 3"


def test_inversion_of_a_constant_reconstruction_is_all_zero():
    figure = attribution.inversion_figure(np.full((1, 3, 3), 7.0), np.zeros((1, 3, 3)), "flat")
    assert np.all(np.asarray(figure.data[0].z) == 0)


# ------------------------------------------------------------------------------------------ theme

def test_class_colours_cycle_and_layout_uses_the_house_style():
    assert theme.class_colour(0) == theme.CLASS_COLOURS[0]
    assert theme.class_colour(len(theme.CLASS_COLOURS) + 2) == theme.CLASS_COLOURS[2]
    figure = theme.base_layout(go.Figure(), "title", height=123)
    assert figure.layout.height == 123 and figure.layout.title.text == "title"
    assert figure.layout.paper_bgcolor == theme.BACKGROUND
    config = theme.graph_config("embedding")
    assert config["toImageButtonOptions"]["filename"] == "embedding"
    assert config["displaylogo"] is False
