"""A user's own image: checked, saved under the cache directory by its content hash, and made into a model input.

``save(data)`` accepts a PNG or JPEG of at most ``MAX_UPLOAD_BYTES`` and stores its decoded pixels as
``<cache>/uploads/<id>.png`` (``id`` = the hash of the file's bytes, so the same file is the same upload). The web
server calls it (PIL only, no model); the compute process reads the file back through the ``upload`` image variant,
so a selection ``{"index": -1, "variant": {"kind": "upload", "id": ...}}`` opens every panel for the upload. Both
processes share the cache directory (the local compute process inherits it).

Preprocessing follows the data set: the digits are 8x8 scans of bright strokes on black, upsampled to 32x32, so an
upload is turned grey, inverted when its background is bright, averaged down to 8x8, stretched to [0, 1] and
upsampled the same way; any other data set gets its own size with the folder loader's resize and centre crop.
"""
from __future__ import annotations

import hashlib
import io
import os
import re
import threading
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from compute.cache import cache_dir
from compute.workspace import job, scaled, variant

MAX_UPLOAD_BYTES = 10 * 1024**2
ACCEPTED_FORMATS = ("PNG", "JPEG")
MAX_PIXELS = 40_000_000  # a small file can still claim a huge canvas (a decompression bomb)
ID_PATTERN = re.compile(r"[0-9a-f]{20}")
DIGITS_SCAN = 8


class UploadError(ValueError):
    """An upload that cannot be used, with a message for the user."""


def upload_dir() -> Path:
    return cache_dir() / "uploads"


def upload_path(upload_id: str) -> Path:
    """The saved file of upload ``upload_id`` (ValueError for a malformed id, FileNotFoundError when absent)."""
    if not isinstance(upload_id, str) or not ID_PATTERN.fullmatch(upload_id):
        raise ValueError(f"{upload_id!r} is not an upload id")
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

    from compute.images import clamp_size, thumbnail_shape

    image = load(upload_id)
    height, width = thumbnail_shape(image.height, image.width, clamp_size(size))
    pixels = np.asarray(image.resize((width, height), Image.BILINEAR), dtype=np.uint8)
    return pixels[..., None] if pixels.ndim == 2 else pixels


def as_digit(image) -> torch.Tensor:
    """A PIL image -> (1, 32, 32) float32 in [0, 1] like the digits: bright strokes on black, from an 8x8 scan."""
    from PIL import Image

    from compute.data import DIGITS_SIZE

    grey = np.asarray(image.convert("L"), dtype=np.float32) / 255.0
    border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
    if border.mean() > 0.5:  # dark ink on light paper: the digits are the other way round
        grey = 1.0 - grey
    scan = np.asarray(Image.fromarray(grey, mode="F").resize((DIGITS_SCAN, DIGITS_SCAN), Image.BOX), np.float32)
    low, high = float(scan.min()), float(scan.max())
    scan = (scan - low) / (high - low) if high > low else np.zeros_like(scan)
    small = torch.from_numpy(scan)[None, None]
    image = F.interpolate(small, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False)
    return image[0].clamp_(0.0, 1.0).contiguous()


def as_input(image, shape) -> torch.Tensor:
    """A PIL image -> (C, H, W) float32 in [0, 1] of the data set's ``shape``: shorter side resized, centre-cropped
    (the folder loader's way), grey for one channel."""
    from PIL import Image

    channels, height, width = (int(value) for value in shape)
    image = image.convert("L" if channels == 1 else "RGB")
    scale = max(height / image.height, width / image.width)
    resized = image.resize((max(width, round(image.width * scale)), max(height, round(image.height * scale))),
                           Image.BILINEAR)
    left, top = (resized.width - width) // 2, (resized.height - height) // 2
    pixels = np.asarray(resized.crop((left, top, left + width, top + height)), dtype=np.float32) / 255.0
    tensor = torch.from_numpy(pixels)
    return (tensor[None] if channels == 1 else tensor.permute(2, 0, 1)).contiguous()


def model_input(workspace, upload_id: str) -> torch.Tensor:
    """Upload ``upload_id`` preprocessed for ``workspace``'s model: (C, H, W) like the data set's images."""
    image = load(upload_id)
    if workspace.source.data == "digits":
        return as_digit(image)
    images, shape = workspace.dataset.images, workspace.dataset.image_shape
    if shape[0] == 3 and hasattr(images, "size") and hasattr(images, "resize"):
        from compute import data  # an image folder: its own resize and crop (a torchvision model's transforms)

        return data.image_to_tensor(image.convert("RGB"), images.size, images.resize)
    return as_input(image, shape)


@variant("upload")
def upload_image(workspace, index: int, id: str) -> torch.Tensor:  # noqa: A002  (the selection's own key)
    """The uploaded image ``id`` as the model sees it; ``index`` is ignored (an upload is no data-set image)."""
    try:
        return model_input(workspace, id)
    except FileNotFoundError as error:
        raise UploadError(str(error)) from error


@job("uploads.place")
def place_job(workspace, progress, id: str, layer: str, method: str, features: str = "auto") -> dict:  # noqa: A002
    """The upload's class probabilities and its position in the scatter of ``layer`` (``method``, ``features`` as
    ``explore.scatter``): ``point`` [x, y] or None with ``placement_message``; ``probabilities`` (K,);
    ``image`` (C, H, W) the model's input."""
    from compute import activations, embedding as layouts

    image = upload_image(workspace, -1, id).float()
    dataset = workspace.dataset
    with workspace.lock:
        model = workspace.model(progress=scaled(progress, 0.0, 0.1))
        outputs = activations.single(model, image, [layer])
        mode = layouts.feature_mode(tuple(outputs[layer].shape), features)
        vector = layouts.features_of(model, image[None], layer, mode)
        layouts.layer_reduction(model, dataset, layer, mode, progress=scaled(progress, 0.1, 0.4))
    result = {"image": image.numpy(), "probabilities": torch.softmax(outputs["__logits__"].flatten(), 0).numpy(),
              "point": None, "placement_message": None}
    layout = layouts.layer_layout(model, dataset, layer, method, mode, progress=scaled(progress, 0.4, 0.95))
    try:
        result["point"] = layout.place(vector)[0].tolist()
    except layouts.CannotPlace as error:
        result["placement_message"] = str(error)
    return result
