"""Export: a result's numbers as CSV / NPZ, the offline HTML report, the export route, and the images on the scatter."""
from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass

import numpy as np
import pytest

from components import report


def _embedding_result(n: int = 40, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    return {"coords": rng.normal(size=(n, 2)).astype(np.float32), "labels": rng.integers(0, 10, n).astype(np.int32),
            "predicted": rng.integers(0, 10, n).astype(np.int32), "accuracy": 0.9, "mode": "flat",
            "values_per_image": 8192, "shape": [32, 16, 16]}


def _attribution_result(seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    return {"image": rng.random((1, 8, 8), dtype=np.float32), "label": 3, "target": 3,
            "maps": {"saliency": {"map": rng.random((8, 8), dtype=np.float32)},
                     "occlusion": {"map": rng.random((8, 8), dtype=np.float32),
                                   "probability": rng.random((8, 8), dtype=np.float32), "clean": 0.75}},
            "untrained": {}, "correlation": {"saliency": 0.12}}


def test_flatten_names_nested_arrays_and_keeps_numbers():
    arrays = report.flatten(_attribution_result())
    assert {"image", "label", "target", "maps.saliency.map", "maps.occlusion.map", "maps.occlusion.probability",
            "maps.occlusion.clean", "correlation.saliency"} == set(arrays)
    assert arrays["maps.occlusion.clean"].item() == 0.75
    rows = report.flatten({"rows": [{"layer": "relu1", "dead": 3}, {"layer": "relu2", "dead": 0}]})
    assert rows["rows.1.layer"].item() == "relu2" and rows["rows.0.dead"].item() == 3


def test_embedding_csv_is_one_row_per_image_with_labels():
    result = _embedding_result()
    rows = list(csv.reader(io.StringIO(report.csv_text(result))))
    assert rows[0] == ["row", "coords.x", "coords.y", "labels", "predicted"]
    assert len(rows) == 1 + 40
    for k, row in enumerate(rows[1:]):  # each written value read back against the arrays, one by one
        assert int(row[0]) == k
        assert float(row[1]) == pytest.approx(float(result["coords"][k, 0]), rel=1e-7)
        assert float(row[2]) == pytest.approx(float(result["coords"][k, 1]), rel=1e-7)
        assert int(row[3]) == result["labels"][k] and int(row[4]) == result["predicted"][k]


def test_map_csv_is_long_form_with_every_value():
    result = _attribution_result()
    rows = list(csv.reader(io.StringIO(report.csv_text(result))))
    assert rows[0] == ["array", "i0", "i1", "i2", "value"]
    rebuilt: dict[str, dict] = {}
    for name, *position, value in rows[1:]:
        index = tuple(int(p) for p in position if p != "")
        rebuilt.setdefault(name, {})[index] = float(value)
    for name, array in report.flatten(result).items():
        assert len(rebuilt[name]) == array.size
        for index in np.ndindex(array.shape):
            assert rebuilt[name][index] == pytest.approx(float(array[index]), rel=1e-7)


def test_npz_holds_every_array():
    result = _attribution_result()
    loaded = np.load(io.BytesIO(report.npz_bytes(result)))
    for name, array in report.flatten(result).items():
        np.testing.assert_array_equal(loaded[name], array)


def test_html_report_inlines_plotly_and_figures_and_survives_script_text():
    figure = {"data": [{"type": "scatter", "x": [1, 2], "y": [3, 4], "name": "</script><b>"}],
              "layout": {"title": {"text": "t"}}}
    sections = [{"title": "Feature distribution", "texts": ["a hint"], "figures": [figure, figure],
                 "images": ["data:image/png;base64,AAAA", "http://elsewhere/x.png"]}]
    text = report.html_report("Report", sections, "/* PLOTLY-JS-SENTINEL */", "projector-dark", ["note"])
    assert text.count("PLOTLY-JS-SENTINEL") == 1
    assert text.count("class='figure'") == 2 and "data:image/png;base64,AAAA" in text
    assert "http://elsewhere" not in text  # only embedded images: the file must open offline
    assert "</script><b>" not in text  # escaped inside the script
    figures = json.loads(re.search(r"const FIGURES = (.*);\n", text).group(1).replace("<\\/", "</"))
    assert figures[0]["data"][0]["name"] == "</script><b>"
    assert "background: #000000" in text  # the theme the page was in


# ------------------------------------------------------------------------------------------------ the route


@dataclass
class _Status:
    state: str
    result: object = None


class _FakeService:
    """The service's surface the export reads: status by key, and submit/wait to ask again."""

    def __init__(self, results: dict):
        self.results, self.submitted, self.requests = results, [], {}

    def request(self, key):
        return self.requests.get(key)

    def status(self, key):
        return _Status("done", self.results[key]) if key in self.results else _Status("missing")

    def submit(self, name, params, holder=None, retry=False):
        self.submitted.append((name, params))
        key = f"{name}-{'0' * 24}"
        self.requests[key] = (name, params)
        self.results[key] = _embedding_result(5)
        return key

    def wait(self, key, timeout):
        return self.status(key)


@pytest.fixture()
def export_app(context):
    import dash

    from dashboard.views import export, panel_results
    from dashboard.views.context import ViewContext

    key = "explore.scatter-" + "ab" * 12
    service = _FakeService({key: _embedding_result()})
    app = dash.Dash(__name__)
    app.layout = dash.html.Div()
    export.register(app, ViewContext(context.config, service, context.meta, context.views))
    return app, service, key, panel_results


def test_route_serves_a_held_result_as_csv_and_npz(export_app):
    app, _service, key, _ = export_app
    client = app.server.test_client()
    answer = client.get(f"/_featurescope/export/{key}.csv")
    assert answer.status_code == 200 and answer.data.decode().startswith("row,coords.x,coords.y,labels,predicted")
    loaded = np.load(io.BytesIO(client.get(f"/_featurescope/export/{key}.npz").data))
    np.testing.assert_array_equal(loaded["coords"], _embedding_result()["coords"])
    assert client.get(f"/_featurescope/export/{key}.exe").status_code == 404
    assert client.get("/_featurescope/export/explore.scatter-NOTAKEY.csv").status_code == 404


def test_route_asks_again_for_a_result_no_longer_held(export_app):
    app, service, _key, panel_results = export_app
    old = "explore.scatter-" + "cd" * 12
    service.requests[old] = ("explore.scatter", {"layer": "relu2"})  # remembered when the panel asked for it
    answer = app.server.test_client().get(f"/_featurescope/export/{old}.csv")
    assert answer.status_code == 200 and service.submitted == [("explore.scatter", {"layer": "relu2"})]
    unknown = app.server.test_client().get("/_featurescope/export/explore.scatter-" + "ef" * 12 + ".csv")
    assert unknown.status_code == 404 and b"no longer held" in unknown.data


def test_number_links_list_only_open_views_with_results():
    from dashboard.views import export, panel_results

    from dashboard.views import VIEWS

    infos = panel_results.panels(VIEWS)
    stores = [None] * len(infos)
    names = [info.panel for info in infos]
    stores[names.index("scatter")] = {"key": "explore.scatter-" + "ab" * 12}
    stores[names.index("channels-stats")] = {"key": "channels.stats-" + "cd" * 12}
    closed = str(export.number_links(VIEWS, stores, open_views=[]))
    assert "explore.scatter-abab" in closed and "channels.stats" not in closed
    both = str(export.number_links(VIEWS, stores, open_views=["channels"]))
    assert "channels.stats-cdcd" in both and ".npz" in both and ".csv" in both


# ------------------------------------------------------------------------------------------------ images on the scatter


def test_subset_of_50000_points_stays_under_the_limit_and_spreads_over_the_layout():
    from dashboard.views.thumbnail_overlay import MAX_IMAGES, image_layout, representative_subset

    rng = np.random.default_rng(0)
    coords = np.concatenate([rng.normal(0, 1, (45_000, 2)), rng.uniform(-8, 8, (5_000, 2))]).astype(np.float32)
    chosen = representative_subset(coords)
    assert 0 < len(chosen) <= MAX_IMAGES and len(np.unique(chosen)) == len(chosen)
    # Brute force: every occupied cell of the 20 x 20 grid keeps exactly one point, the one nearest its centre.
    side = 20
    low, span = coords.min(0).astype(np.float64), np.ptp(coords.astype(np.float64), 0)
    cells = {}
    for i, point in enumerate(coords.astype(np.float64)):
        cell = tuple(np.clip(np.floor((point - low) / span * side).astype(int), 0, side - 1))
        distance = float((((point - low) / span * side - (np.array(cell) + 0.5)) ** 2).sum())
        if cell not in cells or distance < cells[cell][0]:
            cells[cell] = (distance, i)
    assert sorted(i for _, i in cells.values()) == chosen.tolist()
    for size in (1, 2, 5, 12, 25):
        assert len(image_layout(coords, size)) <= MAX_IMAGES


def test_images_sit_at_their_points_and_load_from_the_thumbnail_route():
    from dashboard.thumbnails import thumbnail_url
    from dashboard.views.thumbnail_overlay import image_layout

    coords = np.array([[0.0, 0.0], [10.0, 5.0], [5.0, 2.5]], dtype=np.float32)
    images = image_layout(coords, 10)
    assert len(images) == 3
    by_source = {image["source"]: image for image in images}
    for k, (x, y) in enumerate(coords):
        image = by_source[thumbnail_url(k, 64)]
        assert (image["x"], image["y"]) == (float(x), float(y)) and image["xref"] == "x"
        assert image["sizex"] == pytest.approx(1.0) and image["sizey"] == pytest.approx(0.5)  # 10 % of each span
    assert image_layout(np.zeros((0, 2)), 5) == []
