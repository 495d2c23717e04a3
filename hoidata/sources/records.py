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


_MISSING = -(2**62)  # stands for an absent optional HOI id while flattening


def _dims_ok(r: dict[str, Any]) -> bool:
    return all(d not in r or (is_int(r[d]) and r[d] > 0) for d in ("width", "height"))


def _flatten(records: list[dict[str, Any]], layout: RecordLayout) -> dict[str, Any]:
    """Raises (KeyError, TypeError, ValueError…) on any structural fault; see :func:`check_record`."""
    insts = [r[layout.instances] for r in records]
    pairs = [r[layout.pairs] for r in records]
    # an empty dict or string would pass len() and iteration below; items that are not objects fail there
    if not (all(type(x) is list for x in insts) and all(type(x) is list for x in pairs)):
        raise TypeError("instances or pairs are not lists")
    if not all(
        type(r.get("file_name")) is str
        and r["file_name"]
        and (("width" not in r and "height" not in r) or _dims_ok(r))
        for r in records
    ):
        raise TypeError("bad file_name, width or height")
    n_inst = [len(x) for x in insts]
    n_pair = [len(x) for x in pairs]
    total_i, total_p = sum(n_inst), sum(n_pair)
    boxes = as_box_array([a["bbox"] for x in insts for a in x], "bbox values")
    labels = int_array([a[layout.label] for x in insts for a in x])
    subjects = int_array([p["subject_id"] for x in pairs for p in x])
    objects = int_array([p["object_id"] for x in pairs for p in x])
    verbs = int_array([p[layout.verb] for x in pairs for p in x]) - layout.verb_base
    if layout.hoi:
        key = layout.hoi
        given = int_array([p.get(key, _MISSING) for x in pairs for p in x])
        # -1: none given; -2: given, but below the first id (told apart in _mark_bad_hoi_ids)
        hois = np.where(given == _MISSING, -1, np.where(given < layout.hoi_base, -2, given - layout.hoi_base))
    else:
        hois = np.full(total_p, -1, dtype=np.int64)
    if len(boxes) != total_i or len(labels) != total_i or len(verbs) != total_p:
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


def _mark_bad_hoi_ids(
    records: list[Any], flat: dict[str, Any], layout: RecordLayout, errors: list[RecordError | None]
) -> None:
    """Reject HOI ids given below the file's first id (e.g. 0 in a 1-based file); they then read as none."""
    low = np.flatnonzero(flat["hois"] < -1)
    if not layout.hoi or not len(low):
        return
    pair_offsets = flat["pair_offsets"]
    for k in low.tolist():
        i = int(np.searchsorted(pair_offsets, k, side="right") - 1)
        local = k - int(pair_offsets[i])
        if errors[i] is None:
            value = records[i][layout.pairs][local][layout.hoi]
            errors[i] = RecordError(
                f"{layout.pairs}[{local}].{layout.hoi}",
                f"HOI id {value} is below the first id, {layout.hoi_base}",
            )
    flat["hois"][low] = -1


def flatten_records(
    records: list[Any], layout: RecordLayout
) -> tuple[dict[str, Any], list[RecordError | None]]:
    """Flat arrays for all records, plus one error (or None) per record; bad records are empty."""
    errors: list[RecordError | None] = [None] * len(records)
    try:
        flat = _flatten(records, layout)
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, IndexError):
        empty = {"file_name": "<rejected>", layout.instances: [], layout.pairs: []}
        cleaned = []
        for i, rec in enumerate(records):
            err = check_record(rec, layout)
            errors[i] = err
            cleaned.append(rec if err is None else empty)
        flat = _flatten(cleaned, layout)
        records = cleaned
    _mark_bad_hoi_ids(records, flat, layout, errors)
    return flat, errors
