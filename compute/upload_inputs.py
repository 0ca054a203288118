"""An uploaded image made into a model input like the data set's own images (:mod:`compute.uploads` saved it).

The digits are 8x8 scans of bright strokes on black, upsampled to 32x32, so an upload is turned grey, inverted when
its background is bright, averaged down to 8x8, stretched to [0, 1] and upsampled the same way; any other data set
gets its own size with the folder loader's resize and centre crop.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from compute.data import DIGITS_SIZE
from compute.uploads import load

DIGITS_SCAN = 8


def as_digit(image) -> torch.Tensor:
    """A PIL image -> (1, 32, 32) float32 in [0, 1] like the digits: bright strokes on black, from an 8x8 scan."""
    from PIL import Image

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


def model_input(upload_id: str, data_name: str, dataset) -> torch.Tensor:
    """Upload ``upload_id`` preprocessed for the model of data set ``data_name``: (C, H, W) like its images."""
    image = load(upload_id)
    if data_name == "digits":
        return as_digit(image)
    images, shape = dataset.images, dataset.image_shape
    if shape[0] == 3 and hasattr(images, "size") and hasattr(images, "resize"):
        from compute import data  # an image folder: its own resize and crop (a torchvision model's transforms)

        return data.image_to_tensor(image.convert("RGB"), images.size, images.resize)
    return as_input(image, shape)
