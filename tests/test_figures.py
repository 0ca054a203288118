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


def points_of(figure: go.Figure):
    """The one trace of every point (sample order); the legend keys and the ring follow it."""
    assert figure.data[0].name == scatter.POINTS_TRACE
    return figure.data[0]


def colours_of(figure: go.Figure) -> list[str]:
    """Each point's colour, read through the discrete colour scale as plotly draws it."""
    points = points_of(figure)
    scale = [colour for _edge, colour in points.marker.colorscale]
    return [scale[2 * int(v)] for v in points.marker.color]


def legend_of(figure: go.Figure) -> list[str]:
    """The legend's keys as shown (names of the legend traces that show in the legend)."""
    return [trace.name for trace in figure.data[1:-1] if trace.showlegend]


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

def test_scatter_is_one_trace_of_every_point_then_legend_keys_then_the_selection():
    coords, labels, predicted = scatter_data()
    figure = scatter.embedding_scatter(coords, labels, predicted, CLASSES)
    assert figure.data[-1].name == scatter.SELECTION_TRACE and figure.data[-1].showlegend is False
    assert len(figure.data) == 1 + scatter.legend_slots(CLASSES) + 1  # the same count in every colour mode
    assert legend_of(figure) == CLASSES
    assert colours_of(figure) == [theme.class_colour(int(k)) for k in labels]


def test_scatter_customdata_covers_every_index_once_with_names_and_coordinates():
    coords, labels, predicted = scatter_data()
    points = points_of(scatter.embedding_scatter(coords, labels, predicted, CLASSES))
    customdata = np.asarray(points.customdata, dtype=object)
    assert customdata[:, 0].astype(int).tolist() == list(range(len(coords)))  # sample order
    np.testing.assert_allclose(np.asarray(points.x, dtype=np.float32), coords[:, 0])
    np.testing.assert_allclose(np.asarray(points.y, dtype=np.float32), coords[:, 1])
    assert list(customdata[:, 1]) == [CLASSES[k] for k in labels]
    assert list(customdata[:, 2]) == [CLASSES[k] for k in predicted]


def test_scatter_coloured_by_predicted_class_colours_by_prediction():
    coords, labels, predicted = scatter_data()
    figure = scatter.embedding_scatter(coords, labels, predicted, CLASSES, color_by="predicted")
    assert colours_of(figure) == [theme.class_colour(int(k)) for k in predicted]
    assert colours_of(figure)[9] == theme.class_colour(3)  # a class only ever predicted has its colour
    assert figure.layout.legend.title.text == scatter.COLOUR_MODES["predicted"]


def test_a_model_with_more_outputs_than_classes_names_and_greys_the_others():
    coords, labels, predicted = scatter_data()
    predicted = predicted.copy()
    predicted[[0, 3]] = [500, 999]  # ImageNet weights on a folder of four classes
    names = [f"category {k}" for k in range(1000)]
    figure = scatter.embedding_scatter(coords, labels, predicted, CLASSES, color_by="predicted", output_names=names)
    customdata = np.asarray(points_of(figure).customdata, dtype=object)
    assert customdata[0, 2] == "category 500" and customdata[3, 2] == "category 999"
    colours = colours_of(figure)
    assert colours[0] == colours[3] == theme.MUTED and colours[1] == theme.class_colour(int(predicted[1]))
    assert legend_of(figure)[-1] == f"{scatter.OTHER_OUTPUT} (2)"


def test_scatter_coloured_by_correctness_counts_both_groups_in_the_legend():
    coords, labels, predicted = scatter_data()
    figure = scatter.embedding_scatter(coords, labels, predicted, CLASSES, color_by="correct")
    assert legend_of(figure) == ["correct (36)", "wrong (4)"]
    wrong = [i for i, colour in enumerate(colours_of(figure)) if colour == theme.CORRECT_COLOURS["wrong"]]
    assert wrong == [1, 5, 9, 20]
    assert colours_of(figure).count(theme.CORRECT_COLOURS["correct"]) == 36


