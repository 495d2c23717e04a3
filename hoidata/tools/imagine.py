"""The ``imagine`` tool's backends: a view of a region the camera did not fully show.

A generative service (a diffusion outpainter, a BAGEL-style unified model) implements
:class:`ImagineBackend`; :class:`ContextImagine` is the fast, non-generative stand-in used for data
generation and tests.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from PIL import Image

MODES = ("outpaint", "context")


class ImagineBackend(Protocol):
    """What the environment asks of an imagination service.

    ``imagine(image, box, mode)`` gets the scene ``image`` (never modified), a region ``box`` as float
    ``[x1, y1, x2, y2]`` pixels of that image (already validated: inside the image, non-empty) and a
    ``mode`` from :data:`MODES`, and returns a new image the model is shown:

    - ``"outpaint"``: the region with its surroundings, extended beyond the image border where the
      region is cut off (e.g. a person's hands outside the frame), as an outpainting model would;
    - ``"context"``: the region with its surroundings, restricted to what the image shows.

    It should be deterministic for the same inputs (seed a generator from them), so that generated
    training data and RL rollouts agree; it may raise, and the environment reports a tool error.
    The environment downscales the result to its pixel budget.
    """

    def imagine(self, image: Image.Image, box: np.ndarray, mode: str) -> Image.Image: ...


@dataclass(frozen=True)
class ContextImagine:
    """The region grown ``scale`` times around its centre; outpainting mirrors the image at its border."""

    scale: float = 2.0

    def imagine(self, image: Image.Image, box: np.ndarray, mode: str) -> Image.Image:
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
        left, top, right, bottom = grown_window(box, self.scale)
        inside = image.crop((max(0, left), max(0, top), min(image.width, right), min(image.height, bottom)))
        if mode == "context":
            return inside
        if inside.mode not in ("RGB", "RGBA", "L"):
            inside = inside.convert("RGB")
        # only sides past the border are padded, and there the crop's edge is the image's edge
        pixels = np.asarray(inside)
        pad = [
            (max(0, -top), max(0, bottom - image.height)),
            (max(0, -left), max(0, right - image.width)),
        ] + [(0, 0)] * (pixels.ndim - 2)
        return Image.fromarray(np.pad(pixels, pad, mode="symmetric"))


def grown_window(box: np.ndarray, scale: float) -> tuple[int, int, int, int]:
    """The integer window ``(left, top, right, bottom)`` of ``box`` grown ``scale`` times around its
    centre (at least one pixel per side); not clamped to any image."""
    x1, y1, x2, y2 = (float(v) for v in box)
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    hw, hh = max(0.5, (x2 - x1) * scale / 2), max(0.5, (y2 - y1) * scale / 2)
    return math.floor(cx - hw), math.floor(cy - hh), math.ceil(cx + hw), math.ceil(cy + hh)


def imagine_result_text(model_box: np.ndarray, mode: str) -> str:
    """The text that accompanies an imagined view; an outpainted one is flagged as not observed."""
    box = f"[{', '.join(str(int(v)) for v in model_box)}]"
    if mode == "outpaint":
        return f"Imagined view around {box}, extended beyond the image border (generated, not observed)."
    return f"Wider context of {box}."


class NoImagine:
    """No live backend: a region the cache does not hold is a tool error, never a made-up view."""

    def imagine(self, image: Image.Image, box: np.ndarray, mode: str) -> Image.Image:
        raise LookupError("no imagined view of this region (the imagine cache holds none near it)")
