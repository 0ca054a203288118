"""The faithfulness view as plain functions: controls -> job request, the job run in this process, result -> figures,
tables and words; the image at a hovered point; the ranking, its partial results, cancel and resume, and its CSV."""
from __future__ import annotations

import csv
import io

import numpy as np
import pytest

from compute import attribution
from compute.jobs import faithfulness as faithfulness_jobs
from compute.specs.faithfulness import SETTINGS
from compute.jobs.table import run
from compute.specs.source import Source
from compute.errors import Cancelled
from dashboard.views import attribution as attribution_view
from dashboard.views import faithfulness as view
from dashboard.views.panel import Message, Request

INDEX = 21  # a test image of the digits
SHAPE = (1, 32, 32)
METHODS = ["occlusion", "saliency", "gradcam"]


def setting_controls(**values) -> tuple[list, list[dict]]:
    """The settings controls' values and ids as the page holds them (a bool is a checklist's list)."""
    ids = [view.settings.control_id(view.SETTINGS_METHOD, spec.name) for spec in SETTINGS]
    shown = []
    for spec in SETTINGS:
        value = values.get(spec.name, spec.default)
        shown.append((["on"] if value else []) if spec.kind == "bool" else value)
    return shown, ids


def ask(context, selection=None, chosen=METHODS, target=None, use_predicted=(), **settings):
    values, ids = setting_controls(**settings)
    request = view.curves_request(context)
    return request({"index": INDEX} if selection is None else selection, list(chosen), [], target,
                   list(use_predicted), values, [], ids)


@pytest.fixture(scope="module")
def curves(context):
    request = ask(context, steps=10, random_orders=2, road=True)
    return request, run(Source(), request.job, request.params)


def test_nothing_is_asked_without_a_selection_and_no_method_is_said(context):
    values, ids = setting_controls()
    assert view.curves_request(context)(None, METHODS, [], None, [], values, [], ids) is None
    message = ask(context, chosen=[])
    assert isinstance(message, Message) and "attribution view" in message.text


def test_the_request_carries_the_attribution_views_methods_and_this_views_settings(context):
    request = ask(context, target=3, steps=500, fill="blur")
    assert isinstance(request, Request) and request.job == "faithfulness.curves"
    params = request.params
    assert list(params["methods"]) == ["occlusion", "saliency", "gradcam"]  # the attribution table's order
    assert params["methods"]["occlusion"] == attribution.suggested_params("occlusion", SHAPE)
    assert params["target"] == 3 and params["steps"] == 100 and params["fill"] == "blur"
    assert params["blur"] == 0.25  # typed in percent of the side, sent as a share
    assert "images" not in params  # a ranking setting: changing it does not recompute the curves
    assert any("Steps 500 is outside 4..100" in note for note in request.context["notes"])


def test_the_curves_are_the_jobs_numbers_and_the_verdict_names_best_and_worst(context, curves):
    request, result = curves
    figure, table, verdict, notes = view.curves_render(context)(result, request.context)
    assert result["kinds"] == ["deletion", "insertion", "road_morf", "road_lerf"]
    by_name = {}
    for trace in figure.data:
        by_name.setdefault(trace.legendgroup, []).append(trace)
    for k, kind in enumerate(result["kinds"]):
        for name in METHODS:
            trace = by_name[name][k]
            np.testing.assert_allclose(trace.y, result["curves"][kind][name], atol=1e-7)
            np.testing.assert_allclose(np.asarray(trace.x) / 100, result["fractions"][kind], atol=1e-6)
            assert [list(c) for c in trace.customdata][3] == [name, kind, 3]
        np.testing.assert_allclose(by_name["random 1"][k].y, result["random"][kind], atol=1e-7)
    # the deletion curve starts at the clean image's probability, the same for every map
    assert len({round(float(result["curves"]["deletion"][name][0]), 6) for name in METHODS}) == 1
    # best and worst by insertion - deletion, from the job's own areas
    auc = result["auc"]
    difference = {name: auc["insertion"][name] - auc["deletion"][name] for name in METHODS}
    best, worst = max(difference, key=difference.get), min(difference, key=difference.get)
    text = verdict.children
    assert f"most faithful map for this image is {attribution.METHODS[best].label} ({difference[best]:+.2f})" in text
    assert f"least faithful {attribution.METHODS[worst].label}" in text
    assert "ROAD: LeRF − MoRF" in text
    rows = {row.__dict__.get("data-method"): row for row in table.children[1].children}
    cells = [cell.children for cell in rows["saliency"].children]
    shown = cells[1].children if hasattr(cells[1], "children") else cells[1]
    assert float(shown) == pytest.approx(auc["deletion"]["saliency"], abs=5e-4)
    assert notes == []


def test_hovering_a_point_shows_the_image_the_curve_classified_there(context, curves):
    request, result = curves
    job = {"key": "k", "context": request.context}
    for row, kind, point in (("saliency", "deletion", 4), ("gradcam", "road_morf", 6), ("random 1", "insertion", 2)):
        hover = {"points": [{"customdata": [row, kind, point]}]}
        step = view.step_request(hover, None, job)
        assert step.job == "faithfulness.step" and "road" not in step.params
        answer = run(Source(), step.job, step.params)
        expected = result["random"][kind][point] if row == "random 1" else result["curves"][kind][row][point]
        if row != "random 1":  # the floor is the mean of the random orders; the picture is that of the first
            assert answer["probability"] == pytest.approx(float(expected), abs=1e-6)
        assert answer["image"].shape == SHAPE and answer["fraction"] == pytest.approx(point / 10)
        (figure,) = view.step_render(context)(answer, {})
        assert f"p({context.meta.classes[result['target']]}) = {answer['probability']:.3f}" in figure.layout.title.text
    assert view.step_request(None, None, job) is None and view.step_request({"points": []}, None, job) is None


