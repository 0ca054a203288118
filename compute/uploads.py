"""A user's own image: checked, saved under the cache directory by its content hash, and made into a model input.

``save(data)`` accepts a PNG or JPEG of at most ``MAX_UPLOAD_BYTES`` and stores its decoded pixels as
``<cache>/uploads/<id>.png`` (``id`` = the hash of the file's bytes, so the same file is the same upload). The web
server calls it (PIL and numpy only, no torch); the compute process reads the file back through the ``upload`` image
variant (``compute.jobs.uploads``, preprocessed by :mod:`compute.upload_inputs`),
so a selection ``{"index": -1, "variant": {"kind": "upload", "id": ...}}`` opens every panel for the upload. Both
processes share the cache directory (the local compute process inherits it).
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import threading
from pathlib import Path

import numpy as np

from compute.errors import UploadError
from compute.paths import cache_dir
from compute.specs.images import clamp_size, thumbnail_shape

MAX_UPLOAD_BYTES = 10 * 1024**2
ACCEPTED_FORMATS = ("PNG", "JPEG")
MAX_PIXELS = 40_000_000  # a small file can still claim a huge canvas (a decompression bomb)
ID_PATTERN = re.compile(r"[0-9a-f]{20}")


def upload_dir() -> Path:
    return cache_dir() / "uploads"


def upload_path(upload_id: str) -> Path:
    """The saved file of upload ``upload_id`` (ValueError for a malformed id, FileNotFoundError when absent)."""
    if not isinstance(upload_id, str) or not ID_PATTERN.fullmatch(upload_id):
        raise UploadError(f"{upload_id!r} is not an upload id")
    path = upload_dir() / f"{upload_id}.png"
    if not path.exists():
        raise FileNotFoundError(f"upload {upload_id} is not on this machine any more; upload the file again")
    return path


def _flattened(image):
    """RGB or grey; transparency composited onto white (a transparent PNG's hidden pixels are often black)."""
    from PIL import Image

    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(white, rgba).convert("RGB")
    return image.convert("L") if image.mode in ("L", "1", "I", "I;16", "F") else image.convert("RGB")


def check(data: bytes, name: str = "the file"):
    """The decoded PIL image of ``data`` if it is a readable PNG or JPEG within the limits, else UploadError."""
    from PIL import Image

    if len(data) > MAX_UPLOAD_BYTES:
        raise UploadError(f"{name} is {len(data) / 1024**2:.1f} MB; the limit is {MAX_UPLOAD_BYTES // 1024**2} MB")
    if not data:
        raise UploadError(f"{name} is empty")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            kind = probe.format
            if kind not in ACCEPTED_FORMATS:
                raise UploadError(f"{name} is a {kind or 'unknown'} image; upload a PNG or JPEG")
            if probe.width * probe.height > MAX_PIXELS:
                raise UploadError(f"{name} is {probe.width}x{probe.height} pixels; the limit is "
                                  f"{MAX_PIXELS // 1_000_000} million")
            probe.verify()  # the structure (chunks, checksums)
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()  # the pixels themselves: a truncated file fails here, not in verify
            return _flattened(opened)
    except UploadError:
        raise
    except Image.DecompressionBombError as error:
        raise UploadError(f"{name} is too large an image ({error})") from error
    except Exception as error:  # PIL raises many kinds (OSError, SyntaxError, struct.error, ...) for bad data
        if isinstance(error, Image.UnidentifiedImageError):
            raise UploadError(f"{name} is not an image; upload a PNG or JPEG") from error
        raise UploadError(f"{name} is damaged and cannot be read ({type(error).__name__})") from error


def save(data: bytes, name: str = "the file") -> dict:
    """Check ``data`` (see :func:`check`) and save its pixels; returns ``{"id", "width", "height", "mode"}``."""
    image = check(data, name)
    upload_id = hashlib.blake2b(data, digest_size=10).hexdigest()
    path = upload_dir() / f"{upload_id}.png"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}-{threading.get_ident()}.tmp")
        image.save(temporary, format="PNG")
        temporary.replace(path)  # atomic: the compute process never reads half a file
    return {"id": upload_id, "width": image.width, "height": image.height, "mode": image.mode}


def load(upload_id: str):
    """The saved upload as a PIL image (grey "L" or "RGB")."""
    from PIL import Image

    with Image.open(upload_path(upload_id)) as opened:
        return _flattened(opened)


def thumbnail_pixels(upload_id: str, size: int) -> np.ndarray:
    """The upload with its longer side ``size`` pixels (16..256): (h, w, C) uint8, C 1 or 3."""
    from PIL import Image

    image = load(upload_id)
    height, width = thumbnail_shape(image.height, image.width, clamp_size(size))
    pixels = np.asarray(image.resize((width, height), Image.BILINEAR), dtype=np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels
