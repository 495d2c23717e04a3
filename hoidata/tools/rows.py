"""What the environment reads from a dataset row: its image (decoded lazily) and the ground truth the
oracle detector answers from."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from hoidata.profiles.text import taxonomy_name


def open_image(source: Any, load: bool = True) -> Image.Image:
    """A row's image: a PIL image, ``{"bytes", "path"}``, bytes or a path; decoded when ``load``."""
    if isinstance(source, Image.Image):
        return source
    if isinstance(source, dict):
        source = source.get("bytes") or source.get("path")
    if isinstance(source, bytes | bytearray | memoryview):
        image = Image.open(io.BytesIO(bytes(source)))
    elif isinstance(source, str | Path):
        image = Image.open(source)
    else:
        raise ValueError(f"cannot open an image from {type(source).__name__}")
    if load:
        image.load()
    return image


def image_size(source: Any) -> tuple[int, int]:
    """The size from the image header, without decoding the pixels."""
    if isinstance(source, Image.Image):
        return source.size
    with open_image(source, load=False) as image:
        return image.size


def ground_truth(instances: Any, pairs: Any) -> tuple[np.ndarray, list[str], np.ndarray]:
    """The oracle's instances as (boxes, labels, is-human): ``instances`` when given, else the distinct
    boxes of ``pairs``."""
    if instances:
        boxes = np.array([i["bbox"] for i in instances], np.float64).reshape(-1, 4)
        labels = [taxonomy_name(i.get("label") or "object") for i in instances]
        human = np.array([bool(i.get("is_human")) for i in instances], bool)
        return boxes, labels, human
    entries: list[tuple[tuple[float, ...], str]] = []
    for p in pairs or []:
        entries.append((tuple(map(float, p["person_bbox"])), "person"))
        if p.get("object_bbox") is not None:
            entries.append((tuple(map(float, p["object_bbox"])), taxonomy_name(p.get("object") or "object")))
    unique = list(dict.fromkeys(entries))  # exact duplicates: one box per (box, label), first seen first
    boxes = np.array([b for b, _ in unique], np.float64).reshape(-1, 4)
    labels = [label for _, label in unique]
    return boxes, labels, np.array([label == "person" for label in labels], bool)
