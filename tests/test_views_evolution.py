"""The evolution view as plain functions: controls -> job request, the job run in this process, result -> figures."""
from __future__ import annotations

import base64

import numpy as np
import pytest
from dash import no_update

from components import evolution as figures
from compute import training
from compute.jobs.table import run
from compute.specs.source import Source
from dashboard.views import evolution as view
from dashboard.views.panel import Message, Request

SELECTED = 123


@pytest.fixture(scope="module")
def result(trained_model):
    """The default run's evolution of relu4 with PCA, as the compute process returns it."""
    return run(Source(), "evolution.embed", {"layer": "relu4", "method": "pca", "run": training.DEFAULT_RUN})


@pytest.fixture(scope="module")
def shown():
    return {"selected": None, "layer": "relu4", "method": "pca"}


def positions(traces: list[dict], count: int) -> np.ndarray:
    """The (N, 2) positions ``traces`` (a frame's, or a panel's, ring last) give the samples, by their customdata."""
    points = np.full((count, 2), np.nan)
    for trace in traces[:-1]:
        samples = np.asarray(trace["customdata"])[:, 0].astype(int)
        points[samples] = np.c_[plain(trace["x"]), plain(trace["y"])]
    return points


def apply_patch(figure: dict, patch) -> dict:
    """What Dash's renderer does with a Patch's operations (Assign and Merge are the ones the view uses)."""
    for operation in patch.to_plotly_json()["operations"]:
        *path, last = operation["location"]
        target = figure
        for key in path:
            target = target[key]
        value = operation["params"]["value"]
        if operation["operation"] == "Assign":
            target[last] = value
        elif operation["operation"] == "Merge":
            target[last].update(value)
        else:
            raise AssertionError(f"unexpected patch operation {operation['operation']}")
    return figure


def plain(values) -> list:
    """A figure's values as nested float lists, whether lists or plotly's base64 typed arrays ({"bdata", "dtype"})."""
    if isinstance(values, dict) and "bdata" in values:
        array = np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"])
        shape = [int(size) for size in str(values.get("shape", len(array))).split(",")]
        values = array.reshape(shape)
    return np.asarray(values, dtype=float).tolist()


def test_the_request_uses_the_layer_above_unless_the_view_names_one():
    request = view.evolution_request("default", "", "relu2", "pca", {"index": 7})
    assert isinstance(request, Request) and request.job == "evolution.embed"
    assert request.params == {"layer": "relu2", "method": "pca", "run": "default"}
    assert request.context == {"selected": 7, "layer": "relu2", "method": "pca", "epoch": 0}
    assert view.evolution_request("e2-lr0.003-w0.5-s1", "logits", "relu2", "tsne", None).params == {
        "layer": "logits", "method": "tsne", "run": "e2-lr0.003-w0.5-s1"}


def test_no_second_run_asks_for_no_second_job():
    assert isinstance(view.compare_request(None, "", "relu2", "pca", None), Message)
    assert view.compare_request("default", "", "relu4", "pca", None).params["layer"] == "relu4"


def test_the_animated_scatter_has_one_frame_per_epoch_holding_the_jobs_layouts(result, shown):
    scatter, _pair, _numbers, alignment, _track = view.evolution_render(result, shown)
    epochs, layouts = result["epochs"], result["layouts"]
    count = layouts.shape[1]
    assert len(scatter["frames"]) == len(epochs) == layouts.shape[0] == 11
    assert [frame["name"] for frame in scatter["frames"]] == [str(e) for e in epochs]
    assert [step["label"] for step in scatter["layout"]["sliders"][0]["steps"]] == [str(e) for e in epochs]
    for frame, layout in zip(scatter["frames"], layouts):
        assert np.allclose(positions(frame["data"], count), layout, atol=5e-4)
    # The figure opens at the untrained model; clicks can read the sample from plain customdata lists.
    assert scatter["layout"]["sliders"][0]["active"] == 0
    assert np.allclose(positions(scatter["data"][:-1], count), layouts[0], atol=5e-4)
    assert all(isinstance(trace["customdata"], list) for trace in scatter["data"] if "customdata" in trace)
    assert scatter["frames"][3]["data"][0]["customdata"][0] == [int(np.flatnonzero(result["labels"] == 0)[0]), 3]
    # The page says how the layouts were aligned.
    assert result["alignment"] in alignment and "Procrustes" in result["alignment"]
    assert "run default · relu4 · PCA" in scatter["layout"]["title"]["text"]


