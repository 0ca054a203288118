"""A route that serves small PNGs of data-set images and uploads, so figures and galleries show pictures cheaply.

``GET /_featurescope/thumbnail/<index>.png?size=64`` is data-set image ``index`` with its longer side ``size`` pixels
(clamped to 16..256), as shown (un-normalised). ``GET /_featurescope/thumbnail/upload/<id>.png?size=64`` is an
uploaded image (``compute/uploads.py`` saved it; the server reads it itself: no model, no data set).

The web server holds no data set, so the pixels come from the compute process (job ``images.thumbnails``). One
request fetches a whole block of neighbouring indices and keeps their PNG bytes in a bounded LRU (cachetools'
``LRUCache``, sized in bytes), so the hundreds of requests a gallery or a scatter of images sends in a burst cost a
few jobs, not hundreds. ``prefetch`` fetches an exact list in one job (a random subset of a 50,000-image folder would
otherwise decode whole blocks around each).
"""
from __future__ import annotations

import hashlib
import io
import logging
import threading

import numpy as np
from cachetools import LRUCache
from flask import Response, abort, request

from compute.specs import images as image_sizes
from compute import uploads

log = logging.getLogger("featurescope.thumbnails")
ROUTE = "/_featurescope/thumbnail"
DEFAULT_SIZE = 64
CACHE_BYTES = 64 * 1024**2  # PNG bytes kept in the server: ~30,000 grey 64 px thumbnails, ~6,000 colour ones
JOB_TIMEOUT_S = 120.0
SMALL_IMAGE_VALUES = 64 * 64 * 3  # images up to this size are cheap to read: fetch 256 around the one asked
LARGE_BLOCK, SMALL_BLOCK = 256, 32
BLOCK_PIXELS = 256 * 64 * 64
PREFETCH_CHUNK = 1024
STORE_KEY = "featurescope.thumbnails"


def thumbnail_url(index: int, size: int = DEFAULT_SIZE) -> str:
    """The URL of data-set image ``index`` as a PNG thumbnail whose longer side is ``size`` pixels."""
    return f"{ROUTE}/{int(index)}.png?size={image_sizes.clamp_size(size)}"


def upload_url(upload_id: str, size: int = DEFAULT_SIZE) -> str:
    """The URL of an uploaded image (by its id from ``compute.uploads.save``) as a PNG thumbnail."""
    return f"{ROUTE}/upload/{upload_id}.png?size={image_sizes.clamp_size(size)}"


def encode_png(pixels: np.ndarray) -> bytes:
    """(h, w, C) uint8 with C 1 or 3 -> PNG bytes (grey or RGB)."""
    from PIL import Image

    pixels = np.ascontiguousarray(pixels)
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)  # thumbnails are small: speed over the last few bytes
    return buffer.getvalue()


