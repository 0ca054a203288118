"""Tests of compute/channels.py (data-set channel statistics, dead channels, top images, the jobs) and
components/channels.py."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from compute import activations, channels
from compute.cache import get_cache
from compute.jobs.table import run
from compute.specs.source import Source
from components import channels as figures

COUNT = 20
KNOWN_IMAGE = 7


def known_images() -> torch.Tensor:
    """(20, 1, 8, 8) in [0, 0.5], except one bright pixel (1.0) in image 7."""
    generator = torch.Generator().manual_seed(0)
    images = torch.rand(COUNT, 1, 8, 8, generator=generator) * 0.5
    images[KNOWN_IMAGE, 0, 3, 4] = 1.0
    return images


def known_model() -> nn.Sequential:
    """conv (3 channels) + ReLU: channel 0 is always negative on images in [0, 1] (dead); channel 1 fires only
    where a pixel exceeds 0.75 (image 7 alone); channel 2 is a mean filter that fires on every image."""
    conv = nn.Conv2d(1, 3, 3, padding=1)
    with torch.no_grad():
        conv.weight.zero_()
        conv.bias.zero_()
        conv.weight[0] = -1.0
        conv.bias[0] = -0.1
        conv.weight[1, 0, 1, 1] = 1.0
        conv.bias[1] = -0.75
        conv.weight[2] = 1.0 / 9
    return nn.Sequential(conv, nn.ReLU())


def random_model() -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 6, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(6, 5, 3), nn.ReLU(),
                         nn.Flatten(), nn.Linear(5 * 2 * 2, 4), nn.ReLU())


def reference_stats(maps: torch.Tensor, k: int) -> dict:
    """All maps (N, C, ...) at once: the statistics computed directly in numpy, ties broken by the lower index."""
    values = maps.detach().double().reshape(maps.shape[0], maps.shape[1], -1).numpy()
    maxima = values.max(axis=2)
    top = np.stack([np.lexsort((np.arange(len(maxima)), -maxima[:, c]))[:k] for c in range(maxima.shape[1])], axis=1)
    return {
        "firing_rate": (maxima > 0).mean(axis=0),
        "mean_activation": values.mean(axis=(0, 2)),
        "zero_fraction": float((values == 0).mean()),
        "zero_share": (values == 0).mean(axis=(0, 2)),
        "inactive_share": (values <= 0).mean(axis=(0, 2)),
        "dead": ~(maxima > 0).any(axis=0),
        "top_images": top,
        "top_values": np.take_along_axis(maxima, top, axis=0),
    }


def assert_matches(found: channels.ChannelStats, expected: dict) -> None:
    np.testing.assert_allclose(found.firing_rate, expected["firing_rate"])
    np.testing.assert_allclose(found.mean_activation, expected["mean_activation"], rtol=1e-5, atol=1e-7)
    assert found.zero_fraction == pytest.approx(expected["zero_fraction"])
    np.testing.assert_allclose(found.zero_share, expected["zero_share"])
    np.testing.assert_allclose(found.inactive_share, expected["inactive_share"])
    np.testing.assert_array_equal(found.dead, expected["dead"])
    np.testing.assert_array_equal(found.top_images, expected["top_images"])
    np.testing.assert_allclose(found.top_values, expected["top_values"], rtol=1e-6)


# ------------------------------------------------------------------------------------------- statistics

def test_a_channel_kept_negative_by_its_weights_and_bias_is_reported_dead():
    found = channels.stats.uncached(known_model(), known_images(), "1", k=3, batch_size=6)
    np.testing.assert_array_equal(found.dead, [True, False, False])
    assert found.dead_channels == [0]
    assert found.firing_rate[0] == 0 and np.all(found.top_values[:, 0] == 0)


def test_a_channel_firing_on_one_known_image_has_rate_one_over_n_and_that_image_first():
    found = channels.stats.uncached(known_model(), known_images(), "1", k=3, batch_size=6)
    assert found.count == COUNT
    assert found.firing_rate[1] == pytest.approx(1 / COUNT)
    assert found.top_images[0, 1] == KNOWN_IMAGE
    assert found.top_values[0, 1] == pytest.approx(0.25)
    assert found.firing_rate[2] == 1.0


def test_a_channel_firing_on_every_image_at_one_position_is_sparse():
    """The slide's point: firing on every image says nothing of sparsity. Each image has one bright pixel (each at
    its own place), so channel 1 fires on all of them but is zero at all other positions; channel 2 (a mean filter
    of positive images) is zero nowhere; channel 0 is dead: zero everywhere."""
    images = torch.rand(COUNT, 1, 8, 8, generator=torch.Generator().manual_seed(3)) * 0.5 + 0.01
    for k in range(COUNT):
        images[k, 0, k % 8, (3 * k) % 8] = 1.0
    found = channels.stats.uncached(known_model(), images, "1", k=3, batch_size=7)
    positions = 8 * 8
    np.testing.assert_allclose(found.firing_rate, [0.0, 1.0, 1.0])
    np.testing.assert_allclose(found.zero_share, [1.0, 1 - 1 / positions, 0.0])
    np.testing.assert_allclose(found.inactive_share, found.zero_share)  # after a ReLU, <= 0 means == 0
    assert found.zero_fraction == pytest.approx(float(np.mean(found.zero_share)))
    before = channels.stats.uncached(known_model(), images, "0", k=3, batch_size=7)  # the conv, before its ReLU
    np.testing.assert_allclose(before.zero_share, [0.0, 0.0, 0.0])  # no value is exactly zero there,
    np.testing.assert_allclose(before.inactive_share, [1.0, 1 - 1 / positions, 0.0])  # but as many are <= 0


@pytest.mark.parametrize("batch_size", [3, 7])
def test_streaming_statistics_equal_statistics_over_all_maps_at_once(batch_size):
    model, images = random_model(), torch.rand(23, 1, 8, 8, generator=torch.Generator().manual_seed(1)) - 0.3
    for layer, k in (("0", 4), ("1", 5), ("4", 30), ("7", 2)):  # conv, ReLU (ties at 0), k > N, a linear ReLU
        with torch.no_grad():
            maps = activations.run_until(model, images, layer)
        expected = reference_stats(maps, min(k, len(images)))
        assert_matches(channels.stats.uncached(model, images, layer, k=k, batch_size=batch_size), expected)


def test_one_pass_over_several_layers_equals_one_pass_per_layer():
    model, images = random_model(), torch.rand(17, 1, 8, 8, generator=torch.Generator().manual_seed(2)) - 0.3
    layers = channels.channel_layers(model, (1, 8, 8))
    assert layers == ["1", "4", "7"]  # the ReLUs
    assert channels.channel_layers(nn.Sequential(nn.Conv2d(1, 2, 3), nn.Flatten()), (1, 8, 8)) == ["0"]  # no ReLU
    layers = ["0", *layers]  # a conv layer too
    together = channels.stats_many.uncached(model, images, layers, k=4, batch_size=5)
    for layer in layers:
        alone = channels.stats.uncached(model, images, layer, k=4, batch_size=8)
        with torch.no_grad():
            assert_matches(together[layer], reference_stats(activations.run_until(model, images, layer), 4))
        np.testing.assert_array_equal(together[layer].top_images, alone.top_images)


def test_dead_counts_give_one_row_per_relu_layer():
    rows = channels.dead_counts(known_model(), known_images(), k=2, batch_size=8)
    assert [(row["layer"], row["kind"], row["channels"], row["dead"], row["dead_channels"]) for row in rows] == [
        ("1", "ReLU", 3, 1, [0])]
    with torch.no_grad():
        output = known_model()(known_images())
    assert rows[0]["zero_fraction"] == pytest.approx(float((output == 0).float().mean()))
    assert rows[0]["mean_firing_rate"] == pytest.approx((0 + 1 / COUNT + 1) / 3)


def test_statistics_are_cached_and_report_progress_per_batch():
    model, images = known_model(), known_images()
    get_cache().delete(channels.stats.key(model, images, "1", k=2))  # a cache kept between runs starts empty here
    reports = []
    first = channels.stats(model, images, "1", k=2, batch_size=6, progress=lambda f, t: reports.append(f))
    assert reports == pytest.approx([6 / 20, 12 / 20, 18 / 20, 1.0])
    assert get_cache().get(channels.stats.key(model, images, "1", k=2)) is not None
    again = channels.stats(model, images, "1", k=2, batch_size=6, progress=lambda f, t: reports.append(f))
    assert len(reports) == 4  # served from the cache: no second pass
    np.testing.assert_array_equal(again.top_images, first.top_images)


def test_bad_requests_fail_clearly():
    with pytest.raises(activations.LayerError, match="unknown layer"):
        channels.stats.uncached(known_model(), known_images(), "9")
    with pytest.raises(ValueError, match="no images"):
        channels.stats.uncached(known_model(), known_images()[:0], "1")
    with pytest.raises(ValueError, match="k must be at least 1"):
        channels.stats.uncached(known_model(), known_images(), "1", k=0)


# -------------------------------------------------------------------------------------------------- jobs

def test_stats_job_on_the_built_in_model_matches_the_function(trained_model, digits):
    result = run(Source(), "channels.stats", {"layer": "relu2", "k": 9})
    expected = channels.stats(trained_model, digits, "relu2", k=9)
    assert result["count"] == len(digits) and result["channels"] == 32
    np.testing.assert_allclose(result["firing_rate"], expected.firing_rate)
    np.testing.assert_array_equal(result["top_images"], expected.top_images)
    assert result["dead_channels"] == expected.dead_channels
    assert result["top_images"].shape == (9, 32)


def test_dead_table_job_lists_every_relu_layer(trained_model, digits):
    result = run(Source(), "channels.dead_table", {"k": 9})
    assert [row["layer"] for row in result["rows"]] == ["relu1", "relu2", "relu3", "relu4"]
    assert result["count"] == len(digits)
    for row in result["rows"]:
        alone = channels.stats.uncached(trained_model, digits, row["layer"], k=9, batch_size=500)
        assert row["dead_channels"] == alone.dead_channels
    # The per-layer job now reads the table's cached pass (same numbers either way).
    relu3 = run(Source(), "channels.stats", {"layer": "relu3", "k": 9})
    assert relu3["dead_channels"] == result["rows"][2]["dead_channels"]


def test_top_images_job_returns_the_images_their_maps_and_values(trained_model, digits):
    result = run(Source(), "channels.top_images", {"layer": "relu2", "channel": 3, "k": 6})
    stats = channels.stats(trained_model, digits, "relu2", k=6)
    np.testing.assert_array_equal(result["indices"], stats.top_images[:, 3])
    assert result["images"].shape == (6, 1, 32, 32) and result["maps"].shape == (6, 32, 32)
    assert result["map_size"] == (16, 16)
    np.testing.assert_array_equal(result["images"], digits.images[result["indices"]].numpy())
    with torch.no_grad():
        maps = activations.run_until(trained_model, digits.images[result["indices"]], "relu2")[:, 3]
    np.testing.assert_allclose(result["values"], maps.flatten(1).amax(1).numpy(), rtol=1e-5)
    assert np.all(np.diff(result["values"]) <= 0)
    np.testing.assert_array_equal(result["labels"], digits.labels[result["indices"]].numpy())
    with pytest.raises(ValueError, match="channel 32 does not exist"):
        run(Source(), "channels.top_images", {"layer": "relu2", "channel": 32, "k": 6})


# ----------------------------------------------------------------------------------------------- figures

def test_channel_stats_figure_shows_zero_share_beside_firing_share_and_mean_and_marks_dead_channels():
    zero_share = np.array([0.6, 1.0, 0.2, 0.9, 1.0])
    rate = np.array([0.5, 0.0, 1.0, 0.25, 0.0])
    mean = np.array([0.3, 0.0, 0.8, 0.1, 0.0])
    dead = rate == 0
    figure = figures.channel_stats_figure(zero_share, zero_share, rate, mean, dead, "relu2", 40, selected=2)
    zeros, gone, fires, means = figure.data
    assert zeros.name == f"{figures.ZEROS_TRACE} zero" == "share of its activations that are zero" and gone.name == figures.DEAD_TRACE
    assert (fires.name, means.name) == (figures.FIRES_TRACE, figures.MEAN_TRACE)
    assert [row[0] for row in zeros.customdata] == [0, 2, 3] and list(zeros.y) == [0.6, 0.2, 0.9]
    assert [row[0] for row in gone.customdata] == [1, 4] and list(gone.y) == [1.0, 1.0]
    assert list(fires.x) == ["0", "1", "2", "3", "4"] and list(fires.y) == list(rate)
    assert list(means.y) == list(mean) and means.yaxis == "y2"  # the mean below, on its own axis
    assert gone.marker.color == figures.dead_colour() != zeros.marker.color
    assert list(zeros.marker.line.width) == [0, 3, 0]  # the selected channel is outlined
    assert [list(row) for row in fires.customdata][3] == [3, 0.9, 0.25, 0.1]  # channel, zeros, fires, mean
    assert figure.layout.title.subtitle.text == "2 of 5 channels dead (never fire)"
    assert list(figure.layout.xaxis.categoryarray) == ["0", "1", "2", "3", "4"]
    healthy = figures.channel_stats_figure(np.zeros(3), np.zeros(3), np.ones(3), np.ones(3), np.zeros(3, bool), "relu1", 40)
    assert healthy.layout.title.subtitle.text == figures.NO_DEAD and len(healthy.data[1].x) == 0


def test_channel_stats_figure_sorts_channels_by_each_statistic_highest_first():
    zero_share = np.array([0.6, 1.0, 0.2, 0.9, 1.0])
    rate = np.array([0.5, 0.0, 1.0, 0.25, 0.0])
    mean = np.array([0.3, 0.0, 0.8, 0.1, 0.0])
    expected = {"channel": [0, 1, 2, 3, 4], "zeros": [1, 4, 3, 0, 2], "fires": [2, 0, 3, 1, 4],
                "mean": [2, 0, 3, 1, 4]}  # ties keep the lower channel first
    assert figures.channel_orders(zero_share, rate, mean) == expected
    for order, channels_in_order in expected.items():
        figure = figures.channel_stats_figure(zero_share, zero_share, rate, mean, rate == 0, "relu2", 40, order=order)
        assert list(figure.layout.xaxis.categoryarray) == [str(c) for c in channels_in_order]
        assert figure.layout.meta["orders"] == expected  # every order travels with the figure, for the browser
    assert "sorted by share of zeros" in figures.channel_stats_figure(
        zero_share, zero_share, rate, mean, rate == 0, "relu2", 40, order="zeros").layout.xaxis2.title.text


def test_before_a_relu_the_chart_shows_the_share_at_or_below_zero():
    figure = figures.channel_stats_figure(np.zeros(2), np.array([0.7, 0.4]), np.ones(2), np.zeros(2),
                                          np.zeros(2, bool), "conv2", 40)
    assert figure.data[0].name == f"{figures.ZEROS_TRACE} ≤ 0" and list(figure.data[0].y) == [0.7, 0.4]


def test_dead_table_says_so_where_a_layer_has_no_dead_channels():
    rows = [{"layer": "relu1", "kind": "ReLU", "channels": 16, "dead": 0, "dead_channels": [], "zero_fraction": 0.5},
            {"layer": "relu2", "kind": "ReLU", "channels": 32, "dead": 2, "dead_channels": [4, 9], "zero_fraction": 0.7}]
    table = figures.dead_table(rows, 1797)
    body = table.children[2].children
    cells = [[cell.children for cell in row.children] for row in body]
    assert cells[0] == ["relu1", "ReLU", "16", "0", "50%", figures.NO_DEAD]
    assert cells[1] == ["relu2", "ReLU", "32", "2", "70%", "4, 9"]
    assert "1797" in table.children[0].children


def test_top_images_figure_draws_each_image_with_its_map_and_index():
    rng = np.random.default_rng(0)
    images, maps = rng.random((4, 1, 8, 8)), rng.random((4, 8, 8)) - 0.5
    indices, values = np.array([12, 3, 40, 7]), np.array([2.0, 1.5, 1.0, 0.5])
    figure = figures.top_images_figure(images, maps, indices, values, "relu2", 3, np.array([1, 2, 1, 0]), ["a", "b", "c"])
    assert len(figure.data) == 8  # image + overlay per image
    assert [a.text for a in figure.layout.annotations][:4] == ["#12 · 2 · b", "#3 · 1.5 · c", "#40 · 1 · b", "#7 · 0.5 · a"]
    for k in range(4):
        image, overlay = figure.data[2 * k], figure.data[2 * k + 1]
        assert np.all(np.asarray(image.customdata) == indices[k])
        shown = np.asarray(overlay.z, dtype=float)
        np.testing.assert_allclose(np.nan_to_num(shown), np.where(maps[k] > 0, maps[k], 0))  # only where it fires
    assert len(figures.top_images_figure(images, None, indices, values, "fc", 0).data) == 4
