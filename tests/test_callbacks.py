"""Callbacks' work called as plain functions: what each view returns for a click, and errors as messages."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from compute import attribution, channels
from dashboard.callbacks import attribution as attribution_view
from dashboard.callbacks import explore, features
from dashboard.callbacks.common import error_message, progress_reporter
from dashboard.config import AppConfig


@pytest.fixture(scope="module")
def config(trained_model, cache_root):
    return AppConfig(cache_dir=str(cache_root))


def test_detail_panels_show_the_clicked_sample(config, digits):
    title, image, top5, maps, sparsity = features.detail_panels(config, 42, "relu2", "shared")
    text = "".join(part if isinstance(part, str) else str(part.children) for part in title)
    assert "#42" in text and f"true class {digits.classes[int(digits.labels[42])]}" in text
    assert isinstance(maps, go.Figure) and "layer relu2" in maps.layout.title.text
    assert len(top5.data[0].x) == 5 and abs(sum(top5.data[0].x)) <= 1.0 + 1e-6
    np.testing.assert_allclose(np.asarray(image.data[0].z), digits.images[42, 0].numpy(), rtol=1e-6)


def test_sparsity_counts_zeros_and_silent_channels():
    output = torch.tensor([[[0.0, 1.0], [0.0, 0.0]], [[0.0, 0.0], [0.0, 0.0]], [[-1.0, -2.0], [3.0, 0.0]]])
    stats = channels.sparsity(output)
    assert stats.zero_fraction == pytest.approx(8 / 12)
    assert stats.nonpositive_fraction == pytest.approx(10 / 12)
    assert stats.silent_channels == [1] and stats.channels == 3


def test_scatter_figure_has_every_sample_once_and_reports_accuracy(config, digits):
    reported = []
    figure, status = explore.scatter_figure(config, "fc1", "pca", "auto", "true", {"index": 5},
                                            progress=lambda f, t: reported.append(f))
    indices = sorted(int(row[0]) for trace in figure.data if trace.name != "selected" for row in trace.customdata)
    assert indices == list(range(len(digits)))
    ring = [t for t in figure.data if t.name == "selected"][0]
    assert [int(row[0]) for row in ring.customdata] == [5]
    assert status.startswith("test accuracy") and reported and reported == sorted(reported)


def test_attribution_panels_follow_the_table_and_the_target(config, digits):
    index = 17
    true_class = int(digits.labels[index])
    panels = attribution_view.attribution_panels(config, index, ["smoothgrad", "saliency"], [], [], None, False,
                                                 "heatmap", 0.6, False)
    assert [p.to_plotly_json()["props"]["data-method"] for p in panels] == ["saliency", "smoothgrad"]
    title = panels[0].children[0].figure.layout.title.text
    assert f"class {digits.classes[true_class]} (true)" in title
    other = (true_class + 1) % 10
    chosen = attribution_view.attribution_panels(config, index, ["saliency"], [], [], other, False, "heatmap", 0.6, False)
    assert f"class {digits.classes[other]} (chosen)" in chosen[0].children[0].figure.layout.title.text


def test_sanity_check_adds_the_untrained_twin_with_a_rank_correlation(config):
    panels = attribution_view.attribution_panels(config, 3, ["saliency"], [], [], None, False, "overlay", 0.5, True)
    graphs = panels[0].children
    assert len(graphs) == 2
    assert "rank correlation" in graphs[1].figure.layout.title.text


def test_method_parameters_come_from_the_controls_and_are_coerced(config):
    ids = [{"method": "smoothgrad", "name": "samples", "type": "attribution-param"},
           {"method": "smoothgrad", "name": "sigma", "type": "attribution-param"},
           {"method": "saliency", "name": "absolute", "type": "attribution-param"}]
    params = attribution_view.method_params("smoothgrad", [9999, "0.2", []], ids, config)
    assert params == {"samples": 256, "sigma": 0.2}
    assert attribution_view.method_params("saliency", [1, 1, []], ids, config) == {"absolute": False}
    occlusion = attribution_view.method_params("occlusion", [], [], config)
    assert occlusion["fill"] == "data mean" and len(occlusion["data_mean"]) == 1


def test_attribution_results_are_cached(config, trained_model, digits):
    image = digits.images[8]
    key = attribution.attribution_map.key(trained_model, image, 8, "saliency", {"absolute": True})
    first = attribution.attribution_map(trained_model, image, 8, "saliency", {"absolute": True})
    from compute.cache import get_cache

    assert key in get_cache()
    assert torch.equal(first, attribution.attribution_map(trained_model, image, 8, "saliency", {"absolute": True}))


def test_inversion_uses_the_most_active_channel_by_default(config, trained_model, digits):
    figure, channel = attribution_view.inversion_figure(config, 4, "deconvnet", "conv2", None)
    assert channel == attribution.most_active_channel(trained_model, digits.images[4], "conv2")
    assert f"most active channel {channel}" in figure.layout.title.text


def test_user_errors_become_messages_not_tracebacks(config):
    with pytest.raises(ValueError) as caught:
        attribution_view.inversion_figure(config, 4, "deconvnet", "conv2", 999)
    message = error_message(caught.value)
    assert "out of range" in message.children and message.className.endswith("message-error")
    with pytest.raises(IndexError) as caught:
        features.detail_panels(config, 10**6, "relu2", "shared")
    assert "out of range" in error_message(caught.value).children


def test_progress_reporter_maps_fractions_into_its_part_of_the_bar():
    seen = []
    report = progress_reporter(seen.append, start=0.5, end=1.0)
    report(0.0, "a")
    report(0.5, "b")
    report(2.0, "c")
    assert seen == [("50", "a"), ("75", "b"), ("100", "c")]