def test_wrong_predictions_are_larger_and_counted_with_thousands_separators():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 4, size=1797)
    predicted = labels.copy()
    mistakes = rng.choice(1797, size=31, replace=False)
    predicted[mistakes] = (labels[mistakes] + 1) % 4
    figure = scatter.embedding_scatter(rng.normal(size=(1797, 2)), labels, predicted, CLASSES, color_by="correct")
    assert legend_of(figure) == ["correct (1,766)", "wrong (31)"]
    assert figure.data[-1].name == scatter.SELECTION_TRACE  # the ring stays above everything
    sizes = np.asarray(points_of(figure).marker.size)
    assert sorted(np.flatnonzero(sizes == scatter.WRONG_MARKER_SIZE).tolist()) == sorted(mistakes.tolist())
    assert (np.delete(sizes, mistakes) == scatter.MARKER_SIZE).all() and scatter.WRONG_MARKER_SIZE > scatter.MARKER_SIZE


def test_correct_and_wrong_colours_are_the_okabe_ito_pair():
    # Blue against vermillion stays distinct under protanopia, deuteranopia and tritanopia; green/red does not.
    assert {key: value.lower() for key, value in theme.CORRECT_COLOURS.items()} == {"correct": "#0072b2",
                                                                                     "wrong": "#d55e00"}
    assert theme.CLASS_COLOURS[:10] == ["#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#59a14f", "#edc948", "#b07aa1",
                                        "#ff9da7", "#9c755f", "#bab0ac"]  # Tableau 10 for classes


def test_scatter_with_all_predictions_right_says_none_is_wrong():
    coords, labels, _ = scatter_data()
    figure = scatter.embedding_scatter(coords, labels, labels, CLASSES, color_by="correct")
    assert legend_of(figure)[0] == "correct (40)" and set(colours_of(figure)) == {theme.CORRECT_COLOURS["correct"]}


@pytest.mark.parametrize("mode, values, note", [("pooled", 32, "channel means, 32 values"),
                                                 ("flat", 8192, "flattened, 8,192 values")])
def test_scatter_title_counts_the_values_the_caller_passes(mode, values, note):
    title = scatter.scatter_title("t-SNE", "relu2", mode, values, 1797)
    assert title == f"t-SNE of layer relu2 ({note} per image), 1,797 images"


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


def test_empty_figure_shows_its_message_at_the_height_it_is_given():
    figure = scatter.empty_figure("computing t-SNE")
    assert len(figure.data) == 0
    assert [annotation.text for annotation in figure.layout.annotations] == ["computing t-SNE"]
    assert figure.layout.height is None
    shape = (32, 7, 7)
    placeholder = scatter.empty_figure("click a point", images.feature_map_height(shape))
    real = images.feature_map_grid(np.random.default_rng(0).random(shape), title="relu2")
    assert placeholder.layout.height == real.layout.height  # no jump when the real figure replaces it


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
    columns = images.grid_geometry(10, (1, 1), gap=0)[0]
    assert z.shape == (math.ceil(10 / columns), columns)
    np.testing.assert_array_equal(z.ravel()[:10], units)
    assert np.isnan(z.ravel()[10:]).all()
    np.testing.assert_array_equal(np.asarray(figure.data[0].customdata).ravel()[:10], np.arange(10))
    assert figure.layout.title.text == "10 units"


def test_logits_with_class_names_are_a_bar_chart_labelled_with_the_names():
    logits = np.array([0.5, -1.25, 3.0, 0.0], dtype=np.float32)
    figure = images.feature_map_grid(logits, title="logits", class_names=CLASSES)
    assert [trace.type for trace in figure.data] == ["bar"]
    bars = figure.data[0]
    assert bars.orientation == "h"
    assert list(bars.y) == CLASSES  # in class order, first class at the top
    assert figure.layout.yaxis.autorange == "reversed"
    np.testing.assert_array_equal(np.asarray(bars.x, dtype=np.float32), logits)
    assert [float(text) for text in bars.text] == pytest.approx(logits.tolist())  # every bar carries its value
    colours = list(bars.marker.color)
    assert colours[2] == theme.ACCENT and colours.count(theme.ACCENT) == 1  # the highest logit stands out
    assert figure.layout.height == images.feature_map_height((4,), class_names=CLASSES)


def test_many_named_units_show_the_largest_in_class_order_and_say_so():
    values = np.arange(30, dtype=np.float32)[::-1].copy()  # unit 0 is the largest
    names = [f"class {k}" for k in range(30)]
    bars = images.unit_bars(values, names, "logits", max_bars=5)
    assert list(bars.data[0].y) == names[:5]
    assert bars.layout.title.text == "logits (the 5 largest of 30)"