def test_a_link_s_epoch_opens_the_scatter_and_the_numbers_at_it_and_an_absent_one_at_the_first(result, shown):
    """A shared link keeps the slider's epoch: the scatter opens at that frame (its points at that epoch's layout)
    and the numbers mark it; an epoch the run does not have opens at the untrained model."""
    count = result["layouts"].shape[1]
    scatter, _pair, numbers, _alignment, _track = view.evolution_render(result, {**shown, "epoch": 6})
    assert scatter["layout"]["sliders"][0]["active"] == 6
    assert np.allclose(positions(scatter["data"][:-1], count), result["layouts"][6], atol=5e-4)
    assert numbers.layout.shapes[0].x0 == 6
    scatter, *_ = view.evolution_render(result, {**shown, "epoch": 99})
    assert scatter["layout"]["sliders"][0]["active"] == 0


def test_the_numbers_chart_equals_the_jobs_numbers(result, shown):
    _scatter, _pair, numbers, _alignment, _track = view.evolution_render(result, shown)
    for (key, label, _colour), trace in zip(figures.METRICS, numbers.data):
        assert trace.name == label
        assert list(trace.x) == result["epochs"]
        assert np.allclose(np.asarray(trace.y, dtype=float), result[key])
    assert numbers.layout.shapes[0].x0 == 0  # the slider's epoch, marked
    # Training shows at relu4: test accuracy and k-NN accuracy in its features rise from the untrained model.
    assert result["test_accuracy"][-1] > result["test_accuracy"][0] + 0.5
    assert result["knn_features"][-1] > result["knn_features"][0]


def test_the_before_after_pair_is_the_first_and_the_last_epoch(result, shown):
    _scatter, pair, _numbers, _alignment, _track = view.evolution_render(result, shown)
    count = view._trace_counts(result["labels"], result["classes"])
    assert np.allclose(positions(pair["data"][:count + 1], len(result["labels"])), result["layouts"][0], atol=5e-4)
    assert np.allclose(positions(pair["data"][count + 1:], len(result["labels"])), result["layouts"][-1], atol=5e-4)


@pytest.mark.parametrize("epoch", [0, 4, 10])
def test_selecting_an_image_rings_it_in_every_frame_like_a_figure_drawn_with_it(result, shown, epoch):
    patched = apply_patch(view.scatter_figure(result, shown), view.selection_patch(result, SELECTED, epoch))
    expected = view.clickable(figures.evolution_scatter(result["layouts"], result["labels"], result["classes"],
                                                        result["epochs"], SELECTED, start=epoch))
    assert patched["layout"]["sliders"][0]["active"] == epoch
    for got, want in zip(patched["data"], expected["data"]):
        assert plain(got["x"]) == pytest.approx(plain(want["x"]), abs=1e-6)
        assert plain(got["y"]) == pytest.approx(plain(want["y"]), abs=1e-6)
        assert plain(got["customdata"]) == plain(want["customdata"])
    for k, (got, want) in enumerate(zip(patched["frames"], expected["frames"])):
        ring = got["data"][-1]
        assert plain(ring["x"]) + plain(ring["y"]) == pytest.approx(plain(result["layouts"][k, SELECTED]), abs=1e-6)
        assert plain(ring["customdata"]) == plain(want["data"][-1]["customdata"]) == [[SELECTED, k]]
    path = next(trace for trace in patched["data"] if trace.get("name") == figures.PATH_TRACE)
    assert np.allclose(np.c_[plain(path["x"]), plain(path["y"])], result["layouts"][:, SELECTED])
    # Clearing the selection empties the ring and the path.
    cleared = apply_patch(patched, view.selection_patch(result, None, epoch))
    assert all(len(frame["data"][-1]["x"]) == 0 for frame in cleared["frames"])
    assert len(cleared["data"][-2]["x"]) == 0 and len(cleared["data"][-1]["x"]) == 0


