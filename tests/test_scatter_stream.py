"""The layer switch streams: the scatter job's PCA layout first, then t-SNE's layouts as it converges; the page's
payloads built from them; a colour change as a small Patch equal to a full redraw; background work yields to users."""
from __future__ import annotations

import copy
import json
import time
import uuid

import numpy as np
import plotly.io
import pytest

from compute import embedding
from compute.cache import get_cache
from compute.jobs.table import run
from compute.specs.source import Source
from dashboard.views import explore

LAYER = "pool2"  # (32, 8, 8): flattened, pre-reduced to 50 dims


@pytest.fixture(scope="module")
def streamed(trained_model, digits):
    embedding.forget_layer(trained_model, digits, LAYER, methods=("tsne",))  # the job computes (and streams) it
    reports = []
    result = run(Source(), "explore.scatter", {"layer": LAYER, "method": "tsne", "features": "auto"},
                 progress=lambda fraction, text, partial=None: reports.append((fraction, text, partial)))
    return result, reports


def test_the_pca_layout_comes_first_then_tsne_layouts_grown_from_it_then_the_final_one(streamed, trained_model,
                                                                                           digits):
    result, reports = streamed
    partials = [partial for _, _, partial in reports if partial is not None]
    first = partials[0]
    assert first["method"] == "pca"
    pca = embedding.layer_embedding(trained_model, digits, LAYER, "pca", "flat")
    np.testing.assert_array_equal(first["coords"], pca)
    np.testing.assert_array_equal(first["labels"], digits.labels.numpy())
    tsne_layouts = [partial["coords"] for partial in partials[1:]]
    assert all(partial["method"] == "tsne" for partial in partials[1:])
    assert len(tsne_layouts) == 750 // embedding.TSNE_REPORT_EVERY
    # t-SNE starts where PCA left the points: the first layout is the PCA picture, the last is the result.
    # (measured: 0.88 after 25 iterations; a random start would give about 0)
    assert min(float(np.corrcoef(tsne_layouts[0][:, k], pca[:, k])[0, 1]) for k in range(2)) > 0.8
    np.testing.assert_allclose(tsne_layouts[-1], result["coords"], rtol=0, atol=2e-3 * np.ptp(result["coords"]))
    fractions = [fraction for fraction, _, _ in reports]
    assert fractions == sorted(fractions)
    assert result["method"] == "tsne" and result["sample_size"] is None
    np.testing.assert_array_equal(result["coords"], embedding.layer_embedding(trained_model, digits, LAYER, "tsne"))
    predicted = result["predicted"][digits.is_test.numpy()]
    assert result["accuracy"] == pytest.approx(np.mean(predicted == digits.labels.numpy()[digits.is_test.numpy()]))


def test_the_page_gets_every_point_in_sample_order_and_a_title_that_says_what_is_on_its_way(streamed, context):
    result, reports = streamed
    shown = {"layer": LAYER, "method": "tsne"}
    first = next(partial for _, _, partial in reports if partial is not None)
    placed, status = explore.scatter_render_partial(context)(first, shown)
    extent = np.ptp(first["coords"])
    np.testing.assert_allclose(placed["x"], first["coords"][:, 0], rtol=0, atol=1e-4 * extent)
    np.testing.assert_allclose(placed["y"], first["coords"][:, 1], rtol=0, atol=1e-4 * extent)
    assert placed["title"].startswith(f"PCA of layer {LAYER}") and placed["title"].endswith("t-SNE on its way")
    assert placed["final"] is False and placed["revision"] == f"{LAYER}|tsne|flat"
    assert status == f"test accuracy {result['accuracy']:.1%}"
    final, _ = explore.scatter_render(context)(result, shown)
    assert final["title"] == f"t-SNE of layer {LAYER} (flattened, 2,048 values per image), 1,797 images"
    assert final["final"] is True and len(final["x"]) == 1797
    np.testing.assert_allclose(final["x"], result["coords"][:, 0], rtol=0, atol=1e-4 * np.ptp(result["coords"]))


def test_a_sampled_layout_says_so_in_the_title():
    from components import scatter

    title = scatter.scatter_title("t-SNE", "avgpool", "pooled", 512, 50_000, sample_size=10_000)
    assert title.endswith("50,000 images (fitted on 10,000, the rest placed)")
    assert "fitted on" not in scatter.scatter_title("t-SNE", "avgpool", "pooled", 512, 1_797, sample_size=None)


def apply_patch(figure: dict, patch) -> dict:
    """Dash's Patch operations applied to a figure dict, as the page does (the "Assign" operations used here)."""
    figure = copy.deepcopy(figure)
    for operation in patch.to_plotly_json()["operations"]:
        assert operation["operation"] == "Assign"
        *path, last = operation["location"]
        target = figure
        for step in path:
            target = target.setdefault(step, {}) if isinstance(target, dict) else target[step]
        target[last] = operation["params"]["value"]
    return figure


@pytest.mark.parametrize("before, after", [("true", "correct"), ("correct", "predicted"), ("true", "predicted")])
def test_a_colour_change_patch_equals_a_full_redraw_and_is_much_smaller(streamed, context, before, after):
    result, _ = streamed
    shown, classes = {"layer": LAYER, "method": "tsne"}, context.meta.classes
    drawn = explore.scatter_figure(result, shown, classes, before, 5, final=True).to_plotly_json()
    expected = explore.scatter_figure(result, shown, classes, after, 5, final=True).to_plotly_json()
    patch = explore.recolour(result, classes, after)
    patched = apply_patch(drawn, patch)
    for got, want in zip(patched["data"], expected["data"]):
        for key in ("x", "y", "customdata", "marker", "name", "showlegend"):
            assert json.dumps(got.get(key), default=str, sort_keys=True) == json.dumps(want.get(key), default=str,
                                                                                 sort_keys=True), key
    assert patched["layout"]["legend"]["title"]["text"] == expected["layout"]["legend"]["title"]["text"]
    patch_bytes = len(plotly.io.json.to_json_plotly(patch.to_plotly_json()))
    full_bytes = len(plotly.io.json.to_json_plotly(expected))
    assert patch_bytes < 0.25 * full_bytes, (patch_bytes, full_bytes)


def test_the_figure_holds_every_point_once_in_sample_order_with_its_colour_number(streamed, context, digits):
    result, _ = streamed
    figure = explore.scatter_figure(result, {"layer": LAYER, "method": "tsne"}, context.meta.classes, "correct", 3,
                                    final=True)
    points = figure.data[0]
    assert points.name == "points" and [int(row[0]) for row in points.customdata] == list(range(len(digits)))
    np.testing.assert_allclose(points.x, result["coords"][:, 0], rtol=1e-6)
    wrong = result["labels"] != result["predicted"]
    assert list(points.marker.color) == wrong.astype(int).tolist()
    ring = figure.data[-1]
    assert ring.name == "selected" and ring.x == (pytest.approx(float(result["coords"][3, 0])),)


# ------------------------------------------------------------------ background precomputation yields to users


@pytest.fixture(scope="module")
def service(cache_root):
    from dashboard.service import ComputeService

    started = ComputeService.start(Source())
    yield started
    started.close()


def test_background_work_waits_for_users_and_a_user_request_stops_it_until_later(service):
    from dashboard.service import job_key

    background = {"tag": uuid.uuid4().hex, "steps": 100, "step_s": 0.02}
    key = job_key(service.source, "diagnostics.count", background)
    finished = service.precompute([("diagnostics.count", background)], delay_s=0)
    deadline = time.time() + 60
    while service.status(key).fraction < 0.05 and time.time() < deadline:
        time.sleep(0.05)
    assert service.status(key).state == "running"
    user = service.submit("diagnostics.count", {"tag": uuid.uuid4().hex, "steps": 25, "step_s": 0.02},
                          holder=("session", "panel"))
    assert service.status(key).state == "cancelled"  # the user's request stopped it at once
    answered = service.wait(user, 60)
    assert answered.state == "done"
    assert finished.wait(120)
    again = service.status(key)
    assert again.state == "done" and again.result["steps"] == 100
    # It ran again only once the user's job had ended (25 steps of 20 ms).
    assert again.result["started"] >= answered.result["started"] + 25 * 0.02 - 0.05


def test_background_work_shares_a_job_the_user_asks_for_too(service):
    from dashboard.service import job_key

    background = {"tag": uuid.uuid4().hex, "steps": 60, "step_s": 0.02}
    key = job_key(service.source, "diagnostics.count", background)
    finished = service.precompute([("diagnostics.count", background)], delay_s=0)
    deadline = time.time() + 60
    while service.status(key).fraction < 0.05 and time.time() < deadline:
        time.sleep(0.05)
    assert service.submit("diagnostics.count", background, holder=("session", "panel")) == key
    assert service.status(key).state == "running"  # not cancelled: the user waits for this very job
    assert service.wait(key, 60).state == "done" and finished.wait(60)


def test_start_up_work_puts_every_layers_pca_layout_before_any_slow_layout():
    requests = explore.background_requests(["conv1", "relu2", "logits"], "relu2", "tsne")
    assert [(r.job, r.params["layer"], r.params["method"]) for r in requests] == [
        ("explore.scatter", "relu2", "pca"), ("explore.scatter", "conv1", "pca"), ("explore.scatter", "logits", "pca"),
        ("explore.scatter", "relu2", "tsne"), ("explore.scatter", "conv1", "tsne"), ("explore.scatter", "logits", "tsne")]
    # Each is the very request the page sends, so a layer change finds its job (or its cached layout).
    assert requests[1] == explore.scatter_request("conv1", "pca", "auto")
    assert [r.params["method"] for r in explore.background_requests(["conv1", "logits"], "conv1", "pca")] == ["pca"] * 2


def test_after_the_pca_phase_a_layer_change_finds_its_first_layout_in_the_cache(service, trained_model, digits):
    layers = ["fc1", "relu4"]
    for layer in layers:
        embedding.forget_layer(trained_model, digits, layer, methods=("pca",))
    requests = [r for r in explore.background_requests(layers, "fc1", "tsne") if r.params["method"] == "pca"]
    assert service.precompute([(r.job, r.params) for r in requests], delay_s=0).wait(120)
    for layer in layers:
        assert embedding.layer_reduction.key(trained_model, digits, layer, "flat") in get_cache()
        assert embedding.layer_embedding.key(trained_model, digits, layer, "pca", "flat") in get_cache()
    # The t-SNE job of such a layer sends that PCA layout as its first partial result, equal to the cached one.
    holder = ("test", "scatter")
    key = service.submit("explore.scatter", {"layer": "relu4", "method": "tsne", "features": "auto"}, holder=holder)
    status = service.wait(key, 60, newer_than=0)
    assert status.partial is not None and status.partial["method"] == "pca"
    np.testing.assert_array_equal(status.partial["coords"],
                                  embedding.layer_embedding(trained_model, digits, "relu4", "pca", "flat"))
    service.release(holder)  # the t-SNE itself is not needed here


def test_precomputation_is_on_from_the_command_line_and_off_for_apps_built_in_tests():
    from dashboard.__main__ import parse_args
    from dashboard.config import AppConfig

    assert AppConfig().precompute is False
    assert parse_args([]).precompute is True
    assert parse_args(["--no-precompute"]).precompute is False