class ThumbnailStore:
    """PNG bytes of data-set thumbnails by (index, size), fetched from the compute process a block at a time.

    Thread-safe: the server answers on many threads. Two requests in the same block share one job (a lock per block,
    and the service shares identical jobs anyway); the LRU is bounded by ``max_bytes``.
    """

    def __init__(self, service, count: int, image_shape, max_bytes: int = CACHE_BYTES):
        self.service = service
        self.count = int(count)
        self.block = LARGE_BLOCK if int(np.prod(image_shape)) <= SMALL_IMAGE_VALUES else SMALL_BLOCK
        self.max_bytes = max_bytes
        # Bounded by the PNGs' bytes; not thread-safe by itself, so every use holds ``_lock``.
        self._pngs: "LRUCache[tuple[int, int], bytes]" = LRUCache(max_bytes, getsizeof=len)
        self._lock = threading.Lock()
        self._block_locks: dict[tuple[int, int], threading.Lock] = {}
        self.jobs_run = 0  # how many fetches reached the compute process (the tests and the bench read it)

    def _get(self, key: tuple[int, int]) -> bytes | None:
        with self._lock:
            return self._pngs.get(key)  # a hit becomes the most recently used

    def _put_many(self, items: list[tuple[tuple[int, int], bytes]]) -> None:
        with self._lock:
            for key, png in items:
                if key not in self._pngs and len(png) <= self.max_bytes:  # a PNG over the whole budget: not kept
                    self._pngs[key] = png  # evicts the least recently used until the bytes fit

    def _fetch(self, indices: list[int], size: int) -> dict[int, bytes]:
        result = self.service.run("images.thumbnails", {"indices": indices, "size": size}, timeout=JOB_TIMEOUT_S)
        with self._lock:
            self.jobs_run += 1
        pngs = {int(i): encode_png(pixels) for i, pixels in zip(result["indices"], result["images"])}
        self._put_many([((i, size), png) for i, png in pngs.items()])
        return pngs

    def png(self, index: int, size: int = DEFAULT_SIZE) -> bytes:
        """The PNG of image ``index`` at ``size`` (IndexError when out of range)."""
        if not 0 <= index < self.count:
            raise IndexError(f"sample {index} is out of range: the data set has {self.count} images")
        size = image_sizes.clamp_size(size)
        cached = self._get((index, size))
        if cached is not None:
            return cached
        # Fewer images a block at larger sizes: a job's answer stays near 1 M pixels (16 images at 256 px).
        block = max(8, min(self.block, BLOCK_PIXELS // (size * size)))
        start = index - index % block
        block_key = (start, size)
        with self._lock:
            block_lock = self._block_locks.setdefault(block_key, threading.Lock())
        with block_lock:  # a burst of requests in one block waits for one fetch
            cached = self._get((index, size))
            if cached is not None:
                return cached
            pngs = self._fetch(list(range(start, min(start + block, self.count))), size)
        return pngs[index]

    def prefetch(self, indices, size: int = DEFAULT_SIZE) -> int:
        """Fetch the thumbnails of ``indices`` not yet held, exactly those, in jobs of up to 1,024; returns how many
        were fetched. Call it before drawing many scattered thumbnails of a large folder."""
        size = image_sizes.clamp_size(size)
        missing = sorted({int(i) for i in indices if 0 <= int(i) < self.count and self._get((int(i), size)) is None})
        for start in range(0, len(missing), PREFETCH_CHUNK):
            self._fetch(missing[start:start + PREFETCH_CHUNK], size)
        return len(missing)


def _size_argument() -> int:
    try:
        return image_sizes.clamp_size(int(request.args.get("size", DEFAULT_SIZE)))
    except ValueError:
        return DEFAULT_SIZE


def _png_response(png: bytes, cache_control: str, etag: str) -> Response:
    response = Response(png, mimetype="image/png")
    response.headers["Cache-Control"] = cache_control
    response.set_etag(etag)
    return response.make_conditional(request)


def store(app) -> ThumbnailStore:
    """The thumbnail store of an app built by ``create_app`` (for ``prefetch``)."""
    return app.server.config[STORE_KEY]


def prefetcher(app):
    """``fetch(indices, size)``: warm the store before a page asks for many scattered thumbnails (one job instead
    of a block around each). Best effort: a failure only means the browser's requests fetch them one block each."""

    def fetch(indices, size: int = DEFAULT_SIZE) -> None:
        try:
            store(app).prefetch(indices, size)
        except Exception:  # the pictures are an aid; the panel they belong to must still draw
            log.warning("prefetching %d thumbnails failed", len(indices), exc_info=True)

    return fetch


def register(app, context) -> None:
    """Add the thumbnail routes to ``app``'s server."""
    meta = context.meta
    thumbnails = ThumbnailStore(context.service, meta.count, meta.image_shape)
    app.server.config[STORE_KEY] = thumbnails
    # The data set's identity in the ETag: a server restarted on another data set never serves a stale picture.
    data_tag = hashlib.blake2b(f"{meta.model}|{meta.data}|{meta.count}".encode(), digest_size=6).hexdigest()

    @app.server.route(f"{ROUTE}/<int:index>.png")
    def data_thumbnail(index: int):
        size = _size_argument()
        try:
            png = thumbnails.png(index, size)
        except IndexError:
            abort(404)
        except Exception:  # the compute process failed: the picture is missing, the page stays up
            log.exception("thumbnail %s at %s px failed", index, size)
            abort(503)
        return _png_response(png, "private, max-age=3600", f"{data_tag}-{index}-{size}")

    @app.server.route(f"{ROUTE}/upload/<upload_id>.png")
    def upload_thumbnail(upload_id: str):
        size = _size_argument()
        try:
            pixels = uploads.thumbnail_pixels(upload_id, size)
        except (FileNotFoundError, ValueError):
            abort(404)
        # An upload's id is the hash of its content: the same URL always names the same picture.
        return _png_response(encode_png(pixels), "private, max-age=31536000, immutable", f"{upload_id}-{size}")