def test_selecting_an_image_rings_it_before_and_after(result, shown):
    _scatter, pair, _numbers, _alignment, _track = view.evolution_render(result, shown)
    patched = apply_patch(pair, view.pair_patch(result, SELECTED))
    rings = [trace for trace in patched["data"] if trace.get("name") == figures.SELECTION_TRACE]
    assert np.allclose([[r["x"][0], r["y"][0]] for r in rings], result["layouts"][[0, -1], SELECTED])


def test_the_track_lists_the_selected_images_prediction_after_each_epoch(result, shown):
    track = view.evolution_render(result, {**shown, "selected": SELECTED})[-1]
    cells = [child for child in track.children if "evolution-guess" in (getattr(child, "className", "") or "")]
    predicted = result["predicted"][:, SELECTED]
    assert [cell.children for cell in cells] == [f"{e}: {result['classes'][p]}" for e, p in zip(result["epochs"], predicted)]
    right = predicted == result["labels"][SELECTED]
    assert ["right" in cell.className for cell in cells] == right.tolist()
    assert view.prediction_track(result, None) is None


def test_training_settings_are_checked_before_a_job_is_asked_for():
    assert view.train_request(0, 3, 3e-3, 1.0, 1, []) is None
    refused = view.train_request(1, 3, 5.0, 1.0, 1, [])
    assert isinstance(refused, Message) and "lr must be between" in refused.text
    assert isinstance(view.train_request(1, None, 3e-3, 1.0, 1, []), Message)
    request = view.train_request(2, 2, 0.01, 0.5, 4, [])
    assert request.job == "evolution.train" and request.params == {"epochs": 2, "lr": 0.01, "width": 0.5, "seed": 4}


def test_a_run_trained_from_the_page_joins_both_lists_and_evolves(trained_model):
    settings = {"epochs": 1, "lr": 3e-3, "width": 0.25, "seed": 3}
    trained, note = view.train_render(run(Source(), "evolution.train", settings), {"trained": []})
    compared = trained[-1]["name"]
    assert compared == "e1-lr0.003-w0.25-s3" and "is ready" in note.children
    # The runs job's answer is shared by equal requests, so the page adds what it trained itself ...
    options, compare_options, shown = view.runs_render({"runs": []}, view.runs_request(trained, True).context)
    assert [o["value"] for o in options] == [compared] and options == compare_options
    assert shown == compared  # ... and shows a run that has just been trained beside the first
    request = view.runs_request(trained, False)
    assert request.job == "evolution.runs" and request.context["show"] is None
    assert request.params != view.runs_request(trained, False).params  # each listing is asked anew
    options, _, shown = view.runs_render(run(Source(), request.job, request.params), request.context)
    values = [o["value"] for o in options]
    # The default run first, the new one listed; runs other tests trained in the same cache may be there too.
    assert values[0] == training.DEFAULT_RUN and compared in values and shown is no_update
    assert set(values) == {r.name for r in training.runs()}
    assert "1 epochs, lr 0.003, width 0.25, seed 3" in options[values.index(compared)]["label"]
    second = run(Source(), "evolution.embed", {"layer": "relu4", "method": "pca", "run": compared})
    figure, = view.compare_render(second, {"selected": SELECTED, "layer": "relu4", "method": "pca"})
    assert len(figure["frames"]) == 2 == settings["epochs"] + 1  # the untrained model and one epoch
    assert "run e1-lr0.003-w0.25-s3" in figure["layout"]["title"]["text"]
