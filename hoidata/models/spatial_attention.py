"""What each box token of a spatial-linking model looks at, as numbers and as a picture.

One forward of a sample's prompt records, for every ``<|box_end|>``, the module's attention over
the visual tokens inside its box (:class:`BoxAttention`: head-averaged, scattered back onto the
image's merged grid, zero outside the box by construction). :func:`render_panels` draws one panel
per box (person, object, union): the image dimmed outside the box, the attention upsampled onto it
as a heat map (cells kept sharp: they are the model's resolution), the box outlined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from hoidata.errors import HoidataError
from hoidata.models.spatial_boxes import MergedGrid
from hoidata.sft.spatial_prompt import REGIONS

PANEL_HEIGHT = 300
TITLE_HEIGHT = 26
OUTSIDE_DIM = 0.55  # brightness kept outside the box
HEAT_ALPHA = 0.7
OUTLINE = (0, 220, 255)


@dataclass
class BoxAttention:
    """One box token's attention: head mean over the merged grid (``grid.rows × grid.cols``, sums to 1)."""

    region: str
    box: list[float]  # as written, in the profile's frame
    grid: MergedGrid
    cells: np.ndarray  # the visual tokens inside the box (first frame's indices)
    weights: np.ndarray  # (rows, cols)
    heads: np.ndarray  # (heads, cells): every head's weights over the box's cells

    @property
    def peak(self) -> float:
        return float(self.weights.max())

    @property
    def entropy(self) -> float:
        """Of the head-mean attention, in nats: log(cells) when uniform, 0 on one cell."""
        p = self.weights[self.weights > 0]
        return float(-(p * np.log(p)).sum())


def box_attention(model: Any, processor: Any, image: Image.Image, question: str) -> list[BoxAttention]:
    """Run the prompt ``[image, question]`` once and return every linked box's attention, in order."""
    import torch

    from hoidata.models.spatial_linking import find_linker

    linker = find_linker(model)
    if linker is None:
        raise HoidataError("the model carries no spatial-linking module")
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    text = processor.apply_chat_template(messages, add_generation_prompt=True)
    device = model.get_input_embeddings().weight.device
    inputs = processor(text=[text], images=[image], return_tensors="pt").to(device)
    linker.record, linker.recorded = True, []
    try:
        with torch.no_grad():
            model(**inputs)
    finally:
        linker.record = False
    found = []
    for k, record in enumerate(linker.recorded):
        box, heads = record["box"], record["weights"]
        flat = np.zeros(box.grid.tokens, np.float64)
        np.add.at(flat, box.cells, heads.mean(axis=0))
        weights = flat.reshape(box.grid.frames, box.grid.rows, box.grid.cols).sum(axis=0)
        first = box.cells[box.cells < box.grid.rows * box.grid.cols]
        region = REGIONS[k] if k < len(REGIONS) else f"box {k}"
        found.append(BoxAttention(region, box.box, box.grid, first, weights, heads))
    linker.recorded = []
    return found


def heat_colors(t: np.ndarray) -> np.ndarray:
    """A black → red → yellow → white ramp for values in [0, 1] (uint8 RGB)."""
    t = np.clip(t, 0.0, 1.0)[..., None]
    stops = np.array([[0, 0, 0], [200, 20, 0], [255, 210, 0], [255, 255, 230]], np.float64)
    scaled = t * (len(stops) - 1)
    low = np.floor(scaled).astype(int).clip(0, len(stops) - 2)
    frac = scaled - low
    return (stops[low[..., 0]] * (1 - frac) + stops[low[..., 0] + 1] * frac).astype(np.uint8)


def render_panel(
    image: Image.Image, attention: BoxAttention, canonical_box: list[float], height: int
) -> Image.Image:
    """The image at ``height`` pixels with ``attention`` over it and its box outlined, under a title."""
    width = max(1, round(image.width * height / image.height))
    base = np.asarray(image.convert("RGB").resize((width, height), Image.Resampling.BILINEAR), np.float64)
    weights = attention.weights / max(attention.peak, 1e-12)
    heat = np.asarray(
        Image.fromarray((weights * 255).astype(np.uint8)).resize((width, height), Image.Resampling.NEAREST),
        np.float64,
    )
    inside = np.asarray(
        Image.fromarray(((attention.weights > 0) * 255).astype(np.uint8)).resize(
            (width, height), Image.Resampling.NEAREST
        ),
        bool,
    )[..., None]
    colors = heat_colors(heat / 255).astype(np.float64)
    blended = np.where(inside, base * (1 - HEAT_ALPHA) + colors * HEAT_ALPHA, base * OUTSIDE_DIM)
    panel = Image.new("RGB", (width, height + TITLE_HEIGHT), (255, 255, 255))
    panel.paste(Image.fromarray(blended.astype(np.uint8)), (0, TITLE_HEIGHT))
    draw = ImageDraw.Draw(panel)
    sx, sy = width / image.width, height / image.height
    x1, y1, x2, y2 = canonical_box
    draw.rectangle(
        [
            x1 * sx,
            TITLE_HEIGHT + y1 * sy,
            max(x1 * sx, x2 * sx - 1),
            TITLE_HEIGHT + max(y1 * sy, y2 * sy - 1),
        ],
        outline=OUTLINE,
        width=2,
    )
    title = f"{attention.region}: peak {attention.peak:.2f} over {len(attention.cells)} cells"
    draw.text((6, 5), title, fill=(20, 20, 20), font=_font(14))
    return panel


def render_panels(
    image: Image.Image,
    attentions: list[BoxAttention],
    canonical_boxes: list[list[float]],
    caption: str = "",
    height: int = PANEL_HEIGHT,
) -> Image.Image:
    """One picture: a panel per box side by side (person, object, union), ``caption`` underneath."""
    panels = [render_panel(image, a, b, height) for a, b in zip(attentions, canonical_boxes, strict=True)]
    gap, foot = 8, 24 if caption else 0
    width = sum(p.width for p in panels) + gap * (len(panels) + 1)
    sheet = Image.new("RGB", (width, height + TITLE_HEIGHT + 2 * gap + foot), (255, 255, 255))
    x = gap
    for p in panels:
        sheet.paste(p, (x, gap))
        x += p.width + gap
    if caption:
        ImageDraw.Draw(sheet).text(
            (gap, height + TITLE_HEIGHT + gap + 4), caption, fill=(90, 90, 90), font=_font(12)
        )
    return sheet


def _font(size: int) -> Any:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without scalable default font
        return ImageFont.load_default()
