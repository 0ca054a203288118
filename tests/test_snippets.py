"""The code the "show code" view gives runs as written in a fresh interpreter and returns the arrays the view shows."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from compute.jobs.table import run
from compute.specs.source import Source
from dashboard import snippets

ROOT = Path(__file__).resolve().parents[1]

# One request per view as its panel sends it (the views' own parameter names), kept cheap: PCA, few steps.
REQUESTS = {
    "explore": ("explore.scatter", {"layer": "relu2", "method": "pca", "features": "auto"}),
    "details": ("details.panels", {"index": 7, "layer": "relu1"}),
    "attribution": ("attribution.maps", {"index": 5, "methods": {"saliency": {}, "occlusion": {"box": 8}},
                                         "target": None}),
    "faithfulness": ("faithfulness.curves", {"index": 5, "methods": {"saliency": {}, "gradcam": {"layer": ""}},
                                             "target": None, "steps": 5, "random_orders": 1}),
    "inversion": ("inversion.reconstruct", {"index": 3, "layer": "conv2", "channel": 4, "method": "deconvnet"}),
    "channels": ("channels.stats", {"layer": "relu1", "k": 9}),
    "weights": ("weights.evolution", {"layer": "conv1", "mode": "auto", "input_channel": 0}),
    "adversarial": ("adversarial.attack", {"index": 11, "method": "fgsm", "epsilon": 8 / 255}),
    "maximize": ("maximize.run", {"objective": ("class", 3), "steps": 6, "n": 1, "seed": 0}),
    "evolution": ("evolution.embed", {"layer": "relu2", "method": "pca", "run": "default"}),
    "neighbours": ("neighbours.nearest", {"index": 9, "layer": "relu2", "features": "auto", "k": 12}),
    "gallery": ("images.selection", {"indices": [3, 1, 4, 1, 5]}),
    "upload": ("uploads.place", {"id": None, "layer": "relu2", "method": "pca", "features": "auto"}),  # id: saved below
}


def _saved_upload() -> str:
    """An uploaded image (a drawn bar, as a PNG file's bytes), saved the way the upload view saves it."""
    from PIL import Image

    from compute import uploads

    pixels = np.zeros((28, 28), dtype=np.uint8)
    pixels[4:24, 12:16] = 255
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    return uploads.save(buffer.getvalue(), "bar.png")["id"]


def _run_in_fresh_interpreter(code: str, names: list[str], out: Path) -> None:
    """Run ``code`` as a script in a new Python and save the variables ``names`` it defines (arrays and dicts of
    arrays) to ``out`` (.npz), flattened with the export's own rule."""
    script = code + textwrap.dedent(f"""
        import numpy as _np
        from components.report import flatten as _flatten
        _np.savez({str(out)!r}, **_flatten({{name: globals()[name] for name in {names!r}}}))
    """)
    completed = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600,
                               env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert completed.returncode == 0, completed.stderr[-3000:]


def test_every_view_with_jobs_has_a_snippet_and_a_test_here():
    from dashboard.views import VIEWS, panel_results

    assert {info.view for info in panel_results.panels(VIEWS)} <= set(snippets.SNIPPETS)
    assert set(snippets.SNIPPETS) == set(REQUESTS)
    assert {view.NAME for view in VIEWS} >= set(snippets.SNIPPETS)
    for view, (job, _params) in REQUESTS.items():
        assert job in snippets.SNIPPETS[view]


def test_snippet_fills_in_settings_and_source():
    source = Source(model="digits-cnn", data="digits", layer="relu1")
    code = snippets.snippet("explore", "explore.scatter", {"layer": "relu2", "method": "tsne", "features": "flat"},
                            source, cache_dir="/tmp/somewhere")
    assert "Source(model='digits-cnn', data='digits', layer='relu1')" in code
    assert "'explore.scatter'" in code and "'method': 'tsne'" in code and "'features': 'flat'" in code
    assert "os.environ.setdefault('FEATURESCOPE_CACHE_DIR', '/tmp/somewhere')" in code
    assert "coords = result['coords']" in code
    compile(code, "<snippet>", "exec")


@pytest.mark.parametrize("view", sorted(REQUESTS))
def test_snippet_runs_in_a_fresh_interpreter_and_returns_the_views_arrays(view, trained_model, cache_root, tmp_path):
    job, params = REQUESTS[view]
    if view == "upload":
        params = {**params, "id": _saved_upload()}
    if view == "evolution":
        from compute import training

        params = {**params, "run": training.DEFAULT_RUN}
    source = Source()
    expected = run(source, job, params)  # what the view's panel receives (the same job, in this process)
    code = snippets.snippet(view, job, json.loads(json.dumps(params)), source, expected, str(cache_root))
    names = snippets.entries(view, job, expected)
    assert names, f"the snippet for {view} names no array"
    out = tmp_path / "out.npz"
    _run_in_fresh_interpreter(code, names, out)
    from components.report import flatten

    wanted = flatten({name: expected[name] for name in names})
    got = np.load(out)
    assert set(got.files) == set(wanted)
    for name, array in wanted.items():
        np.testing.assert_allclose(got[name], array, rtol=1e-5, atol=1e-6, err_msg=f"{view}: {name}")


# ------------------------------------------------------------------------------------------ a researcher's options
# The same snippets for a run with options that differ from every default (--model resnet18 --weights random
# --data FOLDER --image-size 32 --resize 40), each checked against what a live compute process answers the page.

FOLDER_REQUESTS = {
    "explore": ("explore.scatter", {"layer": "layer3.0.relu", "method": "pca", "features": "auto"}),
    "details": ("details.panels", {"index": 2, "layer": "layer2.0.relu_1"}),
    "attribution": ("attribution.maps", {"index": 1, "methods": {"saliency": {}, "gradcam": {"layer": ""}},
                                         "target": None}),
    "inversion": ("inversion.reconstruct", {"index": 3, "layer": "layer1.0.conv1", "channel": 2,
                                            "method": "guided_backprop"}),
    "channels": ("channels.stats", {"layer": "layer1.0.relu", "k": 4}),
    "weights": ("weights.evolution", {"layer": "conv1", "mode": "auto", "input_channel": 0}),
    "adversarial": ("adversarial.attack", {"index": 4, "method": "pgd", "epsilon": 2 / 255, "steps": 3}),
    "maximize": ("maximize.run", {"objective": ("class", 1), "steps": 4, "n": 2, "seed": 3}),
    "neighbours": ("neighbours.nearest", {"index": 5, "layer": "avgpool", "features": "auto", "k": 4}),
    "gallery": ("images.selection", {"indices": [0, 7, 3]}),
    "upload": ("uploads.place", {"id": None, "layer": "avgpool", "method": "pca", "features": "auto"}),
    "evolution": ("evolution.embed", {"layer": "relu1", "method": "pca", "run": "default"}),
    "faithfulness": ("faithfulness.curves", {"index": 2, "methods": {"saliency": {}, "gradcam": {"layer": ""}},
                                             "steps": 5}),
}


@pytest.fixture(scope="module")
def researcher(cache_root, tmp_path_factory):
    """A live compute process on a random resnet18 over a small colour folder, every size option set."""
    from PIL import Image

    from dashboard.service import ComputeService

    folder = tmp_path_factory.mktemp("snippet-folder")
    rng = np.random.default_rng(0)
    for label in ("cats", "dogs"):
        (folder / label).mkdir()
        for k in range(6):
            Image.fromarray(rng.integers(0, 255, (48, 56, 3), dtype=np.uint8)).save(folder / label / f"{k}.png")
    source = Source(model="resnet18", weights="random", data=str(folder), image_size=32, resize=40)
    service = ComputeService.start(source)
    yield service, source
    service.close()


@pytest.mark.parametrize("view", sorted(FOLDER_REQUESTS))
def test_snippet_with_non_default_options_returns_what_the_live_compute_process_answered(view, researcher, cache_root,
                                                                                        tmp_path, trained_model):
    service, source = researcher
    job, params = FOLDER_REQUESTS[view]
    if view == "upload":
        params = {**params, "id": _saved_upload()}
    if view == "evolution":  # only the built-in model has epochs: its own non-default options instead
        from compute import training

        source, params = Source(layer="relu1", device="cpu"), {**params, "run": training.DEFAULT_RUN}
        expected = run(source, job, params)
    else:
        expected = service.run(job, params, timeout=600)
    named = snippets.SNIPPETS[view][job][1]
    assert set(named) <= set(expected), f"{view}: the snippet names entries the result does not have"
    code = snippets.snippet(view, job, json.loads(json.dumps(params)), source, expected, str(cache_root))
    for option in ("weights='random'", "image_size=32", "resize=40") if view != "evolution" else ("layer='relu1'",
                                                                                                  "device='cpu'"):
        assert option in code, f"{view}: the snippet drops {option}"
    names = snippets.entries(view, job, expected)
    out = tmp_path / "out.npz"
    _run_in_fresh_interpreter(code, names, out)
    from components.report import flatten

    wanted = flatten({name: expected[name] for name in names})
    got = np.load(out)
    assert set(got.files) == set(wanted)
    for name, array in wanted.items():
        np.testing.assert_allclose(got[name], array, rtol=1e-5, atol=1e-6, err_msg=f"{view}: {name}")
