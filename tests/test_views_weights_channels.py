"""The weights and channels views called as plain functions: request (controls -> job), the job run in this process,
render (arrays -> figures, stores, text), and the clicks that name a channel or a sample."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from compute import activations
from compute.jobs.table import run
from compute.specs.source import Source
from dashboard.views import channels, weights
from dashboard.views.panel import Message, Request


def job(request: Request) -> dict:
    return run(Source(), request.job, request.params)


def filters_in(figure) -> set[int]:
    """The output channels a kernel-grid figure draws: its tiles' customdata, gaps (NaN) left out."""
    found = set()
    for trace in figure.data:
        values = np.asarray(trace.customdata, dtype=float)
        found |= {int(v) for v in values[np.isfinite(values)].ravel()}
    return found


# ---- weights ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def conv1(context):
    request = weights.weights_request(context)("conv1", "auto", 0)
    result = job(request)
    return request, result, weights.weights_render(result, request.context)


def test_every_epoch_grid_has_one_tile_per_filter(conv1):
    request, result, (before_after, frames, last, marks, value, summary) = conv1
    assert request.job == "weights.evolution" and request.params == {"layer": "conv1", "mode": "auto", "input_channel": 0}
    epochs = len(result["labels"])
    assert epochs >= 2 and len(frames["grids"]) == epochs
    for grid in frames["grids"]:
        assert filters_in(grid) == set(range(16))
    # The slider spans every saved epoch and starts at the trained one.
    assert last == value == epochs - 1 and len(marks) == epochs
    assert marks[str(epochs - 1)] == result["labels"][-1].removeprefix("epoch ")


def test_the_slider_frames_show_each_epochs_own_weights(conv1):
    _, result, (_, frames, *_rest) = conv1
    first, final = frames["grids"][0], frames["grids"][-1]
    assert not np.allclose(np.asarray(first.data[0].z, dtype=float), np.asarray(final.data[0].z, dtype=float),
                           equal_nan=True)
    assert result["labels"][0] in first.layout.title.text and result["labels"][-1] in final.layout.title.text
    assert f"smoothness {result['mean_smoothness'][-1]:.2f}" in final.layout.title.text


def test_before_after_pairs_the_first_and_last_epoch(conv1):
    _, result, (before_after, frames, *_rest) = conv1
    before, after = before_after.data
    np.testing.assert_allclose(np.asarray(before.z, dtype=float), np.asarray(frames["grids"][0].data[0].z, dtype=float))
    np.testing.assert_allclose(np.asarray(after.z, dtype=float), np.asarray(frames["grids"][-1].data[0].z, dtype=float))


def test_the_evolution_chart_marks_the_last_epoch_and_the_text_is_honest_about_diversity(conv1):
    _, result, (_, frames, *_rest, summary) = conv1
    evolution = frames["evolution"]
    marker = [shape for shape in evolution.layout.shapes if shape.yref == "y domain"]
    assert len(marker) == 1 and marker[0].x0 == len(result["labels"]) - 1
    smooth = [trace for trace in evolution.data if trace.name.startswith("smoothness")][0]
    np.testing.assert_allclose(smooth.y, result["mean_smoothness"])
    text = "".join(part if isinstance(part, str) else str(part.children) for part in summary)
    assert f"to {result['mean_smoothness'][-1]:.2f}" in text
    assert "rose" in text  # training smooths conv1's kernels
    assert "stays near 1" in text and "nearly orthogonal" in text  # and diversity does not move much


def test_one_input_channel_of_a_deeper_layer_and_the_norm_both_draw_every_filter(context):
    request = weights.weights_request(context)
    for mode, channel in (("channel", 5), ("norm", 3)):
        wanted = request("conv2", mode, channel)
        assert wanted.params["input_channel"] == (5 if mode == "channel" else 0)
        result = job(wanted)
        assert result["mode"] == mode and result["grids"].shape[1] == 32
        _, frames, *_ = weights.weights_render(result, wanted.context)
        assert filters_in(frames["grids"][-1]) == set(range(32))


def test_a_chosen_epoch_places_the_slider_and_its_grid_and_a_stale_one_falls_back_to_the_last(context):
    request = weights.weights_request(context)
    wanted = request("conv1", "auto", 0, 3)
    assert wanted.context["epoch"] == 3 and "epoch" not in wanted.params  # one cached job for every epoch
    result = job(wanted)
    _, frames, last, _, position, _ = weights.weights_render(result, wanted.context)
    assert position == 3 == frames["position"] and last == len(result["labels"]) - 1
    marker = [s for s in frames["evolution"].layout.shapes if s.yref == "y domain"]
    assert [shape.x0 for shape in marker] == [3]
    _, frames, _, _, position, _ = weights.weights_render(result, request("conv1", "auto", 0, 99).context)
    assert position == last == frames["position"]


