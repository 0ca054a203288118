"""The views' work called as plain functions: request (controls -> job), the job itself, render (arrays -> figures).

The jobs run in this process here (``compute.jobs.table.run``); in the app they run in the compute process.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch
from dash import no_update

from components import theme
from compute import attribution, gradients
from compute.jobs.table import run
from compute.specs.source import Source
from dashboard.views import attribution as attribution_view
from dashboard.views import details, explore, inversion
from dashboard.views.context import error_message
from dashboard.views.panel import Message, Request


def job(request: Request) -> dict:
    return run(Source(), request.job, request.params)


def test_the_description_lists_call_site_layers_classes_and_shapes(context):
    meta = context.meta
    assert meta.layers[0] == "conv1" and meta.layers[-1] == "logits" and meta.default_layer == "relu2"
    assert meta.layer_shapes["relu2"] == [32, 16, 16] and meta.layer_shapes["logits"] == [10]
    assert meta.classes == [str(d) for d in range(10)] and meta.count == 1797
    assert meta.conv_layers == ["conv1", "conv2", "conv3"]


def test_detail_panels_show_the_clicked_sample(context, digits):
    request = details.details_request({"index": 42}, "relu2", "shared")
    title, image, top5, maps, sparsity = details.details_render(context)(job(request), request.context)
    text = "".join(part if isinstance(part, str) else str(part.children) for part in title)
    assert "#42" in text and f"true class {digits.classes[int(digits.labels[42])]}" in text
    np.testing.assert_allclose(np.asarray(image.data[0].z), digits.images[42, 0].numpy(), rtol=1e-6)
    bars = [trace for trace in top5.data if trace.type == "bar"][0]
    assert len(bars.x) == 5 and sum(bars.x) <= 1.0 + 1e-6
    values = np.asarray(maps.data[0].z, dtype=float)
    assert np.nanmax(values) > 0 and "sparsity" in str(sparsity)


def test_the_logits_layer_is_a_bar_chart_of_class_names_without_sparsity(context, trained_model, digits):
    request = details.details_request({"index": 7}, "logits", "shared")
    *_, maps, sparsity = details.details_render(context)(job(request), request.context)
    bars = maps.data[0]
    assert bars.type == "bar" and sorted(str(name).strip() for name in bars.y) == sorted(context.meta.classes)
    with torch.no_grad():
        logits = trained_model(digits.images[7][None])[0].numpy()
    shown = {str(name).strip(): value for name, value in zip(bars.y, bars.x)}
    np.testing.assert_allclose([shown[c] for c in context.meta.classes], logits, rtol=1e-4, atol=1e-5)
    assert "silent" not in str(sparsity)


def test_no_selection_asks_for_no_job():
    assert details.details_request(None, "relu2", "shared") is None
    assert inversion.inversion_request(None, "deconvnet", "", None, "relu2") is None


def test_the_scatter_has_every_sample_once_and_counts_channel_means(context, digits):
    request = explore.scatter_request("relu2", "pca", "pooled")
    result = job(request)
    placed, status = explore.scatter_render(context)(result, request.context)
    assert len(placed["x"]) == len(placed["y"]) == len(digits) and "32 values per image" in placed["title"]
    figure = explore.scatter_figure(result, request.context, context.meta.classes, "true", 5, final=True)
    indices = sorted(int(row[0]) for trace in figure.data if trace.name != "selected" for row in trace.customdata or [])
    assert indices == list(range(len(digits)))
    assert "32 values per image" in figure.layout.title.text
    assert status.startswith("test accuracy")


def attribution_request(context, selection, methods, values=(), ids=(), target=None, predicted=False, sanity=0):
    return attribution_view.attribution_request(context)(selection, list(methods), list(values), target,
                                                         ["predicted"] if predicted else [], "heatmap", 0.6, sanity,
                                                         list(ids))


def test_attribution_maps_are_the_methods_own_values_for_the_target(context, trained_model, digits):
    index = 17
    true_class = int(digits.labels[index])
    request = attribution_request(context, {"index": index}, ["smoothgrad", "saliency"])
    result = job(request)
    assert result["target"] == true_class and result["target_how"] == "true"
    expected = gradients.saliency(trained_model, digits.images[index], true_class).numpy()
    np.testing.assert_allclose(result["maps"]["saliency"]["map"], expected, rtol=1e-5, atol=1e-7)
    panels, notes = attribution_view.attribution_render(context)(result, request.context)
    assert [p.to_plotly_json()["props"]["data-method"] for p in panels] == ["saliency", "smoothgrad"]
    drawn = np.asarray(panels[0].children[0].figure.data[-1].z, dtype=np.float32)
    np.testing.assert_allclose(drawn, expected, rtol=1e-5, atol=1e-7)
    other = (true_class + 1) % 10
    chosen = job(attribution_request(context, {"index": index}, ["saliency"], target=other))
    assert chosen["target"] == other
    np.testing.assert_allclose(chosen["maps"]["saliency"]["map"],
                               gradients.saliency(trained_model, digits.images[index], other).numpy(), rtol=1e-5,
                               atol=1e-7)


def test_occlusion_shows_the_signed_drop_from_the_clean_image(context, trained_model, digits):
    index = 21
    request = attribution_request(context, {"index": index}, ["occlusion"])
    result = job(request)
    maps = result["maps"]["occlusion"]
    with torch.no_grad():
        clean = float(trained_model(digits.images[index][None]).softmax(1)[0, result["target"]])
    np.testing.assert_allclose(maps["map"], clean - maps["probability"], atol=1e-6)
    panels, _ = attribution_view.attribution_render(context)(result, request.context)
    figure = panels[0].children[0].figure
    drop = [trace for trace in figure.data if trace.type == "heatmap"][-1]
    np.testing.assert_allclose(np.asarray(drop.z, dtype=np.float32), maps["map"], atol=1e-6)
    assert drop.zmin == -drop.zmax  # diverging, centred on zero


def test_the_sanity_check_adds_the_untrained_maps_and_their_rank_correlation(context, digits):
    from compute import models

    index = 3
    result = job(attribution_request(context, {"index": index}, ["saliency"], sanity=1))
    untrained = models.load("digits-cnn", epoch=0)
    expected = gradients.saliency(untrained, digits.images[index], int(digits.labels[index])).numpy()
    np.testing.assert_allclose(result["untrained"]["saliency"]["map"], expected, rtol=1e-5, atol=1e-7)
    rho = attribution.rank_correlation(torch.as_tensor(result["maps"]["saliency"]["map"]), torch.as_tensor(expected))
    assert result["correlation"]["saliency"] == pytest.approx(rho)


def test_the_sanity_check_of_every_method_prints_every_correlation_in_full(context, digits):
    """Five methods on both models from the batched passes: each untrained map is the method's own map on the
    untrained model, each title starts with its correlation, and the table lists all of them."""
    from compute import models

    index, names = 5, list(attribution.METHODS)
    request = attribution_request(context, {"index": index}, names, sanity=1)
    result = job(request)
    untrained, label = models.load("digits-cnn", epoch=0), int(digits.labels[index])
    for name in names:
        params = request.params["methods"][name]
        params = {**params, **({"data_mean": tuple(digits.channel_mean)} if name == "occlusion" else {})}
        expected = attribution.METHODS[name].explain(untrained, digits.images[index], label, **params)
        np.testing.assert_allclose(result["untrained"][name]["map"], expected["map"], rtol=1e-4, atol=1e-6)
        rho = attribution.rank_correlation(torch.as_tensor(result["maps"][name]["map"]), torch.as_tensor(expected["map"]))
        assert result["correlation"][name] == pytest.approx(rho, abs=1e-4)
    panels, notes = attribution_view.attribution_render(context)(result, request.context)
    for panel, name in zip(panels, names):
        title = panel.children[1].figure.layout.title.text
        assert title.startswith(f"ρ = {result['correlation'][name]:+.2f} · ") and "untrained" in title
    table = notes[-1]
    rows = [[cell.children for cell in row.children] for row in table.children[2].children]
    assert [row[0] for row in rows] == [attribution.METHODS[name].label for name in names]
    assert [row[1] for row in rows] == [f"ρ = {result['correlation'][name]:+.2f}" for name in names]


def test_method_parameters_are_coerced_and_a_clamped_value_says_so(context):
    ids = [{"method": "smoothgrad", "name": "samples", "type": "attribution-param"},
           {"method": "smoothgrad", "name": "sigma", "type": "attribution-param"},
           {"method": "saliency", "name": "absolute", "type": "attribution-param"}]
    request = attribution_request(context, {"index": 1}, ["smoothgrad", "saliency"], [9999, "0.2", []], ids)
    assert request.params["methods"]["smoothgrad"] == {"samples": 256, "sigma": 0.2}
    assert request.params["methods"]["saliency"] == {"absolute": False}
    assert any("9999" in note and "256" in note for note in request.context["notes"])
    assert attribution_request(context, {"index": 1}, []) == Message("Pick at least one method.")


def test_a_clamped_box_shows_its_clamped_value_in_the_control():
    ids = [{"method": "occlusion", "name": "box", "type": "attribution-param"},
           {"method": "occlusion", "name": "stride", "type": "attribution-param"},
           {"method": "occlusion", "name": "fill", "type": "attribution-param"},
           {"method": "smoothgrad", "name": "sigma", "type": "attribution-param"}]
    shown = attribution_view.methods.clamped_values([100, 2, "zero", 0.9], ids)
    assert shown == [64, no_update, no_update, 0.5]  # box 100 -> 64 and sigma 0.9 -> 0.5 written back; the rest kept
    assert attribution_view.methods.clamped_values([2.6, None, "zero", "x"], ids) == [3, no_update, no_update,
                                                                                      no_update]


def test_occlusion_with_a_box_that_covers_the_image_reads_the_actual_uniform_drop(context, trained_model, digits):
    """Box 100 is clamped to 64, which covers the 32x32 digit wherever it is centred: the note says so, and the
    figure says what the drop is everywhere (not "no evidence for this class")."""
    ids = [{"method": "occlusion", "name": "box", "type": "attribution-param"}]
    request = attribution_request(context, {"index": 11}, ["occlusion"], [100], ids)
    assert request.params["methods"]["occlusion"]["box"] == 64
    assert any("box of 64 covers the whole 32×32 image" in note for note in request.context["notes"])
    result = job(request)
    maps = result["maps"]["occlusion"]
    drop = float(np.asarray(maps["map"]).flat[0])
    np.testing.assert_allclose(maps["map"], drop, atol=1e-6)  # the same drop at every position
    panels, notes = attribution_view.attribution_render(context)(result, request.context)
    subtitle = panels[0].children[0].figure.layout.title.subtitle.text
    assert "no evidence" not in subtitle
    probability = float(np.asarray(maps["probability"]).flat[0])
    assert f"the same at every position: p({result['target']}) with the box here {probability:.1%}" in subtitle
    assert f"drop in probability (clean - occluded) {'+' if drop > 0 else '-'}{theme.plain_number(abs(drop))}" in subtitle
    assert any("covers the whole" in str(note.children) for note in notes)


def test_occlusion_starts_from_its_entrys_suggestion_for_the_image_size(context):
    request = attribution_request(context, {"index": 1}, ["occlusion"])
    assert request.params["methods"]["occlusion"]["box"] == 8  # a quarter of the 32-pixel side


def test_inversion_uses_the_most_active_channel_by_default(context, trained_model, digits):
    request = inversion.inversion_request({"index": 4}, "deconvnet", "conv2", None, "relu2")
    result = job(request)
    assert result["channel"] == attribution.most_active_channel(trained_model, digits.images[4], "conv2")
    expected = attribution.invert(trained_model, digits.images[4], "conv2", result["channel"]).numpy()
    np.testing.assert_allclose(result["reconstruction"], expected, rtol=1e-5, atol=1e-7)
    figure, placeholder = inversion.inversion_render(result, request.context)
    assert placeholder == f"most active: {result['channel']}"


def test_a_negative_channel_is_refused_with_a_message():
    wanted = inversion.inversion_request({"index": 4}, "deconvnet", "conv2", -3, "relu2")
    assert isinstance(wanted, Message) and "negative" in wanted.text and wanted.kind == "error"


def test_user_errors_become_messages_not_tracebacks():
    with pytest.raises(ValueError) as caught:
        run(Source(), "inversion.reconstruct", {"index": 4, "layer": "conv2", "channel": 999})
    message = error_message(caught.value)
    assert "out of range" in message.children and message.className.endswith("message-error")
    with pytest.raises(IndexError) as caught:
        run(Source(), "details.panels", {"index": 10**6, "layer": "relu2"})
    assert "out of range" in error_message(caught.value).children


def test_a_selection_with_an_epoch_opens_the_panels_with_that_epochs_model(context, digits):
    from compute import models

    selection = {"index": 9, "epoch": 0}
    request = details.details_request(selection, "relu2", "shared")
    assert request.params["epoch"] == 0 and "model of epoch 0" in request.context["note"]
    result = job(request)
    untrained = models.load("digits-cnn", epoch=0)
    with torch.no_grad():
        expected = torch.softmax(untrained(digits.images[9][None])[0], 0).numpy()
    np.testing.assert_allclose(result["probabilities"], expected, rtol=1e-5, atol=1e-6)
    title, *_ = details.details_render(context)(result, request.context)
    assert "model of epoch 0" in str(title[0].children)
    maps = job(attribution_request(context, selection, ["saliency"]))
    label = int(digits.labels[9])
    np.testing.assert_allclose(maps["maps"]["saliency"]["map"],
                               gradients.saliency(untrained, digits.images[9], label).numpy(), rtol=1e-5, atol=1e-7)
