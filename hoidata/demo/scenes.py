"""The demo's scenes: a small synthetic HOI dataset that hoidata draws itself.

The scenes are simple (a person as a body and a head, objects as coloured shapes), but the
annotations are written exactly as a real PPDM/QPIC ``test_hico.json`` is: one-based inclusive
pixels, COCO-91 object ids, 1-based verbs. One record is deliberately broken to show rejects.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from PIL import Image, ImageDraw

from hoidata.schemas.taxonomy import hico_coco_ids, hico_det

# (verb, object, where the object sits relative to the person)
SCENES = [
    ("ride", "bicycle", "below"),
    ("hold", "cup", "hand"),
    ("kick", "sports_ball", "foot"),
    ("sit_on", "chair", "below"),
    ("carry", "backpack", "hand"),
    ("hold", "umbrella", "above"),
    ("fly", "kite", "above"),
    ("hold", "book", "hand"),
    ("walk", "dog", "foot"),
    ("throw", "frisbee", "hand"),
]
COLOURS = {
    "bicycle": (90, 90, 90),
    "cup": (200, 120, 40),
    "sports_ball": (250, 250, 250),
    "chair": (120, 70, 20),
    "backpack": (30, 140, 60),
    "umbrella": (150, 40, 160),
    "kite": (240, 60, 120),
    "book": (40, 60, 160),
    "dog": (160, 110, 60),
    "frisbee": (240, 200, 30),
}


def _rect(rng: random.Random, cx: int, cy: int, w: int, h: int, width: int, height: int) -> list[int]:
    """An inclusive 0-based pixel rectangle, kept inside the image."""
    x1 = max(0, min(width - w - 1, cx - w // 2 + rng.randint(-3, 3)))
    y1 = max(0, min(height - h - 1, cy - h // 2 + rng.randint(-3, 3)))
    return [x1, y1, x1 + w - 1, y1 + h - 1]


def draw_scene(rng: random.Random, index: int, split: str) -> tuple[Image.Image, dict[str, Any]]:
    """One image with 1–2 people, each doing one thing to an object; returns the PPDM record."""
    width, height = rng.choice([(320, 240), (400, 300), (360, 480), (480, 320)])
    im = Image.new(
        "RGB", (width, height), (rng.randint(180, 230), rng.randint(200, 240), rng.randint(180, 230))
    )
    d = ImageDraw.Draw(im)
    tax, coco = hico_det(), hico_coco_ids()
    annotations: list[dict[str, Any]] = []
    hois: list[dict[str, Any]] = []
    people = rng.choice([1, 1, 2])
    for p in range(people):
        verb, obj, where = rng.choice(SCENES)
        pw, ph = width // 6, height // 2
        cx = int(width * (0.3 + 0.4 * p)) if people == 2 else width // 2 + rng.randint(-20, 20)
        body = _rect(rng, cx, height // 2, pw, ph, width, height)
        d.rectangle(body, fill=(220, 60, 60))
        head = body[0] + pw // 4, body[1], body[2] - pw // 4, body[1] + pw // 2
        d.ellipse(head, fill=(250, 200, 170))
        ow, oh = max(12, pw // 2 + rng.randint(-4, 8)), max(12, ph // 3 + rng.randint(-4, 8))
        oy = {
            "below": body[3] - oh // 3,
            "hand": (body[1] + body[3]) // 2,
            "foot": body[3],
            "above": body[1] - oh,
        }[where]
        ob = _rect(
            rng,
            (body[0] + body[2]) // 2 + (pw if where in ("hand", "foot") else 0),
            oy,
            ow,
            oh,
            width,
            height,
        )
        d.rectangle(ob, fill=COLOURS[obj])
        d.text((ob[0] + 2, ob[1] + 2), obj[:6], fill=(0, 0, 0))
        v, o = tax.verbs.index(verb), tax.objects.index(obj)
        s_id = len(annotations)
        # one-based inclusive pixels, exactly as the official release and test_hico.json store them
        annotations.append({"bbox": [c + 1 for c in body], "category_id": 1})
        annotations.append({"bbox": [c + 1 for c in ob], "category_id": int(coco[o])})
        hois.append(
            {
                "subject_id": s_id,
                "object_id": s_id + 1,
                "category_id": v + 1,
                "hoi_category_id": int(tax.hoi_ids([v], [o])[0]) + 1,
            }
        )
    name = f"DEMO_{split}_{index:08d}.png"
    return im, {"file_name": name, "img_id": index + 1, "annotations": annotations, "hoi_annotation": hois}


def make_raw(root: Path, n_train: int = 48, n_test: int = 16, seed: int = 0) -> dict[str, Path]:
    """Write images and PPDM-layout annotation files; returns the annotation file per split."""
    rng = random.Random(seed)
    files = {}
    for split, n in (("train", n_train), ("test", n_test)):
        img_dir = root / "images" / split
        img_dir.mkdir(parents=True, exist_ok=True)
        records = []
        for i in range(n):
            im, rec = draw_scene(rng, i, split)
            im.save(img_dir / rec["file_name"])
            records.append(rec)
        if split == "train":  # one broken record: a box beyond the image edge, to show rejects
            records[-1]["annotations"][0]["bbox"][2] = 10_000
        files[split] = root / f"{split}_hico.json"
        files[split].write_text(json.dumps(records))
    return files


def one_scene(root: Path, copies: int = 16, seed: int = 3) -> Path:
    """One drawn scene with one interaction, under ``copies`` file names; returns its PPDM file."""
    rng = random.Random(seed)
    image, record = draw_scene(rng, 0, "train")
    while len(record["hoi_annotation"]) != 1:
        image, record = draw_scene(rng, 0, "train")
    images = root / "images"
    images.mkdir(parents=True, exist_ok=True)
    records = []
    for i in range(copies):
        records.append(record | {"file_name": f"SCENE_train_{i:08d}.png", "img_id": i + 1})
        image.save(images / records[-1]["file_name"])
    (root / "train_hico.json").write_text(json.dumps(records))
    return root / "train_hico.json"