def test_names_that_do_not_match_the_units_fall_back_to_the_grid():
    figure = images.feature_map_grid(np.ones(5, dtype=np.float32), class_names=CLASSES)
    assert figure.data[0].type == "heatmap"


@pytest.mark.parametrize("count, shape", [(8, (28, 28)), (32, (7, 7)), (64, (4, 4)), (1, (3, 3)), (512, (7, 7)),
                                          (16, (2, 9))])
def test_feature_map_grid_fills_the_panel_width_with_square_pixels(count, shape):
    width = 700
    shown = min(count, images.MAX_CHANNELS_SHOWN)
    columns, gap, height = images.grid_geometry(shown, shape, width)
    rows = math.ceil(shown / columns)
    plot_width = width - 16 - images.COLORBAR_ROOM
    plot_height = height - (8 + theme.TITLE_SIZE + 16) - 8
    data_width = columns * (shape[1] + gap) - gap
    data_height = rows * (shape[0] + gap) - gap
    # Square pixels that span the plot's width need exactly this height (rounded up to a whole pixel).
    assert plot_height == pytest.approx(plot_width * data_height / data_width, abs=1.0)
    if columns > 1:  # one column fewer would have grown past the height limit
        fewer = columns - 1
        taller = plot_width * (math.ceil(shown / fewer) * (shape[0] + gap) - gap) / (fewer * (shape[1] + gap) - gap)
        assert plot_height <= images.MAX_GRID_HEIGHT < taller
    maps = np.random.default_rng(0).random((count, *shape)).astype(np.float32)
    figure = images.feature_map_grid(maps, title="layer", width=width)
    assert figure.layout.height == height == images.feature_map_height((count, *shape), width=width)
    labels = next(trace for trace in figure.data if trace.name == images.CHANNEL_LABELS)
    assert labels.textfont.size >= 14 and labels.textfont.color == "white" and labels.textfont.shadow


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


def test_every_top_k_bar_is_labelled_also_when_tiny():
    pairs = [("seven", 0.9987), ("one", 0.0011), ("nine", 0.0002), ("four", 3e-7), ("two", 0.0)]
    figure = images.top_k_figure(pairs, true_name="seven")
    bar, labels = figure.data
    assert list(bar.y) == ["two", "four", "nine", "one", "seven"]  # the class names themselves on the axis
    # A text trace, since plotly draws no text on a zero-width bar: one label per bar, at the bar's end.
    assert labels.name == images.TOP_K_LABELS and labels.mode == "text"
    assert list(labels.y) == list(bar.y) and list(labels.x) == list(bar.x)
    assert list(labels.text) == ["<0.1%", "<0.1%", "<0.1%", "0.1%", "99.9%"]
    assert list(labels.textposition) == ["middle right"] * 4 + ["middle left"]  # the long bar holds its own label
    assert labels.textfont.size >= 14


def test_top_k_figure_without_the_true_class_highlights_nothing():
    figure = images.top_k_figure([("a", 0.7), ("b", 0.3)], true_name="c")
    assert theme.ACCENT not in list(figure.data[0].marker.color)


# ------------------------------------------------------------------------------------------ attribution

def attribution_figure(values, image, title, display="heatmap", opacity=0.6):
    """One method's single map as the attribution view draws it (the builder it calls, with the default spec)."""
    return attribution.method_figure({"map": values}, list(attribution.DEFAULT_SPECS), image, title, display, opacity)


def occlusion_figure(probability, drop, clean, image, class_name, display="heatmap"):
    """Occlusion's result drawn by the attribution view's own path (its map specs come from the registry)."""
    from dashboard.views import attribution as view

    return view.method_figure({"probability": probability, "map": drop, "clean": clean}, "occlusion", image,
                              "Occlusion", {"display": display, "opacity": 0.6}, class_name)


def test_signed_attribution_uses_a_diverging_scale_centred_on_zero():
    values = np.array([[-0.5, 0.1], [0.2, 2.0]], dtype=np.float32)
    figure = attribution_figure(values, np.zeros((1, 2, 2)), "saliency")
    assert len(figure.data) == 1
    trace = figure.data[0]
    assert trace.colorscale == resolved_scale(theme.SIGNED_SCALE)
    assert trace.zmin == pytest.approx(-2.0) and trace.zmax == pytest.approx(2.0)
    assert trace.zmin == -trace.zmax
    np.testing.assert_array_equal(np.asarray(trace.z, dtype=np.float32), values)


