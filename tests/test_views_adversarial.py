"""The adversarial view as plain functions: controls -> job request, the job run in this process, result -> figures,
the scatter mark and the selection the buttons write."""
from __future__ import annotations

import numpy as np
import pytest

from compute.jobs.table import run
from compute.jobs import variants
from compute.jobs.workspace import workspace
from compute.specs.source import Source
from components.adversarial import magnification, magnified
from dashboard.views import adversarial as view
from dashboard.views.context import sample_params
from dashboard.views.panel import Message, Request

INDEX = 21  # a test image that FGSM at 32/255 fools on the built-in model (asserted where it matters)


def ask(selection=None, method="fgsm", target=None, epsilon=32, steps=10, step_size=None, layer="relu2",
        embedding="pca", features="auto"):
    """The attack panel's request as its callback calls it (epsilon and step size in /255, as typed)."""
    return view.attack_request({"index": INDEX} if selection is None else selection, method, target, epsilon, steps,
                               step_size, layer, embedding, features)


@pytest.fixture(scope="module")
def fgsm_attack(context):
    request = ask()
    return request, run(Source(), request.job, request.params)


def test_nothing_is_attacked_without_a_selection():
    assert view.attack_request(None, "fgsm", None, 8, 10, None, "relu2", "pca", "auto") is None


def test_epsilon_is_typed_in_255ths_and_sent_in_pixel_units():
    request = ask(epsilon=8, target=3)
    assert isinstance(request, Request) and request.job == "adversarial.attack"
    assert request.params["epsilon"] == pytest.approx(8 / 255) and request.params["target"] == 3
    assert (request.params["layer"], request.params["embedding"], request.params["mode"]) == ("relu2", "pca", "auto")


def test_fgsm_ignores_the_pgd_controls_so_they_do_not_recompute_it():
    assert ask(steps=10).params == ask(steps=40, step_size=3).params
    assert "steps" not in ask().params


def test_pgd_step_size_defaults_to_madry_and_is_read_in_255ths():
    assert ask(method="pgd", epsilon=8, steps=10).params["step_size"] == pytest.approx(2.5 * 8 / 255 / 10)
    assert ask(method="pgd", epsilon=8, steps=10, step_size=2).params["step_size"] == pytest.approx(2 / 255)


@pytest.mark.parametrize("epsilon, steps, step_size, said", [
    (-1, 10, None, "outside 0 to 255/255"), (300, 10, None, "outside 0 to 255/255"),
    (8, 0, None, "whole number from 1"), (8, 2.5, None, "whole number from 1"), (8, 10, -1, "above 0"),
])
def test_bad_values_are_said_not_sent(epsilon, steps, step_size, said):
    request = ask(method="pgd", epsilon=epsilon, steps=steps, step_size=step_size)
    assert isinstance(request, Message) and said in request.text


def test_an_empty_epsilon_asks_for_one():
    assert isinstance(ask(epsilon=None), Message)


def test_the_panel_shows_the_jobs_three_images_and_predictions(context, fgsm_attack):
    request, result = fgsm_attack
    assert result["fooled"], "the test image must be one FGSM at 32/255 fools"
    figure, top5, summary, mark, attacked = view.attack_render(context)(result, request.context)
    original, perturbation, adversarial = (np.asarray(trace.z, dtype=np.float32) for trace in figure.data)
    np.testing.assert_allclose(original, result["original"][0], atol=1e-6)
    np.testing.assert_allclose(adversarial, result["adversarial"][0], atol=1e-6)
    factor = magnification(result["perturbation"])
    np.testing.assert_allclose(perturbation, magnified(result["perturbation"], factor)[0], atol=1e-6)
    titles = [annotation.text for annotation in figure.layout.annotations]
    classes = context.meta.classes
    before, after = result["before"], result["after"]
    assert f"“{classes[before['predicted']]}” {before['confidence']:.1%}" in titles[0]
    assert f"perturbation ×{factor}" in titles[1] and "32/255" in titles[1]
    assert f"“{classes[after['predicted']]}” {after['confidence']:.1%}" in titles[2]
    assert before["predicted"] != after["predicted"]
    # Top-5 before and after, most probable at the top (the bars are drawn bottom-up).
    assert list(top5.data[0].y)[::-1] == [classes[k] for k, _ in before["top5"]]
    np.testing.assert_allclose(list(top5.data[1].x)[::-1], [p for _, p in after["top5"]], rtol=1e-6)
    assert "turns" in summary.children and "32/255" in summary.children


def test_the_scatter_mark_is_the_jobs_jump_from_original_to_adversarial(context, fgsm_attack):
    request, result = fgsm_attack
    _, _, _, mark, _ = view.attack_render(context)(result, request.context)
    (x0, y0), (x1, y1) = result["points"]["original"], result["points"]["adversarial"]
    assert mark["indices"] == [INDEX] and mark["label"].startswith(view.MARK_PREFIX)
    assert mark["lines"] == [[x0, y0, x1, y1]]
    assert [point[:2] for point in mark["points"]] == [[x1, y1]]
    after = result["after"]
    assert mark["points"][0][2] == f"adversarial: “{context.meta.classes[after['predicted']]}” {after['confidence']:.0%}"


def test_an_image_that_cannot_be_placed_says_why_and_marks_nothing(context, fgsm_attack):
    request, result = fgsm_attack
    unplaced = {**result, "points": None, "placement_message": "this layout cannot place new points"}
    _, _, summary, mark, _ = view.attack_render(context)(unplaced, request.context)
    assert mark is None and "this layout cannot place new points" in summary.children


def test_the_opened_adversarial_image_is_the_one_the_panel_shows(context, fgsm_attack):
    request, result = fgsm_attack
    *_, attacked = view.attack_render(context)(result, request.context)
    selection = view.selection_for(view.OPEN_ADVERSARIAL, attacked, {"index": INDEX})
    assert selection["label"] == "adversarial, FGSM 32/255"
    params = sample_params(selection)
    image = variants.image(workspace(Source()), params["index"], params["variant"])
    np.testing.assert_allclose(image.numpy(), result["adversarial"], atol=1e-7)
    assert view.selection_for(view.BACK, attacked, selection) == {"index": INDEX}
    assert view.selection_for(view.BACK, attacked, {"index": INDEX}) is None  # already the original


def test_a_pgd_variant_reproduces_the_pgd_image(context):
    request = ask(method="pgd", epsilon=12, steps=5, step_size=4)
    result = run(Source(), request.job, request.params)
    *_, attacked = view.attack_render(context)(result, request.context)
    assert attacked["label"] == "adversarial, PGD 12/255, 5 steps"
    image = variants.image(workspace(Source()), INDEX, attacked["variant"])
    np.testing.assert_allclose(image.numpy(), result["adversarial"], atol=1e-7)


def test_the_placement_caveat_appears_only_when_placing_moves_the_original():
    assert view.placement_caveat({"original": [0, 0], "original_placed": [0, 0.01], "adversarial": [3, 4]}) == ""
    said = view.placement_caveat({"original": [0, 0], "original_placed": [3, 4], "adversarial": [3, 5]})
    assert "lands 5 away" in said and "moves it 1 from there" in said


def test_the_smallest_epsilon_waits_for_its_button_and_shows_the_jobs_image(context):
    assert view.smallest_request(0, {"index": INDEX}, None) is None
    request = view.smallest_request(1, {"index": INDEX}, None)
    assert request.params["max_epsilon"] == pytest.approx(view.SMALLEST_MAX_EPSILON)
    result = run(Source(), request.job, request.params)
    figure, text = view.smallest_render(context)(result, request.context)
    assert 0 < result["epsilon"] <= 32 / 255
    np.testing.assert_allclose(np.asarray(figure.data[2].z, dtype=np.float32), result["adversarial"][0], atol=1e-6)
    assert f"ε = {result['epsilon'] * 255:.3g}/255" in text and f"#{INDEX}" in text


def test_an_image_that_does_not_flip_says_so(context):
    figure, text = view.smallest_render(context)(
        {"index": 5, "epsilon": None, "message": "20-step PGD does not flip this image up to epsilon 64/255"}, {})
    assert "does not flip" in text and "does not flip" in figure.layout.annotations[0].text


def test_the_robustness_curve_draws_the_jobs_rates(context):
    assert view.robustness_request(0, None) is None
    request = view.robustness_request(1, None)
    epsilons = (0.0, 16 / 255, 32 / 255)
    result = run(Source(), request.job, {**request.params, "epsilons": epsilons, "max_images": 60})
    figure, text = view.robustness_render(context)(result, request.context)
    success, accuracy = figure.data
    np.testing.assert_allclose(success.y, result["success_rate"])
    np.testing.assert_allclose(accuracy.y, result["accuracy"])
    np.testing.assert_allclose(success.x, np.asarray(epsilons) * 255)
    assert f"{result['clean_accuracy']:.1%}" in text and "untargeted" in text
