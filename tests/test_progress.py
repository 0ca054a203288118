"""Progress bars say true things: a chain of steps maps into one bar, a step without measurable progress says so
(no level), and the first start's training fills the scatter's bar as its epochs say."""
from __future__ import annotations

import sys
import threading
import time
import types
import uuid

import numpy as np
import pytest

from compute import embedding
from compute.jobs import explore
from compute.jobs import workspace as workspaces
from compute.progress import scaled
from compute.specs.source import Source
from dashboard.service import ComputeService, Status
from dashboard.views.panel import bar_value


def recorder():
    seen: list[tuple[float | None, str]] = []
    return seen, lambda fraction, text, partial=None: seen.append((fraction, text))


def test_a_chain_of_steps_maps_into_one_bar_and_an_unmeasured_step_stays_unmeasured():
    seen, progress = recorder()
    step = scaled(progress, 0.2, 0.6, "features: ")
    step(0.5, "half")
    step(None, "compiling")
    assert seen == [(pytest.approx(0.4), "features: half"), (None, "features: compiling")]


def test_umap_says_it_cannot_measure_its_fit_instead_of_standing_at_a_level(monkeypatch):
    """UMAP reports nothing while it fits (and compiles numba code on its first run): the step is unmeasured."""
    class Reducer:
        def __init__(self, **_options):
            pass

        def fit_transform(self, features):
            return np.zeros((len(features), 2), np.float32)

    monkeypatch.setitem(sys.modules, "umap", types.SimpleNamespace(UMAP=Reducer))
    seen, progress = recorder()
    embedding.fit_umap(np.random.default_rng(0).normal(size=(20, 4)).astype(np.float32), 0, progress)
    assert seen[0][0] is None and "no progress to show" in seen[0][1]
    assert seen[-1] == (1.0, "UMAP: layout fitted")


def test_the_first_starts_training_fills_the_scatters_bar_as_its_epochs_say(monkeypatch, trained_model):
    """The scatter job trains the model on the first start: "epoch k/10" is said with the bar near k/10, not at 17%."""
    place = workspaces.Workspace(Source())

    def training(epoch=None, progress=None):
        for epoch_number in range(1, 11):  # as compute.models.train_digits_cnn reports, twice per epoch
            for within in (0.0, 0.5):
                progress((epoch_number - 1 + within) / 10, f"training the digits CNN: epoch {epoch_number}/10")
        return trained_model

    monkeypatch.setattr(place, "will_train", lambda: True)
    monkeypatch.setattr(place, "model", training)
    seen, progress = recorder()
    explore.scatter(place, progress, layer="relu2", method="pca")
    epochs = [(fraction, text) for fraction, text in seen if "epoch" in text]
    assert len(epochs) == 20 and all(text.startswith("first start: training") for _, text in epochs)
    for fraction, text in epochs:
        said = int(text.rsplit(" ", 1)[1].split("/")[0]) / 10  # "epoch 9/10" -> 0.9, the epoch under way
        assert said - 0.2 <= fraction <= said, (fraction, text)
    after = [fraction for fraction, text in seen[seen.index(epochs[-1]) + 1:] if fraction is not None]
    assert after and min(after) >= explore.TRAINING_SHARE and after == sorted(after)
    # Without training, loading the model is the bar's first fifth, as before.
    monkeypatch.setattr(place, "will_train", lambda: False)
    monkeypatch.setattr(place, "model", lambda epoch=None, progress=None: trained_model)  # loaded, not trained
    seen, progress = recorder()
    explore.scatter(place, progress, layer="relu2", method="pca")
    assert seen[0] == (pytest.approx(explore.LOADING_SHARE), "class probabilities")


def test_a_job_waiting_for_another_to_load_the_model_says_so_with_no_level(trained_model):
    place = workspaces.Workspace(Source())
    seen, progress = recorder()
    holding, release = threading.Event(), threading.Event()

    def hold():
        with workspaces._waiting_for_load(None):
            holding.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    holding.wait(30)
    loader = threading.Thread(target=lambda: place.model(progress=progress))
    loader.start()
    deadline = time.time() + 30
    while not seen and time.time() < deadline:
        time.sleep(0.01)
    release.set()
    holder.join(30)
    loader.join(60)
    assert seen[0] == (None, "waiting for the model: another panel is loading it (the first start trains it)")


def test_the_page_shows_a_bar_without_a_level_while_a_step_is_unmeasured(cache_root):
    assert bar_value(Status("k", "running", 0.42)) == "42"
    assert bar_value(Status("k", "running", 0.42, measured=False)) is None  # <progress> without value: no level
    service = ComputeService.start(Source())
    try:
        key = service.submit("diagnostics.count", {"tag": uuid.uuid4().hex, "steps": 3, "step_s": 0.3,
                                                   "unmeasured_s": 3.0})
        deadline = time.time() + 60
        status = service.status(key)
        while status.text != "a step without measurable progress" and time.time() < deadline:
            status = service.wait(key, 0.1)
        assert status.state == "running" and not status.measured and bar_value(status) is None
        while status.measured is False and status.state == "running" and time.time() < deadline:
            status = service.wait(key, 0.1)
        assert status.measured  # the next step reports a level again
        assert service.wait(key, 60).state == "done"
    finally:
        service.close()