def test_unsigned_attribution_uses_a_sequential_scale_over_its_range():
    values = np.array([[0.0, 0.5], [1.5, 3.0]], dtype=np.float32)
    trace = attribution_figure(values, np.zeros((1, 2, 2)), "saliency").data[0]
    assert trace.colorscale == resolved_scale(theme.ATTRIBUTION_SCALE)
    assert (trace.zmin, trace.zmax) == (pytest.approx(0.0), pytest.approx(3.0))


def test_overlay_has_the_image_and_the_map_with_its_opacity():
    values = np.array([[-1.0, 1.0], [0.5, 0.0]], dtype=np.float32)
    image = np.random.default_rng(0).random((3, 2, 2))
    figure = attribution_figure(values, image, "guided", display="overlay", opacity=0.4)
    assert len(figure.data) == 2
    assert figure.data[0].type == "image"
    overlay = figure.data[1]
    assert overlay.type == "heatmap" and overlay.opacity == pytest.approx(0.4)
    assert overlay.colorscale == resolved_scale(theme.SIGNED_SCALE)
    assert overlay.zmin == -overlay.zmax == pytest.approx(-1.0)


def test_all_zero_attribution_builds_with_a_non_degenerate_scale():
    figure = attribution_figure(np.zeros((3, 3)), np.zeros((1, 3, 3)), "flat")
    trace = figure.data[0]
    assert trace.zmin == 0.0 and trace.zmax > trace.zmin  # a zero-width range would leave the colour scale undefined
    assert np.asarray(trace.z).shape == (3, 3)
    assert figure.layout.title.text == "flat"
    assert "constant map" in figure.layout.title.subtitle.text


def occlusion_result(clean: float = 0.9):
    """A result as compute's occlusion returns it: the drop is signed (negative where covering raises p)."""
    probability = np.array([[0.9, 0.8, 0.95], [0.3, 0.9, 0.92]], dtype=np.float32)
    return {"probability": probability, "map": (clean - probability).astype(np.float32), "clean": clean}


@pytest.mark.parametrize("display, traces", [("heatmap", 2), ("overlay", 4)])
def test_occlusion_figure_shows_computes_own_arrays(display, traces):
    result = occlusion_result()
    image = np.random.default_rng(0).random((1, 2, 3))
    figure = occlusion_figure(result["probability"], result["map"], result["clean"], image, "seven",
                                          display=display)
    assert len(figure.data) == traces
    maps = [trace for trace in figure.data if trace.colorbar.tickformat]  # the image traces have no colour bar
    probability, drop = maps
    np.testing.assert_array_equal(np.asarray(probability.z, dtype=np.float32), result["probability"])
    np.testing.assert_array_equal(np.asarray(drop.z, dtype=np.float32), result["map"])  # nothing clipped
    assert (probability.zmin, probability.zmax) == (0.0, 1.0)
    assert probability.colorscale == resolved_scale(theme.PROBABILITY_SCALE)
    assert drop.colorscale == resolved_scale(theme.SIGNED_SCALE)
    assert drop.zmin == -drop.zmax == pytest.approx(-0.6)  # diverging, centred on zero: max |drop|
    assert (probability.xaxis, drop.xaxis) == ("x", "x2")  # the drop sits in the right-hand panel
    assert "p(seven)" in figure.layout.annotations[0].text
    if display == "overlay":
        assert drop.opacity == pytest.approx(0.6)


def test_occlusion_drop_of_one_sign_still_has_a_diverging_scale_centred_on_zero():
    probability = np.full((2, 2), 0.2, dtype=np.float32)
    drop = np.array([[0.1, 0.3], [0.0, 0.2]], dtype=np.float32)
    figure = occlusion_figure(probability, drop, 0.5, np.zeros((1, 2, 2)), "a")
    assert figure.data[1].zmin == -figure.data[1].zmax == pytest.approx(-0.3)
    assert figure.data[1].colorscale == resolved_scale(theme.SIGNED_SCALE)


