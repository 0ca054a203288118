"""The thumbnail route: the PNG it serves is the data-set image resized; bursts cost a few jobs; bad asks are 404."""
from __future__ import annotations

import io
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import dash
import numpy as np
import pytest
from PIL import Image

from compute import uploads
from compute.jobs.table import run
from compute.specs.source import Source
from dashboard import thumbnails
from dashboard.views.context import ViewContext


class InProcessService:
    """The service's ``run`` with the job run in this process, counting the jobs."""

    def __init__(self):
        self.calls = []
        self._lock = threading.Lock()

    def run(self, name, params, timeout=None):
        with self._lock:
            self.calls.append((name, params))
        return run(Source(), name, params)


@pytest.fixture()
def served(context):
    app = dash.Dash(__name__)
    app.layout = dash.html.Div()
    service = InProcessService()
    thumbnails.register(app, ViewContext(context.config, service, context.meta, context.views))
    return app.server.test_client(), service, app


def decoded(response) -> np.ndarray:
    assert response.status_code == 200, response.status_code
    assert response.mimetype == "image/png"
    return np.asarray(Image.open(io.BytesIO(response.data)))


def reference(image: np.ndarray, size: int) -> np.ndarray:
    """PIL's antialiased bilinear resize of the float image (an independent implementation), to grey levels."""
    grey = Image.fromarray(image[0].astype(np.float32) * 255.0, mode="F")
    return np.asarray(grey.resize((size, size), Image.BILINEAR), dtype=np.float32)


def test_a_thumbnail_at_the_images_own_size_is_its_pixels(served, digits):
    client, _, _ = served
    pixels = decoded(client.get("/_featurescope/thumbnail/5.png?size=32"))
    expected = np.round(digits.images[5, 0].numpy() * 255).astype(np.uint8)
    np.testing.assert_array_equal(pixels, expected)


@pytest.mark.parametrize("size", [16, 64, 100])
def test_a_thumbnail_is_the_image_resized(served, digits, size):
    client, _, _ = served
    pixels = decoded(client.get(f"/_featurescope/thumbnail/42.png?size={size}")).astype(np.float32)
    assert pixels.shape == (size, size)
    difference = np.abs(pixels - reference(digits.images[42].numpy(), size))
    assert difference.max() <= 2.0 and difference.mean() < 0.6


def test_thumbnail_url_names_the_route(served, digits):
    client, _, _ = served
    url = thumbnails.thumbnail_url(7, 48)
    assert url == "/_featurescope/thumbnail/7.png?size=48"
    assert decoded(client.get(url)).shape == (48, 48)


def test_a_burst_of_500_thumbnails_costs_two_jobs(served):
    client, service, _ = served
    with ThreadPoolExecutor(16) as pool:
        responses = list(pool.map(lambda i: client.get(f"/_featurescope/thumbnail/{i}.png?size=40"), range(500)))
    assert all(response.status_code == 200 for response in responses)
    thumbnail_jobs = [params for name, params in service.calls if name == "images.thumbnails"]
    assert len(thumbnail_jobs) == 2  # blocks 0..255 and 256..511
    assert thumbnail_jobs[0]["size"] == 40


def test_sizes_are_clamped_and_pictures_cached_by_the_browser(served):
    client, _, _ = served
    response = client.get("/_featurescope/thumbnail/3.png?size=5000")
    assert decoded(response).shape == (256, 256)
    assert "max-age" in response.headers["Cache-Control"]
    again = client.get("/_featurescope/thumbnail/3.png?size=5000", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304
    assert decoded(client.get("/_featurescope/thumbnail/3.png?size=abc")).shape == (64, 64)


def test_an_index_out_of_range_is_not_found(served, digits):
    client, _, _ = served
    assert client.get(f"/_featurescope/thumbnail/{len(digits)}.png").status_code == 404
    # No route matches a negative index (Dash's own catch-all may answer with its page, never a picture).
    assert client.get("/_featurescope/thumbnail/-1.png").mimetype != "image/png"


def test_the_store_keeps_within_its_byte_limit_and_prefetches_exactly(context, digits):
    service = InProcessService()
    store = thumbnails.ThumbnailStore(service, len(digits), digits.image_shape, max_bytes=20_000)
    store.png(0, 64)
    assert sum(len(png) for png in store._pngs.values()) <= 20_000
    assert store.prefetch([1000, 1500, 1500, 1700], 32) == 3
    assert service.calls[-1] == ("images.thumbnails", {"indices": [1000, 1500, 1700], "size": 32})
    assert store.prefetch([1000], 32) == 0  # held already: no job


def test_the_store_drops_the_least_recently_used_thumbnail_first():
    """A store with room for two PNGs: asking for the older one again makes the other the one a third one evicts."""

    class Fixed:
        """A service answering each index with a PNG of a fixed size (zeros)."""

        def __init__(self):
            self.calls = 0

        def run(self, name, params, timeout=None):
            self.calls += 1
            return {"indices": params["indices"], "images": [np.zeros((4, 4, 1), np.uint8)] * len(params["indices"])}

    size = len(thumbnails.encode_png(np.zeros((4, 4, 1), np.uint8)))
    service = Fixed()
    store = thumbnails.ThumbnailStore(service, 1000, (1, 4, 4), max_bytes=2 * size)
    store.prefetch([0]), store.prefetch([1])
    store.png(0)  # 0 is now the most recently used
    store.prefetch([2])  # room for two: 1 goes
    assert sorted(index for index, _size in store._pngs) == [0, 2]
    calls = service.calls
    store.png(0), store.png(2)
    assert service.calls == calls  # both still held: no job
    store.png(1)  # dropped: fetched again (with its block)
    assert service.calls == calls + 1


def test_an_upload_is_served_from_its_saved_file(served):
    client, _, _ = served
    picture = np.zeros((30, 60, 3), np.uint8)
    picture[:, 30:] = [255, 0, 0]
    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG")
    saved = uploads.save(buffer.getvalue(), "red.png")
    pixels = decoded(client.get(thumbnails.upload_url(saved["id"], 60)))
    np.testing.assert_array_equal(pixels, picture)
    assert client.get("/_featurescope/thumbnail/upload/0123456789abcdef0123.png").status_code == 404
    assert client.get("/_featurescope/thumbnail/upload/..%2Fsecret.png").mimetype != "image/png"
    assert client.get("/_featurescope/thumbnail/upload/not-an-id.png").status_code == 404


def test_the_job_returns_uint8_in_the_order_asked(context, digits):
    result = run(Source(), "images.thumbnails", {"indices": [9, 2], "size": 32})
    assert result["images"].dtype == np.uint8 and result["images"].shape == (2, 32, 32, 1)
    np.testing.assert_array_equal(result["indices"], [9, 2])
    np.testing.assert_array_equal(result["images"][1, ..., 0], np.round(digits.images[2, 0].numpy() * 255))
