"""The zoom-in tool's crop, shared by chain-of-focus SFT data and the tool environment, so that a
crop in training data is exactly what the tool returns for the same call."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
from PIL import Image

ZOOM_TOOL = "zoom_in"


def zoom_result_text(model_box: Sequence[float] | np.ndarray) -> str:
    """The text that accompanies a crop in the tool's answer: the box rounded as models write it
    (half to even)."""
    return f"Zoomed view of [{', '.join(str(round(float(v))) for v in model_box)}]."


def crop_window(
    box: Sequence[float] | np.ndarray, width: int, height: int, min_size: int
) -> tuple[int, int, int, int]:
    """The integer pixel window ``(left, top, right, bottom)`` a crop of canonical ``box`` covers:
    every pixel the box touches, grown around its centre to at least ``min_size`` per side (capped
    by the image), and kept inside the image."""
    x1, y1, x2, y2 = (float(v) for v in box)
    left, top = max(0, math.floor(x1)), max(0, math.floor(y1))
    right, bottom = min(width, math.ceil(x2)), min(height, math.ceil(y2))
    left, right = _grow(left, right, min(min_size, width), width)
    top, bottom = _grow(top, bottom, min(min_size, height), height)
    return left, top, right, bottom


def _grow(lo: int, hi: int, size: int, limit: int) -> tuple[int, int]:
    if hi - lo >= size:
        return lo, hi
    extra = size - max(0, hi - lo)
    lo = max(0, min(lo, hi) - extra // 2)
    hi = min(limit, lo + size)
    return hi - size, hi


def crop(image: Image.Image, box: np.ndarray, min_size: int = 28) -> Image.Image:
    """The zoomed-in view of ``box`` (canonical pixels of ``image``)."""
    return image.crop(crop_window(box, image.width, image.height, min_size))
