"""The one place where box conventions meet.

Canonical boxes are ``[x1, y1, x2, y2]`` in absolute pixels of the original image, 0-based and
continuous: a box covering pixel columns 0..9 inclusive is ``[0, 10]``. Every other convention is
converted here, vectorised over ``(N, 4)`` arrays; ``width``/``height`` may be scalars or ``(N,)``.

Conventions:
  * ``inclusive`` pixel indices, 1-based (official HICO-DET, MATLAB) or 0-based (PPDM trainval):
    the last covered pixel is x2, so its continuous right edge is ``x2 + 1 - base``.
  * ``normalized`` to a scale: 1 (0–1), 100 (HOI-QA grid), 1000 (Qwen2-VL / Qwen3-VL).
  * ``resized``: absolute pixels on the image after ``smart_resize`` (Qwen2.5-VL).
"""

from __future__ import annotations

import math
from enum import StrEnum

import numpy as np

ArrayLike = np.ndarray | list | tuple


class BoxOrigin(StrEnum):
    """How a source file stores pixel boxes."""

    ONE_BASED = "one-based"  # 1-based inclusive pixel indices (official HICO-DET .mat)
    ZERO_BASED = "zero-based"  # 0-based inclusive pixel indices (PPDM trainval_hico.json)
    CONTINUOUS = "continuous"  # already canonical: 0-based continuous edges


