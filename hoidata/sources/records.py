"""Flatten a JSON list of image records (PPDM / SWIG-HOI style) into a :class:`SourceBatch`.

The fast path flattens the whole file with comprehensions and numpy. If any record is malformed
it raises; then each record is checked on its own to name the bad record and field, the bad ones
are marked, and the fast path runs again over the good ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hoidata.errors import RecordError
from hoidata.sources.base import as_box_array, int_array, is_box, is_int, offsets_from_counts


@dataclass(frozen=True)
class RecordLayout:
    """Where a record format keeps its boxes and pairs."""

    instances: str  # e.g. "annotations"
    pairs: str  # e.g. "hoi_annotation"
    label: str = "category_id"
    verb: str = "category_id"
    hoi: str | None = None  # optional explicit HOI id field
    verb_base: int = 0  # 1 when verbs are 1-based in the file
    hoi_base: int = 0


def check_record(rec: Any, layout: RecordLayout) -> RecordError | None:
    """The first structural fault of one record, naming its field; None when well-formed."""
    if not isinstance(rec, dict):
        return RecordError("<record>", f"expected an object, got {type(rec).__name__}")
    if not isinstance(rec.get("file_name"), str) or not rec["file_name"]:
        return RecordError("file_name", "missing or not a non-empty string")
    for dim in ("width", "height"):
        if dim in rec and not (is_int(rec[dim]) and rec[dim] > 0):
            return RecordError(dim, f"expected a positive integer, got {rec[dim]!r}")
    insts, pairs = rec.get(layout.instances), rec.get(layout.pairs)
    if not isinstance(insts, list):
        return RecordError(layout.instances, "missing or not a list")
    if not isinstance(pairs, list):
        return RecordError(layout.pairs, "missing or not a list")
    for k, a in enumerate(insts):
        where = f"{layout.instances}[{k}]"
        if not isinstance(a, dict):
            return RecordError(where, "expected an object")
        if not is_box(a.get("bbox")):
            return RecordError(f"{where}.bbox", f"expected 4 numbers, got {a.get('bbox')!r}")
        if not is_int(a.get(layout.label)):
            return RecordError(f"{where}.{layout.label}", f"expected an integer, got {a.get(layout.label)!r}")
    fields = ["subject_id", "object_id", layout.verb]
    for k, p in enumerate(pairs):
        where = f"{layout.pairs}[{k}]"
        if not isinstance(p, dict):
            return RecordError(where, "expected an object")
        for f in fields:
            if not is_int(p.get(f)):
                return RecordError(f"{where}.{f}", f"expected an integer, got {p.get(f)!r}")
        if layout.hoi and layout.hoi in p and not is_int(p[layout.hoi]):
            return RecordError(f"{where}.{layout.hoi}", f"expected an integer, got {p[layout.hoi]!r}")
    return None


def _flatten(records: list[dict[str, Any]], layout: RecordLayout) -> dict[str, Any]:
    insts = [r[layout.instances] for r in records]
    pairs = [r[layout.pairs] for r in records]
    n_inst = [len(x) for x in insts]
    n_pair = [len(x) for x in pairs]
    total_i, total_p = sum(n_inst), sum(n_pair)
    boxes = as_box_array([a["bbox"] for x in insts for a in x], "bbox values")
    labels = int_array([a[layout.label] for x in insts for a in x])
    subjects = int_array([p["subject_id"] for x in pairs for p in x])
    objects = int_array([p["object_id"] for x in pairs for p in x])
    verbs = int_array([p[layout.verb] for x in pairs for p in x]) - layout.verb_base
    if layout.hoi:
        base, key = layout.hoi_base, layout.hoi
        hois = int_array([p.get(key, base - 1) for x in pairs for p in x]) - base
    else:
        hois = np.full(total_p, -1, dtype=np.int64)
    if len(boxes) != total_i:
        raise ValueError("instance count mismatch")
    return {
        "inst_offsets": offsets_from_counts(n_inst),
        "boxes": boxes,
        "labels": labels,
        "pair_offsets": offsets_from_counts(n_pair),
        "subjects": subjects,
        "objects": objects,
        "verbs": verbs,
        "hois": hois,
    }


def flatten_records(records: list[Any], layout: RecordLayout) -> tuple[dict[str, Any], list[RecordError | None]]:
    """Flat arrays for all records, plus one error (or None) per record; bad records are empty."""
    errors: list[RecordError | None] = [None] * len(records)
    try:
        return _flatten(records, layout), errors
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, IndexError):
        pass
    empty = {"file_name": "", layout.instances: [], layout.pairs: []}
    cleaned = []
    for i, rec in enumerate(records):
        err = check_record(rec, layout)
        errors[i] = err
        cleaned.append(rec if err is None else empty)
    return _flatten(cleaned, layout), errors

