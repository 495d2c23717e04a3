"""Which regions of a dataset get an imagined view, chosen column-wise from the canonical boxes.

``cut``: an instance box within ``border`` pixels of an image edge (the camera cut it off: hands
outside the frame, half a bicycle). ``small``: an instance whose shorter side is under ``min_side``
pixels (too small to read). ``union``: every person-object pair's union box (the interaction as a
whole). A box chosen for several reasons appears once, under its first reason in that order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

REGION_KINDS = ("cut", "small", "union")


@dataclass
class Regions:
    row: np.ndarray  # the table row each region belongs to
    box: np.ndarray  # (N, 4) canonical pixels
    kind: np.ndarray  # object array of REGION_KINDS
    label: list[str]

    def __len__(self) -> int:
        return len(self.row)


def choose_regions(
    table: pa.Table, kinds: tuple[str, ...], *, min_side: float = 32.0, border: float = 1.0
) -> Regions:
    n = table.num_rows
    width = table["width"].to_numpy(zero_copy_only=False).astype(np.float64)
    height = table["height"].to_numpy(zero_copy_only=False).astype(np.float64)
    inst = table["instances"].combine_chunks()
    off = inst.offsets.to_numpy().astype(np.int64)
    flat = inst.values.slice(off[0], off[-1] - off[0])
    off = off - off[0]
    inst_row = np.repeat(np.arange(n), np.diff(off))
    boxes = flat.field("bbox").flatten().to_numpy(zero_copy_only=False).astype(np.float64).reshape(-1, 4)
    labels = np.array(flat.field("label").fill_null("").to_pylist(), object)
    parts: list[tuple[np.ndarray, np.ndarray, str, np.ndarray]] = []
    w, h = width[inst_row], height[inst_row]
    for kind in kinds:
        if kind == "cut":
            hit = (boxes[:, 0] <= border) | (boxes[:, 1] <= border)
            hit |= (boxes[:, 2] >= w - border) | (boxes[:, 3] >= h - border)
            parts.append((inst_row[hit], boxes[hit], kind, labels[hit]))
        elif kind == "small":
            hit = np.minimum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]) < min_side
            parts.append((inst_row[hit], boxes[hit], kind, labels[hit]))
        elif kind == "union":
            parts.append(_unions(table, off, boxes, labels))
        else:
            raise ValueError(f"unknown region kind {kind!r}; choose from {', '.join(REGION_KINDS)}")
    row = np.concatenate([p[0] for p in parts] + [np.zeros(0, np.int64)])
    box = np.concatenate([p[1] for p in parts] + [np.zeros((0, 4))])
    kind = np.concatenate([np.full(len(p[0]), p[2], object) for p in parts] + [np.zeros(0, object)])
    label = np.concatenate([p[3] for p in parts] + [np.zeros(0, object)])
    if not len(row):
        return Regions(row, box, kind, [])
    keys = np.column_stack([row.astype(np.float64), box])
    _, first = np.unique(keys, axis=0, return_index=True)
    keep = np.sort(first)  # the first reason of each distinct (row, box), in input order
    order = keep[np.lexsort((keep, row[keep]))]  # grouped by row
    return Regions(row[order], box[order], kind[order], [str(x) for x in label[order]])


def _unions(
    table: pa.Table, inst_off: np.ndarray, boxes: np.ndarray, labels: np.ndarray
) -> tuple[np.ndarray, np.ndarray, str, np.ndarray]:
    inter = table["interactions"].combine_chunks()
    off = inter.offsets.to_numpy().astype(np.int64)
    flat = inter.values.slice(off[0], off[-1] - off[0])
    off = off - off[0]
    row = np.repeat(np.arange(table.num_rows), np.diff(off))
    subject = flat.field("subject").to_numpy(zero_copy_only=False).astype(np.int64)
    obj = flat.field("object").to_numpy(zero_copy_only=False).astype(np.int64)
    has = obj >= 0
    row, s, o = row[has], inst_off[row[has]] + subject[has], inst_off[row[has]] + obj[has]
    union = (
        np.column_stack([np.minimum(boxes[s, :2], boxes[o, :2]), np.maximum(boxes[s, 2:], boxes[o, 2:])])
        if len(s)
        else np.zeros((0, 4))
    )
    verbs = pc.replace_substring(flat.field("verb").filter(pa.array(has)).fill_null(""), "_", " ").to_pylist()
    label = np.array(
        [f"{labels[a]} {v} {labels[b]}".replace("_", " ") for a, v, b in zip(s, verbs, o, strict=True)],
        object,
    )
    return row, union, "union", label