def as_boxes(boxes: ArrayLike) -> np.ndarray:
    """``boxes`` as a float ``(N, 4)`` array (one box may be given flat); a wrong shape is a ValueError."""
    arr = np.asarray(boxes, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr.reshape(-1, 4)
    if arr.ndim != 2 or arr.shape[1] != 4:
        raise ValueError(f"boxes must have shape (N, 4), got {arr.shape}")
    return arr


def _scale_xy(boxes: np.ndarray, sx: ArrayLike | float, sy: ArrayLike | float) -> np.ndarray:
    sx = np.asarray(sx, dtype=np.float64).reshape(-1, 1)
    sy = np.asarray(sy, dtype=np.float64).reshape(-1, 1)
    out = boxes.copy()
    out[:, 0::2] *= sx
    out[:, 1::2] *= sy
    return out


def from_inclusive(boxes: ArrayLike, base: int = 1) -> np.ndarray:
    """Inclusive pixel indices (first pixel ``base``) → canonical continuous edges."""
    b = as_boxes(boxes).copy()
    b[:, :2] -= base
    b[:, 2:] += 1 - base
    return b


def to_inclusive(boxes: ArrayLike, base: int = 1) -> np.ndarray:
    """Canonical → inclusive pixel indices (exact inverse of :func:`from_inclusive`)."""
    b = as_boxes(boxes).copy()
    b[:, :2] += base
    b[:, 2:] -= 1 - base
    return b


def from_origin(boxes: ArrayLike, origin: BoxOrigin | str) -> np.ndarray:
    """Source pixel boxes with a declared origin → canonical."""
    origin = BoxOrigin(origin)
    if origin is BoxOrigin.ONE_BASED:
        return from_inclusive(boxes, 1)
    if origin is BoxOrigin.ZERO_BASED:
        return from_inclusive(boxes, 0)
    return as_boxes(boxes).copy()


def to_origin(boxes: ArrayLike, origin: BoxOrigin | str) -> np.ndarray:
    """Canonical → source pixel boxes with the given origin."""
    origin = BoxOrigin(origin)
    if origin is BoxOrigin.ONE_BASED:
        return to_inclusive(boxes, 1)
    if origin is BoxOrigin.ZERO_BASED:
        return to_inclusive(boxes, 0)
    return as_boxes(boxes).copy()


def to_normalized(
    boxes: ArrayLike, width: ArrayLike | float, height: ArrayLike | float, scale: float
) -> np.ndarray:
    """Canonical → relative coordinates on ``[0, scale]`` (unrounded; see :func:`quantize`)."""
    w, h = np.asarray(width, dtype=np.float64), np.asarray(height, dtype=np.float64)
    return _scale_xy(as_boxes(boxes), scale / w, scale / h)


def from_normalized(
    boxes: ArrayLike, width: ArrayLike | float, height: ArrayLike | float, scale: float
) -> np.ndarray:
    """Relative coordinates on ``[0, scale]`` → canonical pixels."""
    w, h = np.asarray(width, dtype=np.float64), np.asarray(height, dtype=np.float64)
    return _scale_xy(as_boxes(boxes), w / scale, h / scale)


def to_resized(
    boxes: ArrayLike,
    width: ArrayLike | float,
    height: ArrayLike | float,
    resized_width: ArrayLike | float,
    resized_height: ArrayLike | float,
) -> np.ndarray:
    """Canonical → absolute pixels on the resized image (Qwen2.5-VL's frame)."""
    rw, rh = np.asarray(resized_width, dtype=np.float64), np.asarray(resized_height, dtype=np.float64)
    return _scale_xy(
        as_boxes(boxes), rw / np.asarray(width, dtype=np.float64), rh / np.asarray(height, np.float64)
    )


def from_resized(
    boxes: ArrayLike,
    width: ArrayLike | float,
    height: ArrayLike | float,
    resized_width: ArrayLike | float,
    resized_height: ArrayLike | float,
) -> np.ndarray:
    """Absolute pixels on the resized image → canonical."""
    rw, rh = np.asarray(resized_width, dtype=np.float64), np.asarray(resized_height, dtype=np.float64)
    return _scale_xy(as_boxes(boxes), np.asarray(width, np.float64) / rw, np.asarray(height, np.float64) / rh)


def quantize(boxes: ArrayLike, high: float | None = None) -> np.ndarray:
    """Round to integers as the models write them (half to even, like Python's ``round``), clamped to
    ``[0, high]`` when ``high`` is given."""
    b = np.rint(as_boxes(boxes))
    if high is not None:
        b = np.clip(b, 0, high)
    return b.astype(np.int64)


def smart_resize(
    height: int, width: int, factor: int = 28, min_pixels: int = 56 * 56, max_pixels: int = 14 * 14 * 4 * 1280
) -> tuple[int, int]:
    """Qwen-VL's resize rule: sides multiples of ``factor``, area within the pixel budget, aspect kept.

    Returns ``(resized_height, resized_width)``, the same as the Qwen processors compute.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if max(height, width) / min(height, width) > 200:
        raise ValueError(
            f"aspect ratio must be at most 200, got {max(height, width) / min(height, width):.1f}"
        )
    h_bar = max(factor, round(height / factor) * factor)
    w_bar = max(factor, round(width / factor) * factor)
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt((height * width) / max_pixels)
        h_bar = max(factor, math.floor(height / beta / factor) * factor)
        w_bar = max(factor, math.floor(width / beta / factor) * factor)
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = math.ceil(height * beta / factor) * factor
        w_bar = math.ceil(width * beta / factor) * factor
    return h_bar, w_bar


def union(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """The smallest box holding both boxes (the 'interaction' box)."""
    a, b = as_boxes(a), as_boxes(b)
    return np.concatenate([np.minimum(a[:, :2], b[:, :2]), np.maximum(a[:, 2:], b[:, 2:])], axis=1)


def smart_resize_many(
    heights: ArrayLike, widths: ArrayLike, factor: int, min_pixels: int, max_pixels: int
) -> tuple[np.ndarray, np.ndarray]:
    """:func:`smart_resize` over arrays of sizes, with the same float operations (so the same result).

    Returns ``(resized_heights, resized_widths)`` as int64 arrays. Sizes must be positive with an
    aspect ratio of at most 200 (checked per image by callers that need a per-record reason).
    """
    h = np.asarray(heights, dtype=np.float64)
    w = np.asarray(widths, dtype=np.float64)
    h_bar = np.maximum(factor, np.round(h / factor) * factor)
    w_bar = np.maximum(factor, np.round(w / factor) * factor)
    area = h_bar * w_bar
    with np.errstate(divide="ignore", invalid="ignore"):
        beta_down = np.sqrt((h * w) / max_pixels)
        beta_up = np.sqrt(min_pixels / (h * w))
        down_h = np.maximum(factor, np.floor(h / beta_down / factor) * factor)
        down_w = np.maximum(factor, np.floor(w / beta_down / factor) * factor)
        up_h = np.ceil(h * beta_up / factor) * factor
        up_w = np.ceil(w * beta_up / factor) * factor
    too_big, too_small = area > max_pixels, area < min_pixels
    out_h = np.where(too_big, down_h, np.where(too_small, up_h, h_bar))
    out_w = np.where(too_big, down_w, np.where(too_small, up_w, w_bar))
    return out_h.astype(np.int64), out_w.astype(np.int64)


def valid_for_resize(heights: ArrayLike, widths: ArrayLike) -> np.ndarray:
    """Which sizes :func:`smart_resize` accepts (positive sides, aspect ratio at most 200)."""
    h = np.asarray(heights, dtype=np.float64)
    w = np.asarray(widths, dtype=np.float64)
    ok = (h > 0) & (w > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ok &= np.maximum(h, w) / np.minimum(h, w) <= 200
    return ok


def iou(a: ArrayLike, b: ArrayLike) -> np.ndarray:
    """Row-wise intersection over union of two ``(N, 4)`` box arrays (0 where both are empty).

    Continuous edges, so no ``+1`` as in the official HICO-DET code: a canonical box already
    covers its last pixel (see :func:`from_inclusive`).
    """
    a, b = as_boxes(a), as_boxes(b)
    iw = np.clip(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0, None)
    ih = np.clip(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0, None)
    inter = iw * ih
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union_area = area_a + area_b - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(union_area > 0, inter / union_area, 0.0)
