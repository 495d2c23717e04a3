"""Draw canonical samples: people in one colour, objects in another, a line per interaction.

Labels are set in a scalable font on a filled tag in their box's colour, sized to the image, so a
picture stays readable at 100 %."""

from __future__ import annotations

import io
from collections.abc import Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw, ImageFont

HUMAN, OBJECT, LINK = (220, 40, 40), (30, 100, 220), (250, 200, 0)
WHITE, INK = (255, 255, 255), (20, 20, 20)


def load_image(sample: dict[str, Any], image_root: Path | str | None = None) -> Image.Image:
    img = sample["image"]
    if img.get("bytes"):
        return Image.open(io.BytesIO(img["bytes"])).convert("RGB")
    return Image.open(Path(image_root or ".") / img["path"]).convert("RGB")


@lru_cache(maxsize=8)
def font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """Pillow's own scalable font (the bitmap one where Pillow lacks FreeType)."""
    return ImageFont.load_default(size=size)


def label(
    draw: ImageDraw.ImageDraw, xy: tuple[float, float], text: str, fill: tuple[int, int, int], size: int
) -> None:
    """``text`` on a tag of colour ``fill`` whose bottom-left corner is ``xy`` (kept inside the image)."""
    f = font(size)
    left, top, right, bottom = draw.textbbox((0, 0), text, font=f)
    pad = max(2, size // 5)
    w, h = right - left + 2 * pad, bottom - top + 2 * pad
    x = min(max(0.0, xy[0]), draw.im.size[0] - w)
    y = min(max(0.0, xy[1] - h), draw.im.size[1] - h)
    draw.rectangle([x, y, x + w, y + h], fill=fill)
    ink = INK if sum(fill) > 500 else WHITE
    draw.text((x + pad - left, y + pad - top), text, fill=ink, font=f)


def draw_sample(sample: dict[str, Any], image_root: Path | str | None = None) -> Image.Image:
    """The sample's image with its boxes (canonical pixels), interaction lines and verbs."""
    im = load_image(sample, image_root)
    d = ImageDraw.Draw(im)
    size = max(15, round(max(im.size) / 28))
    width = max(2, size // 7)
    inst = sample.get("instances") or []
    for a in inst:
        x1, y1, x2, y2 = a["bbox"]
        # canonical edges are continuous; PIL's rectangle is inclusive of its last pixel
        d.rectangle([x1, y1, x2 - 1, y2 - 1], outline=HUMAN if a["is_human"] else OBJECT, width=width)
    for p in sample.get("interactions") or []:
        s = inst[p["subject"]]["bbox"]
        sc = ((s[0] + s[2]) / 2, (s[1] + s[3]) / 2)
        mid = sc
        if p["object"] >= 0:
            o = inst[p["object"]]["bbox"]
            oc = ((o[0] + o[2]) / 2, (o[1] + o[3]) / 2)
            d.line([sc, oc], fill=LINK, width=width)
            mid = ((sc[0] + oc[0]) / 2, (sc[1] + oc[1]) / 2)
        label(d, mid, p["verb"], LINK, size)
    for a in inst:  # labels last: on top of every line
        label(d, (a["bbox"][0], a["bbox"][1]), a["label"], HUMAN if a["is_human"] else OBJECT, size)
    return im


def contact_sheet(images: Sequence[Image.Image], columns: int = 4, cell: int = 320) -> Image.Image:
    """Thumbnails in a grid, for a quick look at many samples."""
    rows = max(1, -(-len(images) // columns))
    sheet = Image.new("RGB", (columns * cell, rows * cell), (255, 255, 255))
    for k, im in enumerate(images):
        thumb = im.copy()
        thumb.thumbnail((cell - 8, cell - 8))
        sheet.paste(thumb, ((k % columns) * cell + 4, (k // columns) * cell + 4))
    return sheet
