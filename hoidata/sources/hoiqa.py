"""HOI-QA (HOI-Ref): egocentric hand-object question answering, in three layouts.

* ``train`` — a list of ``{"id", "image" | "image_path", "conversations": [{"value"}, ...]}``; turns
  alternate question/answer, boxes are written ``{<x1><y1><x2><y2>}`` on a 0–100 grid of the image.
* ``test`` — a dict ``id → {"image_path", "noun", "bbox"}`` with the box in original-image pixels; the
  official evaluation asks "Where is the {noun}" (refer) and the box itself (identify).
* ``visor`` — a list of ``{"id", "question", "answer", "image_path"}`` with grid boxes in the text.

Boxes leave the text: each becomes ``<box>`` in the question/answer and a canonical box beside it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from hoidata.errors import HoidataError, RecordError
from hoidata.schemas.boxes import BoxOrigin
from hoidata.schemas.canonical import BOX_PLACEHOLDER
from hoidata.sources.base import QAItem, SourceBatch, dumps, is_box, offsets_from_counts, read_json

_NUM = r"\s*(-?\d+(?:\.\d+)?)\s*"
BOX_TEXT = re.compile(r"\{" + "".join(f"<{_NUM}>" for _ in range(4)) + r"\}")
TAG = re.compile(r"^\s*\[(\w+)\]\s*")
LAYOUTS = ("train", "test", "visor")


def parse_boxes(text: str) -> tuple[str, list[list[float]]]:
    """Replace every ``{<x1><y1><x2><y2>}`` with ``<box>``; return the text and the grid boxes."""
    boxes = [[float(v) for v in m.groups()] for m in BOX_TEXT.finditer(text)]
    return BOX_TEXT.sub(BOX_PLACEHOLDER, text), boxes


def split_tag(question: str) -> tuple[str, str]:
    """``"[refer] Where is…"`` → ``("refer", "Where is…")``; untagged questions are ``vqa``."""
    m = TAG.match(question)
    return (m.group(1).lower(), question[m.end() :]) if m else ("vqa", question)


def detect_layout(path: Path, data: Any) -> str:
    if isinstance(data, dict):
        return "test"
    if isinstance(data, list) and data and isinstance(data[0], dict):
        if "conversations" in data[0]:
            return "train"
        if "question" in data[0] and "answer" in data[0]:
            return "visor"
    raise HoidataError(
        "unknown HOI-QA layout (expected train conversations, a test dict or the VISOR list; --format forces one)",
        file=str(path),
    )


def _train_record(rec: Any) -> tuple[str, str, list[QAItem]] | RecordError:
    if not isinstance(rec, dict):
        return RecordError("<record>", "expected an object")
    key = rec.get("id")
    if not isinstance(key, str | int) or isinstance(key, bool):
        return RecordError("id", f"expected a string or integer, got {key!r}")
    if isinstance(rec.get("image_path"), str):
        file_name = rec["image_path"]
    elif isinstance(rec.get("image"), str):
        file_name = (
            rec["image"]
            if rec["image"].lower().endswith((".jpg", ".jpeg", ".png"))
            else rec["image"] + ".jpg"
        )
    else:
        return RecordError("image", "neither 'image' nor 'image_path' is a string")
    turns = rec.get("conversations")
    if not isinstance(turns, list) or not turns:
        return RecordError("conversations", "missing or not a non-empty list")
    if len(turns) % 2:
        return RecordError("conversations", f"{len(turns)} turns: questions and answers must alternate")
    items = []
    for t in range(0, len(turns), 2):
        for k in (t, t + 1):
            if not isinstance(turns[k], dict) or not isinstance(turns[k].get("value"), str):
                return RecordError(f"conversations[{k}].value", "missing or not a string")
        question = turns[t]["value"].replace("<image>", "").strip()
        task, question = split_tag(question)
        q_text, q_boxes = parse_boxes(question)
        a_text, a_boxes = parse_boxes(turns[t + 1]["value"].strip())
        items.append(QAItem(task, q_text, a_text, q_boxes, a_boxes, "grid100"))
    return str(key), file_name, items


def _visor_record(rec: Any) -> tuple[str, str, list[QAItem]] | RecordError:
    if not isinstance(rec, dict):
        return RecordError("<record>", "expected an object")
    for f in ("question", "answer", "image_path"):
        if not isinstance(rec.get(f), str):
            return RecordError(f, "missing or not a string")
    key = rec.get("id")
    if not isinstance(key, str | int) or isinstance(key, bool):
        return RecordError("id", f"expected a string or integer, got {key!r}")
    task, question = split_tag(rec["question"].strip())
    q_text, q_boxes = parse_boxes(question)
    a_text, a_boxes = parse_boxes(rec["answer"].strip())
    return str(key), rec["image_path"], [QAItem(task, q_text, a_text, q_boxes, a_boxes, "grid100")]


def _test_record(key: str, rec: Any) -> tuple[str, str, list[QAItem], str, list[float]] | RecordError:
    if not isinstance(rec, dict):
        return RecordError("<record>", "expected an object")
    if not isinstance(rec.get("image_path"), str):
        return RecordError("image_path", "missing or not a string")
    if not isinstance(rec.get("noun"), str) or not rec["noun"]:
        return RecordError("noun", "missing or not a non-empty string")
    if not is_box(rec.get("bbox")):
        return RecordError("bbox", f"expected 4 numbers, got {rec.get('bbox')!r}")
    noun, box = rec["noun"], [float(v) for v in rec["bbox"]]
    items = [
        QAItem("refer", f"Where is the {noun}", BOX_PLACEHOLDER, [], [box], "pixels"),
        QAItem("identify", BOX_PLACEHOLDER, noun, [box], [], "pixels"),
    ]
    return key, rec["image_path"], items, noun, box


def read_hoiqa(path: Path, layout: str | None = None, box_origin: BoxOrigin | None = None) -> SourceBatch:
    path = Path(path)
    data = read_json(path)
    layout = layout or detect_layout(path, data)
    if layout not in LAYOUTS:
        raise HoidataError(f"unknown format {layout!r}; expected one of {', '.join(LAYOUTS)}", file=str(path))
    if layout == "test":
        if not isinstance(data, dict):
            raise HoidataError("expected a dict of id → record", file=str(path))
        keys_in = list(data)
        parsed: list[Any] = [_test_record(k, data[k]) for k in keys_in]

        def raw(i: int) -> str:
            return dumps({keys_in[i]: data[keys_in[i]]})
    else:
        if not isinstance(data, list):
            raise HoidataError(f"expected a list of records, got {type(data).__name__}", file=str(path))
        parse = _train_record if layout == "train" else _visor_record
        parsed = [parse(r) for r in data]

        def raw(i: int) -> str:
            return dumps(data[i])

    errors: list[RecordError | None] = [p if isinstance(p, RecordError) else None for p in parsed]
    good = [p if not isinstance(p, RecordError) else None for p in parsed]
    keys = [p[0] if p else f"#{i}" for i, p in enumerate(good)]
    names = [p[1] if p else "" for p in good]
    qa = [p[2] if p else [] for p in good]
    inst_boxes = [[p[4]] if p and layout == "test" else [] for p in good]
    label_names = [p[3] for p in good if p and layout == "test"]
    counts = [len(b) for b in inst_boxes]
    n = len(parsed)
    return SourceBatch(
        source="hoi-qa",
        source_file=str(path),
        layout=layout,
        box_origin=BoxOrigin(box_origin or BoxOrigin.CONTINUOUS),
        file_names=names,
        keys=keys,
        widths=np.full(n, -1, dtype=np.int64),
        heights=np.full(n, -1, dtype=np.int64),
        inst_offsets=offsets_from_counts(counts),
        boxes=np.array([b for bs in inst_boxes for b in bs], dtype=np.float64).reshape(-1, 4),
        labels=np.full(sum(counts), -1, dtype=np.int64),
        pair_offsets=np.zeros(n + 1, dtype=np.int64),
        subjects=np.zeros(0, np.int64),
        objects=np.zeros(0, np.int64),
        verbs=np.zeros(0, np.int64),
        hois=np.zeros(0, np.int64),
        errors=errors,
        raw=raw,
        qa=qa,
        label_names=label_names,
        instance_field="bbox",
        pair_field="conversations",
    )
