"""Per-class AP against training frequency, as a PNG drawn with Pillow (no plotting dependency).

The picture HOI papers argue with: rare classes on the left, how far behind they are at a glance.
The x axis is logarithmic (training pairs per class, +1 so classes never seen in training show),
rare classes are drawn in orange, classes that do not count in the means are left out, and the
mAP of each group is a dashed line.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
from PIL import Image, ImageDraw

from hoidata.io import read_table

SIZE = (960, 540)
MARGIN = (70, 30, 30, 60)  # left, top, right, bottom
RARE, COMMON, AXIS = (230, 120, 20), (40, 90, 200), (60, 60, 60)


def plot_ap_vs_frequency(
    ap: np.ndarray,
    frequency: np.ndarray,
    rare: np.ndarray,
    scored: np.ndarray,
    path: Path | str,
    *,
    title: str,
    x_label: str = "training pairs per class (+1, log scale)",
) -> Path:
    """Write the scatter plot to ``path`` and return it."""
    img = Image.new("RGB", SIZE, "white")
    d = ImageDraw.Draw(img)
    left, top, right, bottom = MARGIN
    w, h = SIZE[0] - left - right, SIZE[1] - top - bottom
    keep = np.flatnonzero(scored)
    x = np.log10(np.asarray(frequency, np.float64)[keep] + 1)
    x_max = max(1.0, math.ceil(float(x.max()) if len(x) else 1.0))

    def px(xv: float, yv: float) -> tuple[float, float]:
        return left + xv / x_max * w, top + (1 - yv) * h

    d.rectangle([left, top, left + w, top + h], outline=AXIS)
    for decade in range(int(x_max) + 1):  # 1, 10, 100, ... on the x axis
        gx, _ = px(decade, 0)
        d.line([gx, top + h, gx, top + h + 5], fill=AXIS)
        d.text((gx - 8, top + h + 8), f"{10**decade:g}", fill=AXIS)
    for tick in np.linspace(0, 1, 6):
        _, gy = px(0, tick)
        d.line([left - 5, gy, left, gy], fill=AXIS)
        d.text((left - 40, gy - 6), f"{100 * tick:.0f}", fill=AXIS)
    for group, colour in ((True, RARE), (False, COMMON)):
        members = keep[np.asarray(rare, bool)[keep] == group]
        if not len(members):
            continue
        mean = float(np.mean(ap[members]))
        _, gy = px(0, mean)
        for sx in range(left, left + w, 12):  # dashed mean line
            d.line([sx, gy, min(sx + 6, left + w), gy], fill=colour)
        for k in members:
            cx, cy = px(math.log10(float(frequency[k]) + 1), float(ap[k]))
            d.ellipse([cx - 3, cy - 3, cx + 3, cy + 3], outline=colour, fill=colour)
    d.text((left, 8), title, fill=AXIS)
    d.text((left + w // 2 - 120, SIZE[1] - 22), x_label, fill=AXIS)
    d.text((8, top + h // 2), "AP %", fill=AXIS)
    lx, ly = left + w - 250, top + 10  # legend: drawn marks (the default font has no bullet glyph)
    for label, colour in (("rare", RARE), ("non-rare", COMMON)):
        d.ellipse([lx, ly, lx + 6, ly + 6], fill=colour)
        d.text((lx + 10, ly - 3), label, fill=AXIS)
        lx += 20 + 7 * len(label)
    d.line([lx, ly + 3, lx + 6, ly + 3], fill=AXIS)
    d.line([lx + 9, ly + 3, lx + 15, ly + 3], fill=AXIS)
    d.text((lx + 20, ly - 3), "group mAP", fill=AXIS)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    img.save(out)
    return out


def training_frequency(train_dir: Path | str, num_classes: int) -> np.ndarray:
    """Interactions per HOI class in a canonical training dataset."""
    interactions = read_table(train_dir, ["interactions"]).column("interactions").combine_chunks()
    hoi = pc.list_flatten(interactions).field("hoi_id").to_numpy(zero_copy_only=False)
    hoi = hoi[(hoi >= 0) & (hoi < num_classes)]
    return np.bincount(hoi.astype(np.int64), minlength=num_classes)
