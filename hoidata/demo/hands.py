"""Hand-object scenes in HOI-QA's layouts, drawn by hoidata itself (egocentric: two hands, objects).

Each image shows a left and a right hand (skin-coloured boxes near the bottom edge, as a camera on
the head sees them) and two or three objects, one held in a hand. The annotations are written as
HOI-QA's train file is: LLaVA-like conversations whose boxes are ``{<x1><y1><x2><y2>}`` on a 0-100
grid, questions tagged ``[refer]`` / ``[identify]`` / ``[vqa]`` from the reference's templates.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

OBJECTS = {
    "knife": (170, 170, 180),
    "cup": (200, 120, 40),
    "bowl": (240, 240, 235),
    "spoon": (120, 120, 130),
    "plate": (60, 120, 200),
    "sponge": (230, 210, 40),
}
SKIN = (224, 172, 140)


def _grid(box: list[int], width: int, height: int) -> str:
    x1, y1, x2, y2 = box
    g = [round(x1 * 100 / width), round(y1 * 100 / height), round(x2 * 100 / width), round(y2 * 100 / height)]
    return "{" + "".join(f"<{v}>" for v in g) + "}"


def draw_hands(
    rng: random.Random, index: int, width: int = 320, height: int = 240
) -> tuple[Image.Image, dict]:
    """One kitchen-counter image and its HOI-QA train record (grid boxes rounded from these pixels:
    the grid is coarse, so boxes are drawn on grid lines to make the grid exact)."""
    step_x, step_y = width / 100, height / 100  # 3.2 x 2.4 px per grid unit

    def box(gx: int, gy: int, gw: int, gh: int) -> list[int]:
        return [round(gx * step_x), round(gy * step_y), round((gx + gw) * step_x), round((gy + gh) * step_y)]

    im = Image.new(
        "RGB", (width, height), (rng.randint(150, 190), rng.randint(120, 150), rng.randint(90, 110))
    )
    d = ImageDraw.Draw(im)
    names = rng.sample(sorted(OBJECTS), 3)
    held, free = names[0], names[1:]
    hand_side = rng.choice(["right", "left"])
    lx, rx, hy = rng.randint(8, 18), rng.randint(62, 72), rng.randint(62, 70)
    left, right = box(lx, hy, 18, 26), box(rx, hy, 18, 26)
    holding = right if hand_side == "right" else left
    held_box = box((rx if hand_side == "right" else lx) + 4, hy - 14, 10, 20)
    free_boxes = [
        box(rng.randint(5, 30), rng.randint(8, 30), 16, 20),
        box(rng.randint(55, 78), rng.randint(8, 30), 16, 20),
    ]
    for name, b in zip(free, free_boxes, strict=True):
        d.rectangle(b, fill=OBJECTS[name], outline=(20, 20, 20), width=2)
    for b in (left, right):
        d.rounded_rectangle(b, radius=8, fill=SKIN, outline=(120, 80, 60), width=2)
    d.rectangle(held_box, fill=OBJECTS[held], outline=(20, 20, 20), width=2)
    g = lambda b: _grid(b, width, height)  # noqa: E731
    turns = [
        (f"<image>[refer] Where is the {free[0]}?", g(free_boxes[0])),
        (f"[identify] {g(free_boxes[1])}", free[1]),
        (f"[refer] Where is the {hand_side} hand of the person?", g(holding)),
        ("[refer] Where are the hands of the person?", g(left) + g(right)),
        (f"[refer] Locate the object being manipulated by the {hand_side} hand.", g(held_box)),
        (f"[vqa] What hand is holding the {held}?", f"{hand_side} hand"),
        (f"[vqa] What is the object in the {hand_side} hand?", held),
    ]
    record = {
        "id": f"P{index // 100:02d}_{index:04d}",
        "image": f"P{index // 100:02d}/frame_{index:010d}",
        "conversations": [
            {"from": who, "value": text} for q, a in turns for who, text in (("human", q), ("gpt", a))
        ],
    }
    return im, record


def make_hoiqa_raw(root: Path, n: int = 24, seed: int = 0) -> tuple[Path, Path]:
    """Write ``n`` hand-object images and an HOI-QA train file; returns (annotations, images root)."""
    rng = random.Random(seed)
    images = root / "frames"
    records: list[dict[str, Any]] = []
    for i in range(n):
        im, rec = draw_hands(rng, i)
        path = images / f"{rec['image']}.jpg"
        path.parent.mkdir(parents=True, exist_ok=True)
        im.save(path, quality=95)
        records.append(rec)
    annotations = root / "hoiqa-train.json"
    annotations.write_text(json.dumps(records, indent=1))
    return annotations, images
