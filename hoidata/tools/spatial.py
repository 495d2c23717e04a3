"""Spatial relations between a person box and an object box, computed from the boxes alone.

Used to write chain-of-focus reasoning that observes the scene without stating the answer, and by
the tool environment's ``analyze_spatial``. Vectorised over ``(N, 4)`` canonical boxes.
"""

from __future__ import annotations

import numpy as np


def relations(person: np.ndarray, obj: np.ndarray) -> dict[str, np.ndarray]:
    """:func:`geometry`, plus the dominant direction of the object from the person as words."""
    r = geometry(person, obj)
    dx, dy = r["dx"], r["dy"]
    direction = np.where(
        np.abs(dx) >= np.abs(dy),
        np.where(dx >= 0, "right of", "left of"),
        np.where(dy >= 0, "below", "above"),
    )
    r["direction"] = np.where(np.hypot(dx, dy) < 0.15, "at the centre of", direction)
    return r


def geometry(person: np.ndarray, obj: np.ndarray) -> dict[str, np.ndarray]:
    """Per pair: IoU, share of the object inside the person box, centre offset in person sizes,
    and the object/person area ratio."""
    p, o = np.asarray(person, np.float64).reshape(-1, 4), np.asarray(obj, np.float64).reshape(-1, 4)
    area_p = np.clip(p[:, 2] - p[:, 0], 0, None) * np.clip(p[:, 3] - p[:, 1], 0, None)
    area_o = np.clip(o[:, 2] - o[:, 0], 0, None) * np.clip(o[:, 3] - o[:, 1], 0, None)
    iw = np.clip(np.minimum(p[:, 2], o[:, 2]) - np.maximum(p[:, 0], o[:, 0]), 0, None)
    ih = np.clip(np.minimum(p[:, 3], o[:, 3]) - np.maximum(p[:, 1], o[:, 1]), 0, None)
    inter = iw * ih
    with np.errstate(divide="ignore", invalid="ignore"):
        iou = np.where(area_p + area_o - inter > 0, inter / (area_p + area_o - inter), 0.0)
        inside = np.where(area_o > 0, inter / area_o, 0.0)
        scale = np.sqrt(np.maximum(area_p, 1e-9))
        dx = ((o[:, 0] + o[:, 2]) - (p[:, 0] + p[:, 2])) / 2 / scale
        dy = ((o[:, 1] + o[:, 3]) - (p[:, 1] + p[:, 3])) / 2 / scale
        size_ratio = np.where(area_p > 0, area_o / area_p, 0.0)
    return {
        "dx": dx,  # object centre right of the person centre, in person sizes
        "dy": dy,  # ... below it
        "iou": iou,
        "inside": inside,
        "distance": np.hypot(dx, dy),
        "size_ratio": size_ratio,
    }


def describe(person: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """A short clause per pair, e.g. ``"below the person, overlapping it"``."""
    r = relations(person, obj)
    contact = np.where(
        r["inside"] > 0.9,
        "inside the person's box",
        np.where(
            r["iou"] > 0, "overlapping it", np.where(r["distance"] < 1.0, "close to it", "apart from it")
        ),
    )
    where = np.char.add(np.char.add(r["direction"].astype(str), " the person, "), contact.astype(str))
    return where


def contact_likelihood(person: np.ndarray, obj: np.ndarray) -> np.ndarray:
    """Per pair, "likely" / "possible" / "unlikely" that person and object touch, from boxes alone:
    likely when they overlap by ≥ 10% of the smaller box, possible when they overlap at all or their
    edges are within 0.15 person sizes, unlikely otherwise."""
    p, o = np.asarray(person, np.float64).reshape(-1, 4), np.asarray(obj, np.float64).reshape(-1, 4)
    iw = np.minimum(p[:, 2], o[:, 2]) - np.maximum(p[:, 0], o[:, 0])  # negative: a horizontal gap
    ih = np.minimum(p[:, 3], o[:, 3]) - np.maximum(p[:, 1], o[:, 1])
    area_p = np.clip(p[:, 2] - p[:, 0], 0, None) * np.clip(p[:, 3] - p[:, 1], 0, None)
    area_o = np.clip(o[:, 2] - o[:, 0], 0, None) * np.clip(o[:, 3] - o[:, 1], 0, None)
    overlap = np.clip(iw, 0, None) * np.clip(ih, 0, None) / np.maximum(np.minimum(area_p, area_o), 1e-9)
    gap = np.hypot(np.clip(-iw, 0, None), np.clip(-ih, 0, None)) / np.sqrt(np.maximum(area_p, 1e-9))
    return np.where(overlap >= 0.1, "likely", np.where((overlap > 0) | (gap <= 0.15), "possible", "unlikely"))