def test_near_zero_clean_probability_is_said_in_words():
    # Sample 1254 of digits (a 4) with target 9: p(9) = 6.3e-10 on the clean image.
    result = occlusion_result(clean=6.3e-10)
    result["probability"] = np.full((2, 3), 6.0e-10, dtype=np.float32)
    result["map"] = np.array([[4.6e-10, 1e-10, -5e-10], [0.0, 2e-10, -1e-11]], dtype=np.float32)
    figure = occlusion_figure(result["probability"], result["map"], result["clean"], np.zeros((1, 2, 3)),
                                          "9")
    note = figure.layout.title.subtitle.text
    assert "p(9) is only 0.00000000063 on the clean image" in note and "tiny" in note
    drop = figure.data[1]
    assert drop.zmin == -drop.zmax == pytest.approx(-5e-10)
    assert not drop.colorbar.tickformat.endswith("s")
    normal = occlusion_result(0.93)
    ordinary = occlusion_figure(normal["probability"], normal["map"], normal["clean"], np.zeros((1, 2, 3)),
                                            "9")
    assert "only" not in ordinary.layout.title.subtitle.text and "93.0%" in ordinary.layout.title.subtitle.text


@pytest.mark.parametrize("limit", [6e-7, 4.6e-10, 8e-4, 0.03, 0.5, 1.0, 12.0, 3000.0])
@pytest.mark.parametrize("scale", ["signed", "auto"])
def test_colour_bars_read_in_plain_numbers_not_si_suffixes(limit, scale):
    values = np.array([[0.0, limit / 2], [limit / 4, limit]], dtype=np.float64)
    colorbar = attribution.map_trace(values, scale).colorbar
    tickformat = colorbar.tickformat
    assert tickformat and tickformat[-1] in "f%e"  # d3's "s" (and the default) print "600n", "800µ"
    assert colorbar.exponentformat == "e"
    for tick in (limit, limit / 2):
        # d3's f/%/e formats are Python's: render a tick and check it reads back as its value.
        text = format(tick, tickformat)
        assert not any(suffix in text for suffix in "nµmkMG")
        back = float(text[:-1]) / 100 if text.endswith("%") else float(text)
        assert back == pytest.approx(tick, rel=0.15)


@pytest.mark.parametrize("limit, percent, expected", [(0.46, False, ".2f"), (4.6, False, ".1f"), (460, False, ".0f"),
                                                      (0.46, True, ".0%"), (0.046, True, ".1%"), (1.0, True, ".0%"),
                                                      (4.6e-10, False, ".1e"), (6e-7, True, ".1e")])
def test_number_format_follows_the_magnitude(limit, percent, expected):
    assert theme.number_format(limit, percent) == expected


def test_method_figure_draws_one_subplot_per_spec_on_its_scale():
    rng = np.random.default_rng(7)
    maps = {"probability": rng.random((4, 4)), "signed": rng.normal(size=(4, 4)), "positive": rng.random((4, 4)) + 1}
    specs = [("probability", "p", "probability"), ("signed", "gradient", "auto"), ("positive", "magnitude", "auto")]
    figure = attribution.method_figure(maps, specs, np.zeros((1, 4, 4)), "three maps")
    assert [trace.xaxis for trace in figure.data] == ["x", "x2", "x3"]
    assert [annotation.text for annotation in figure.layout.annotations] == ["p", "gradient", "magnitude"]
    for trace, (key, _, _) in zip(figure.data, specs):
        np.testing.assert_allclose(np.asarray(trace.z, dtype=np.float64), maps[key], rtol=1e-6)
    probability, signed, positive = figure.data
    assert (probability.zmin, probability.zmax) == (0.0, 1.0)
    assert signed.zmin == -signed.zmax == pytest.approx(-np.abs(maps["signed"]).max(), rel=1e-6)
    assert positive.colorscale == resolved_scale(theme.ATTRIBUTION_SCALE)
    assert (positive.zmin, positive.zmax) == pytest.approx((maps["positive"].min(), maps["positive"].max()), rel=1e-6)
    # each colour bar sits just right of its own subplot
    for trace, axis in zip(figure.data, ["xaxis", "xaxis2", "xaxis3"]):
        assert trace.colorbar.x == pytest.approx(figure.layout[axis].domain[1] + 0.01)


