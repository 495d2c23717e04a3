"""What every generative imagine backend is asked to fill: a canvas and a mask, decided here once.

``outpaint``: the region grown ``scale`` times around its centre (the window ContextImagine uses);
the part of the window the image covers is pasted in, the rest (beyond the image border) is masked
for generation. ``edit``: the same window, clamped to the image, with the region itself masked: the
region is regenerated from the prompt (an occluder removed, a hidden hand completed). ``context``
needs no generation: the window clamped to the image. After generation the known pixels are pasted
back, so only the masked part of a view is ever made up.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
from PIL import Image

from hoidata.tools.imagine import grown_window

MODES = ("outpaint", "context", "edit")


@dataclass(frozen=True)
class Canvas:
    image: Image.Image  # RGB, the window's size; masked pixels are grey
    mask: Image.Image  # L: 255 where the backend generates, 0 where pixels are known
    window: tuple[int, int, int, int]  # (left, top, right, bottom) in the source image's pixels

    @property
    def needs_generation(self) -> bool:
        return bool(np.asarray(self.mask).any())

    def composite(self, generated: Image.Image) -> Image.Image:
        """``generated`` (resized to the canvas) where masked, the known pixels everywhere else."""
        generated = generated.convert("RGB").resize(self.image.size, Image.Resampling.BICUBIC)
        return Image.composite(generated, self.image, self.mask)


def view_window(size: tuple[int, int], box: np.ndarray, mode: str, scale: float) -> tuple[int, int, int, int]:
    """The view's extent in the image's pixels: beyond the border only when outpainting."""
    if mode not in MODES:
        raise ValueError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    left, top, right, bottom = grown_window(box, scale)
    if mode != "outpaint":
        left, top, right, bottom = max(0, left), max(0, top), min(size[0], right), min(size[1], bottom)
    return left, top, right, bottom


def make_canvas(image: Image.Image, box: np.ndarray, mode: str, scale: float = 2.0) -> Canvas:
    """The canvas of ``mode`` for ``box`` (float pixels of ``image``)."""
    image = image.convert("RGB")
    left, top, right, bottom = view_window(image.size, box, mode, scale)
    size = (right - left, bottom - top)
    canvas = Image.new("RGB", size, (127, 127, 127))
    canvas.paste(
        image.crop((max(0, left), max(0, top), min(image.width, right), min(image.height, bottom))),
        (max(0, -left), max(0, -top)),
    )
    mask = np.full((size[1], size[0]), 255 if mode == "outpaint" else 0, np.uint8)
    if mode == "outpaint":
        mask[
            max(0, -top) : max(0, -top) + min(image.height, bottom) - max(0, top),
            max(0, -left) : max(0, -left) + min(image.width, right) - max(0, left),
        ] = 0
    elif mode == "edit":
        x1, y1, x2, y2 = (float(v) for v in box)
        mask[
            int(np.floor(y1)) - top : int(np.ceil(y2)) - top,
            int(np.floor(x1)) - left : int(np.ceil(x2)) - left,
        ] = 255
    return Canvas(canvas, Image.fromarray(mask, "L"), (left, top, right, bottom))


def working_size(width: int, height: int, long_side: int) -> tuple[int, int]:
    """The size a diffusion model generates at: the long side ``long_side``, both multiples of 8."""
    s = long_side / max(width, height)
    return max(8, round(width * s / 8) * 8), max(8, round(height * s / 8) * 8)


def batch_shape(width: int, height: int, long_side: int) -> tuple[int, int]:
    """The padded size a canvas of working size ``width`` x ``height`` is generated at, with the other
    canvases of its shape in one pipeline call: the short side rounded up to a multiple of an eighth
    of ``long_side`` (and of 8), at most the long side, which stays. At 512 px the outpainting canvases
    of the demo's scenes fall in 7 shapes instead of 24 working sizes, so that ``batch_size`` requests
    do share a call; the padding (less than an eighth of the long side) is generated too, and
    cropped off."""
    step = max(8, long_side // 8 // 8 * 8)
    if width >= height:
        return width, min(width, -(-height // step) * step)
    return min(height, -(-width // step) * step), height


def request_seed(key: str, box: np.ndarray, mode: str, seed: int = 0) -> int:
    """A 31-bit seed from (image key, box, mode, seed): the same request gives the same view."""
    text = f"{key}|{','.join(f'{float(v):.2f}' for v in box)}|{mode}|{seed}"
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little") % (2**31 - 1)


def image_key(image: Image.Image) -> str:
    """A key of an image's pixels, for requests that come without a sample id (live tool calls)."""
    return hashlib.blake2b(image.tobytes(), digest_size=16).hexdigest()


def prompt_for(label: str, question: str | None = None) -> str:
    """The generation prompt: the region's label (and the question when one is asked)."""
    what = label.replace("_", " ").strip() or "the scene"
    ask = f" {question.strip()}" if question and question.strip() else ""
    return f"{what}, shown in full, a natural continuation of the photo.{ask}"