def test_an_uploaded_image_is_explained_for_its_predicted_class(context):
    from tests.test_snippets import _saved_upload

    selection = {"index": -1, "variant": {"kind": "upload", "id": _saved_upload()}}
    request = ask(context, selection=selection, chosen=["saliency"], steps=4, random_orders=1)
    result = run(Source(), request.job, request.params)
    assert result["target_how"] == "predicted" and result["label"] is None
    assert result["curves"]["deletion"]["saliency"].shape == (5,)


# ------------------------------------------------------------------------------------------ the ranking

def rank_request(context, clicks=1, **settings):
    values, ids = setting_controls(**settings)
    return view.ranking_request(context)(clicks, [], [], values, ids)


def test_the_ranking_asks_for_every_method_with_roads_curves(context):
    assert rank_request(context, clicks=0) is None
    request = rank_request(context, images=50, steps=8)
    assert request.job == "faithfulness.ranking"
    assert list(request.params["methods"]) == list(attribution.METHODS)
    assert request.params["images"] == 50 and request.params["steps"] == 8 and request.params["road"] is True


@pytest.fixture(scope="module")
def ranking(context):
    request = rank_request(context, images=10, steps=5)
    partials = []
    result = run(Source(), request.job, request.params,
                 lambda fraction, text, partial=None: partial is not None and partials.append(partial))
    return request, result, partials


def test_the_ranking_tables_and_words_are_the_jobs_numbers(context, ranking):
    request, result, partials = ranking
    assert result["count"] == 10 and result["test_count"] == int(context.meta.test_count)
    assert result["scores"] == ["deletion", "insertion", "road_morf", "road_lerf", "difference", "road"]
    difference = result["values"]["difference"]
    assert difference.shape == (10, len(attribution.METHODS) + 1)
    np.testing.assert_allclose(result["summary"]["difference"]["mean"], difference.mean(0))
    np.testing.assert_allclose(difference, result["values"]["insertion"] - result["values"]["deletion"])
    figure, table, verdict, csv_disabled = view.ranking_render(result, request.context)
    assert csv_disabled is False
    assert len(figure.data) == len(result["scores"])
    np.testing.assert_allclose(figure.data[0].x, result["summary"]["deletion"]["mean"][:-1])
    first = int(np.argmax(result["summary"]["difference"]["mean"][:-1]))
    label = attribution.METHODS[result["methods"][first]].label
    assert f"by insertion − deletion the most faithful is {label}" in verdict.children
    assert "Over 10 of the" in verdict.children
    # partial results went out on the way, with the tables so far and the CSV held back
    assert partials and all(p["count"] < 10 for p in partials)
    assert view.ranking_render_partial(partials[0], {})[3] is True


def test_the_ranking_csv_has_every_method_score_and_the_sanity_check(ranking):
    _request, result, _partials = ranking
    rows = list(csv.DictReader(io.StringIO(view.ranking_csv(result))))
    methods = len(attribution.METHODS)
    assert len(rows) == len(result["scores"]) * (methods + 1) + methods
    deletion = [row for row in rows if row["score"] == "Deletion area"]
    assert [row["method"] for row in deletion][-1] == "random order"
    for m, row in enumerate(deletion):
        assert float(row["mean"]) == pytest.approx(result["summary"]["deletion"]["mean"][m], abs=1e-6)
        assert int(row["images"]) == 10
    sanity = [row for row in rows if row["score"].startswith("sanity")]
    np.testing.assert_allclose([float(row["mean"]) for row in sanity], result["correlation"]["mean"], atol=1e-6)


def test_a_cancelled_ranking_resumes_from_its_cache(context, monkeypatch):
    from compute import faithfulness

    params = {**rank_request(context, steps=4).params, "images": 5, "seed": 7,
              "methods": {"saliency": {}, "gradcam": {"layer": ""}}}
    computed: list[list[float]] = [[], []]  # the images whose curves each run computed (by their pixel sum)
    original = faithfulness.faithfulness_curves

    def counting(run_number):
        def curves(model, image, *args, **kwargs):
            computed[run_number].append(round(float(image.sum()), 4))
            return original(model, image, *args, **kwargs)
        return curves

    def stop_after_two(fraction, text, partial=None):
        if text.startswith("ranked 2/"):
            raise Cancelled()

    monkeypatch.setattr(faithfulness, "faithfulness_curves", counting(0))
    with pytest.raises(Cancelled):
        run(Source(), "faithfulness.ranking", params, stop_after_two)
    monkeypatch.setattr(faithfulness, "faithfulness_curves", counting(1))
    result = run(Source(), "faithfulness.ranking", params)
    assert result["count"] == 5
    assert len(computed[0]) <= 2 and not set(computed[0]) & set(computed[1])  # nothing computed twice
    assert len(computed[0]) + len(computed[1]) in (0, 5)  # all of it from a cache another run left, or each once


def test_links_keep_the_settings_and_the_ranking():
    keys = {entry.key for entry in view.URL_STATE}
    assert {"faithfulness.steps", "faithfulness.road", "faithfulness.images", "faithfulness.rank"} <= keys
    assert faithfulness_jobs.SCORES["deletion"] == "lower"
    assert attribution_view.TARGET in str(view.panel.inputs)