def test_a_method_with_the_default_spec_gets_one_map():
    values = np.array([[-0.2, 0.4], [0.1, 0.0]], dtype=np.float32)
    figure = attribution.method_figure({"map": values}, attribution.DEFAULT_SPECS, np.zeros((1, 2, 2)), "Saliency")
    assert len(figure.data) == 1
    np.testing.assert_array_equal(np.asarray(figure.data[0].z, dtype=np.float32), values)
    assert figure.data[0].zmin == -figure.data[0].zmax


def test_unknown_scale_is_refused():
    with pytest.raises(ValueError, match="unknown scale"):
        attribution.method_figure({"map": np.zeros((2, 2))}, [("map", "m", "log")], np.zeros((1, 2, 2)), "")


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
    assert figure.layout.font.size >= 14 and figure.layout.title.font.size >= 16


def test_graph_config_has_no_cloud_button_and_exports_png():
    config = theme.graph_config("embedding")
    assert "sendDataToCloud" in config["modeBarButtonsToRemove"]
    assert "editInChartStudio" in config["modeBarButtonsToRemove"]
    assert config["showSendToCloud"] is False and config["showEditInChartStudio"] is False
    assert config["toImageButtonOptions"] == {"format": "png", "filename": "embedding", "scale": 2}
    assert config["displaylogo"] is False


FONT_KEYS = {"font", "textfont", "tickfont", "insidetextfont", "outsidetextfont"}


def font_sizes(node, key: str = "") -> list[float]:
    """Every font size set anywhere in a figure's JSON (layout, traces, colour bars, annotations)."""
    sizes = []
    if isinstance(node, dict):
        if key in FONT_KEYS and isinstance(node.get("size"), (int, float)):
            sizes.append(node["size"])
        for child_key, child in node.items():
            sizes += font_sizes(child, child_key)
    elif isinstance(node, (list, tuple)):
        for child in node:
            sizes += font_sizes(child, key)
    return sizes


def every_figure():
    rng = np.random.default_rng(0)
    coords, labels, predicted = scatter_data()
    result = occlusion_result(1e-5)
    return {
        "scatter": scatter.embedding_scatter(coords, labels, predicted, CLASSES, color_by="correct", title="t"),
        "empty": scatter.empty_figure("waiting", 300),
        "image": images.image_figure(rng.random((1, 4, 4)), "image"),
        "top-k": images.top_k_figure([("a", 0.9), ("b", 1e-5)], "a"),
        "feature maps": images.feature_map_grid(rng.random((6, 3, 3)), title="conv"),
        "units": images.feature_map_grid(rng.random(10), title="fc"),
        "logits": images.feature_map_grid(rng.random(4), title="logits", class_names=CLASSES),
        "attribution": attribution_figure(rng.normal(size=(2, 3)), np.zeros((1, 2, 3)), "s", "overlay"),
        "occlusion": occlusion_figure(result["probability"], result["map"], result["clean"],
                                                  np.zeros((1, 2, 3)), "a"),
        "inversion": attribution.inversion_figure(rng.random((1, 3, 3)), rng.random((1, 3, 3)), "inv"),
    }


@pytest.mark.parametrize("name", list(every_figure()))
def test_chart_text_is_at_least_14px(name):
    figure = every_figure()[name]
    layout = figure.to_plotly_json()["layout"]
    assert layout["font"]["size"] >= 14
    if layout.get("title", {}).get("text"):
        assert layout["title"]["font"]["size"] >= 16
    sizes = font_sizes(figure.to_plotly_json())
    assert sizes and min(sizes) >= 14


def test_a_swapped_theme_reaches_the_builders():
    projector = theme.Theme(ACCENT="#000000", FONT_SIZE=20, CORRECT_COLOURS={"correct": "#111111", "wrong": "#222222"})
    try:
        theme.use(projector)
        figure = images.top_k_figure([("a", 0.9), ("b", 0.1)], "a")
        assert figure.data[0].marker.color[-1] == "#000000" and figure.layout.font.size == 20
        coords, labels, predicted = scatter_data()
        figure = scatter.embedding_scatter(coords, labels, predicted, CLASSES, color_by="correct")
        assert colours_of(figure)[1] == "#222222"  # sample 1 is a wrong prediction
    finally:
        theme.use(theme.LIGHT)
    assert theme.ACCENT == theme.LIGHT.ACCENT and theme.FONT_SIZE == 14
