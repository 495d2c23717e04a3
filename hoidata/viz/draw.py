"""Draw canonical samples: people in one colour, objects in another, a line per interaction."""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

HUMAN, OBJECT, LINK = (230, 60, 60), (40, 120, 230), (250, 200, 0)


def load_image(sample: dict[str, Any], image_root: Path | str | None = None) -> Image.Image:
    img = sample["image"]
    if img.get("bytes"):
        return Image.open(io.BytesIO(img["bytes"])).convert("RGB")
    return Image.open(Path(image_root or ".") / img["path"]).convert("RGB")


def draw_sample(sample: dict[str, Any], image_root: Path | str | None = None) -> Image.Image:
    """The sample's image with its boxes (canonical pixels) and interaction lines and verbs."""
    im = load_image(sample, image_root)
    d = ImageDraw.Draw(im)
    inst = sample.get("instances") or []
    for a in inst:
        x1, y1, x2, y2 = a["bbox"]
        # canonical edges are continuous; PIL's rectangle is inclusive of its last pixel
        d.rectangle([x1, y1, x2 - 1, y2 - 1], outline=HUMAN if a["is_human"] else OBJECT, width=2)
        d.text((x1 + 3, y1 + 2), a["label"], fill=HUMAN if a["is_human"] else OBJECT)
    for p in sample.get("interactions") or []:
        s = inst[p["subject"]]["bbox"]
        sc = ((s[0] + s[2]) / 2, (s[1] + s[3]) / 2)
        if p["object"] >= 0:
            o = inst[p["object"]]["bbox"]
            oc = ((o[0] + o[2]) / 2, (o[1] + o[3]) / 2)
            d.line([sc, oc], fill=LINK, width=2)
            mid = ((sc[0] + oc[0]) / 2, (sc[1] + oc[1]) / 2)
        else:
            mid = sc
        d.text(mid, p["verb"], fill=LINK)
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
