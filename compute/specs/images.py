"""Sizes of the small pictures the page shows (thumbnails), without torch: the server builds their URLs."""
from __future__ import annotations

MIN_SIZE, MAX_SIZE = 16, 256


def clamp_size(size: int) -> int:
    """A thumbnail's longer side, clamped to MIN_SIZE..MAX_SIZE pixels."""
    return max(MIN_SIZE, min(MAX_SIZE, int(size)))


def thumbnail_shape(height: int, width: int, size: int) -> tuple[int, int]:
    """(height, width) of an image of ``height`` x ``width`` shrunk or grown so that its longer side is ``size``."""
    scale = size / max(height, width)
    return max(1, round(height * scale)), max(1, round(width * scale))