def test_bad_weight_controls_give_messages_not_jobs(context):
    request = weights.weights_request(context)
    assert isinstance(request("fc1", "auto", 0), Message)
    assert request("conv2", "channel", -1).kind == "error"
    assert isinstance(request("conv2", "channel", None), Message)


# ---- channels ---------------------------------------------------------------------------------------------------

def test_the_chart_shows_each_channels_share_of_zeros_beside_its_firing_share_and_mean(context, digits, trained_model):
    request = channels.stats_request("", "relu2", {"layer": "relu2", "channel": 3}, "zeros")
    assert request.params == {"layer": "relu2", "k": channels.TOP_K}
    assert request.context["selected"] == 3 and request.context["order"] == "zeros"
    result = job(request)
    figure, summary, shown_layer = channels.stats_render(result, request.context)
    assert shown_layer == "relu2"
    bars, dead, fires, means = figure.data
    shown = np.full(result["channels"], np.nan)
    shown[np.asarray(bars.x, dtype=int)] = bars.y
    shown[np.asarray(dead.x, dtype=int)] = dead.y
    # Against all maps at once: the share of each channel's activations (every image, every position) that are zero.
    with torch.no_grad():
        maps = activations.run_until(trained_model, digits.images, "relu2")
    naive_zeros = (maps == 0).double().mean((0, 2, 3)).numpy()
    np.testing.assert_allclose(shown, naive_zeros, atol=1e-12)
    np.testing.assert_allclose(np.asarray(fires.y, dtype=float), (maps.flatten(2).amax(2) > 0).double().mean(0).numpy())
    np.testing.assert_allclose(np.asarray(means.y, dtype=float), maps.double().mean((0, 2, 3)).numpy(), rtol=1e-6)
    assert sorted(int(x) for x in dead.x) == result["dead_channels"]
    assert [row[0] for row in bars.customdata] == [int(x) for x in bars.x]  # a click carries the channel
    by_zeros = [int(c) for c in figure.layout.xaxis.categoryarray]
    assert np.all(np.diff(naive_zeros[by_zeros]) <= 0)  # sorted by the share of zeros, highest first
    # The point of the chart: the share of images a channel fires on hides its zeros (a live channel is zero at
    # more positions than the images it misses account for).
    live = ~np.asarray(result["dead"])
    assert np.mean(naive_zeros[live] > 1 - result["firing_rate"][live]) > 0.9
    text = "".join(part if isinstance(part, str) else str(part.children) for part in summary)
    assert channels._share(result["zero_fraction"]) in text
    assert f"from {channels._share(naive_zeros[live].min())} to {channels._share(naive_zeros[live].max())}" in text
    assert "sparse in positions, not in images" in text
    assert (f"{len(result['dead_channels'])} of 32 channels dead" in text) if result["dead_channels"] \
        else "no dead channels" in text.lower()


def test_before_a_relu_the_summary_speaks_of_values_at_or_below_zero(context):
    request = channels.stats_request("conv2", "relu2", None)
    _figure, summary, _ = channels.stats_render(job(request), request.context)
    text = "".join(part if isinstance(part, str) else str(part.children) for part in summary)
    assert "are ≤ 0 (what a ReLU would zero)" in text


def test_the_own_layer_wins_over_the_toolbar_and_no_layer_asks_nothing():
    assert channels.stats_request("relu3", "relu2", None).params["layer"] == "relu3"
    assert channels.stats_request("", "relu2", {"layer": "relu3", "channel": 1}).context["selected"] is None
    assert channels.stats_request("", None, None) is None


def test_the_gallery_shows_the_jobs_top_images_and_marks_them_for_the_scatter(context):
    stats = job(channels.stats_request("", "relu2", None))
    channel = int(np.flatnonzero(~stats["dead"])[0])
    request = channels.gallery_request({"layer": "relu2", "channel": channel})
    result = job(request)
    figure, note, mark = channels.gallery_render(result, request.context)
    expected = [int(i) for i in stats["top_images"][:, channel]]
    assert [int(i) for i in result["indices"]] == expected and len(expected) == channels.TOP_K
    traced = [int(np.asarray(trace.customdata).flat[0]) for trace in figure.data]  # each image, then its overlay
    shown = [index for k, index in enumerate(traced) if k == 0 or traced[k - 1] != index]
    assert shown == expected  # one image per top index, in order
    assert mark == {"label": f"top images of relu2 channel {channel}", "indices": expected}
    assert f"{result['firing_rate']:.0%}" in note


KILLED = 5  # the relu2 channel the checkpoint below kills


@pytest.fixture(scope="module")
def killed_source(trained_model, tmp_path_factory) -> Source:
    """The trained digits CNN with conv2's channel 5 switched off (zero weights, bias -1): relu2's channel 5 is 0 on
    every image, so it is dead whatever the training left, and the dead-channel paths always run."""
    state = {name: value.clone() for name, value in trained_model.state_dict().items()}
    state["conv2.weight"][KILLED] = 0.0
    state["conv2.bias"][KILLED] = -1.0
    path = tmp_path_factory.mktemp("killed") / "relu2-channel-5-dead.pt"
    torch.save(state, path)
    return Source(checkpoint=str(path))


def test_a_dead_channel_is_flagged_in_the_chart_and_the_summary(killed_source):
    request = channels.stats_request("", "relu2", None)
    result = run(killed_source, request.job, request.params)
    assert KILLED in result["dead_channels"] and result["firing_rate"][KILLED] == 0.0
    figure, summary, _ = channels.stats_render(result, request.context)
    dead = next(trace for trace in figure.data if trace.name == "dead (never fires)")
    assert KILLED in [int(x) for x in dead.x]
    live = next(trace for trace in figure.data if trace.name == "share of its activations that are zero")
    assert KILLED not in [int(x) for x in live.x]
    text = "".join(part if isinstance(part, str) else str(part.children) for part in summary)
    assert f"{len(result['dead_channels'])} of 32 channels dead" in text and str(KILLED) in text


def test_a_dead_channel_says_so_and_rings_nothing(killed_source):
    request = channels.gallery_request({"layer": "relu2", "channel": KILLED})
    result = run(killed_source, request.job, request.params)
    assert result["dead"] and result["firing_rate"] == 0.0
    # Every image ties at zero: the "top" images are the first ones, in index order.
    assert [int(i) for i in result["indices"]] == list(range(channels.TOP_K))
    _, note, mark = channels.gallery_render(result, request.context)
    assert mark is None and "dead" in str(note.children)


def test_the_dead_table_lists_every_relu_layer_and_says_where_none_are_dead(context):
    result = job(channels.dead_request())
    (table,) = channels.dead_render(result, {})
    rows = table.children[2].children
    assert [row.children[0].children for row in rows] == ["relu1", "relu2", "relu3", "relu4"]
    for row, counted in zip(rows, result["rows"]):
        assert row.children[3].children == str(counted["dead"])
    (clean,) = channels.dead_render({"rows": [{"layer": "relu9", "kind": "ReLU", "channels": 4, "dead": 0,
                                               "dead_channels": [], "zero_fraction": 0.5}], "count": 10}, {})
    assert clean.children[2].children[0].children[5].children == "no dead channels in this layer"


@pytest.mark.parametrize("click, layer, expected", [
    ({"points": [{"customdata": [7, 0.31]}]}, "relu2", {"layer": "relu2", "channel": 7}),  # a bar
    ({"points": [{"customdata": [12.0, 0.8]}]}, "relu3", {"layer": "relu3", "channel": 12}),  # a feature map
    ({"points": [{"customdata": {"0": 5, "1": 1.26}}]}, "relu2", {"layer": "relu2", "channel": 5}),  # typed array
    ({"points": [{"customdata": 5}]}, "fc1", {"layer": "fc1", "channel": 5}),  # a grid of 1-D units
    ({"points": [{"customdata": [None, None]}]}, "relu2", None),  # a gap between maps
    ({"points": [{"customdata": [math.nan, 0]}]}, "relu2", None),
    (None, "relu2", None),
    ({"points": [{"customdata": [3, 0.1]}]}, None, None),
])
def test_a_click_names_a_channel_of_its_charts_layer(click, layer, expected):
    assert channels.channel_from_click(click, layer) == expected


def test_a_click_on_a_gallery_image_selects_that_sample():
    assert channels.image_from_click({"points": [{"customdata": 1256}]}) == {"index": 1256}
    assert channels.image_from_click({"points": [{"customdata": [42]}]}) == {"index": 42}
    assert channels.image_from_click({"points": [{}]}) is None
    assert channels.gallery_request(None) is None
