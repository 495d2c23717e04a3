"""Records lo..hi of a :class:`SourceBatch` → a canonical shard and its rejects, vectorised.

The checks are the rule tables of :mod:`~hoidata.pipelines.canonical_checks`; a record that breaks
one, or whose QA boxes cannot be converted, goes to the rejects with the field and the reason.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from hoidata.errors import RecordError
from hoidata.io.images import ImageInfo, safe_relative_path
from hoidata.pipelines.canonical_checks import (
    BOX_RULES,
    INDEX_RULES,
    LABEL_RULES,
    TAXONOMY_RULES,
    Fault,
    Instances,
    Pairs,
    classify_pairs,
    first_faults,
)
from hoidata.schemas import canonical
from hoidata.schemas.boxes import from_normalized, from_origin
from hoidata.schemas.taxonomy import Taxonomy
from hoidata.sources.base import SourceBatch, arrow_array, binary_array, string_array


def build_shard(
    batch: SourceBatch,
    tax: Taxonomy | None,
    errors: list[RecordError | None],
    images: list[ImageInfo | None],
    lo: int,
    hi: int,
    *,
    split: str,
    clip_boxes: bool = False,
    image_size: tuple[int, int] | None = None,
) -> tuple[pa.Table, pa.Table]:
    """Check records lo..hi and build the canonical table and the rejects table.

    ``errors`` (one per record of the batch) gains the faults found; ``images`` are the probed
    images of lo..hi. ``clip_boxes`` clamps boxes to their image instead of rejecting them;
    ``image_size`` is the (width, height) of images whose size nothing else gives.
    """
    widths, heights = _image_sizes(batch, images, lo, hi, image_size)
    i0, i1 = batch.inst_offsets[lo], batch.inst_offsets[hi]
    p0, p1 = batch.pair_offsets[lo], batch.pair_offsets[hi]
    inst_counts = np.diff(batch.inst_offsets[lo : hi + 1])
    inst_rec = np.repeat(np.arange(hi - lo), inst_counts)
    pair_rec = np.repeat(np.arange(hi - lo), np.diff(batch.pair_offsets[lo : hi + 1]))
    boxes = from_origin(batch.boxes[i0:i1], batch.box_origin)
    w_i, h_i = widths[inst_rec].astype(np.float64), heights[inst_rec].astype(np.float64)
    if clip_boxes:
        known = w_i > 0
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, np.where(known, w_i, np.inf)[:, None])
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, np.where(known, h_i, np.inf)[:, None])
    labels = batch.labels[i0:i1]
    instances = Instances(boxes, batch.boxes[i0:i1], batch.box_origin, w_i, h_i, labels, tax)
    instance_rules = BOX_RULES + (LABEL_RULES if tax is not None and batch.label_names is None else ())
    instance_faults = first_faults(instances, instance_rules, inst_rec)

    pairs = Pairs(
        subjects=batch.subjects[p0:p1],
        objects=batch.objects[p0:p1],
        boxes_in_record=inst_counts[pair_rec],
        verbs=batch.verbs[p0:p1],
        hois=batch.hois[p0:p1],
        verb_base=batch.verb_base,  # messages quote the file's own ids
        hoi_base=batch.hoi_base,
    )
    pair_rules, hois = INDEX_RULES, pairs.hois
    if tax is not None and len(pairs.subjects):
        pairs = classify_pairs(pairs, tax, labels, batch.inst_offsets[lo:hi][pair_rec] - i0)
        pair_rules += TAXONOMY_RULES
        hois = np.where(pairs.derived_hois >= 0, pairs.derived_hois, pairs.hois)
    pair_faults = first_faults(pairs, pair_rules, pair_rec)

    qa_column: pa.Array | None = None
    qa_errors: list[RecordError | None] = [None] * (hi - lo)
    if batch.qa is not None:
        qa_column, qa_errors = _qa_column(batch, lo, hi, widths, heights, errors)
    for r in range(hi - lo):
        i = lo + r
        if errors[i] is not None:
            continue
        if r in instance_faults:
            errors[i] = _record_error(batch, "instance", instance_faults[r], i0, batch.inst_offsets[i])
        elif r in pair_faults:
            errors[i] = _record_error(batch, "pair", pair_faults[r], p0, batch.pair_offsets[i])
        elif qa_errors[r] is not None:
            errors[i] = qa_errors[r]
    keep = np.array([errors[lo + r] is None for r in range(hi - lo)], dtype=bool)
    table = _assemble(
        batch, tax, split, lo, hi, keep, boxes, labels, hois, widths, heights, images, qa_column
    )
    rejects = _rejects(batch, split, errors, lo, hi, keep)
    return table, rejects


def _image_sizes(
    batch: SourceBatch, images: list[ImageInfo | None], lo: int, hi: int, fallback: tuple[int, int] | None
) -> tuple[np.ndarray, np.ndarray]:
    """Each record's image size: the probed image's, else the annotation's, else ``fallback``."""
    widths = batch.widths[lo:hi].copy()
    heights = batch.heights[lo:hi].copy()
    for k, info in enumerate(images):
        if info is not None and info.error is None:
            widths[k], heights[k] = info.width, info.height
    if fallback:
        unknown = widths <= 0
        widths[unknown], heights[unknown] = fallback
    return widths, heights


def _record_error(
    batch: SourceBatch, kind: str, fault: Fault, shard_start: int, record_start: int
) -> RecordError:
    """A record's first fault, with its field named as the file names it."""
    local = shard_start + fault.item - record_start
    return RecordError(
        _item_field(batch, kind, int(shard_start + fault.item), int(local), fault.rule.field), fault.reason()
    )


def _item_field(batch: SourceBatch, kind: str, item: int, local: int, name: str) -> str:
    """Where a faulty instance or pair field is, in the file's words (e.g. hoi_annotation[1].category_id)."""
    if batch.item_field is not None:
        return batch.item_field(kind, item, name)
    where = batch.instance_field if kind == "instance" else batch.pair_field
    return f"{where}[{local}].{batch.field_name(name)}"


def _take_ranges(offsets: np.ndarray, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the items of ``records`` (ranges of ``offsets``), and the new offsets."""
    starts, counts = offsets[records], offsets[records + 1] - offsets[records]
    new_offsets = np.zeros(len(records) + 1, dtype=np.int64)
    np.cumsum(counts, out=new_offsets[1:])
    idx = np.repeat(starts - new_offsets[:-1], counts) + np.arange(new_offsets[-1])
    return idx, new_offsets


def _assemble(
    batch: SourceBatch,
    tax: Taxonomy | None,
    split: str,
    lo: int,
    hi: int,
    keep: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    hois: np.ndarray,
    widths: np.ndarray,
    heights: np.ndarray,
    images: list[ImageInfo | None],
    qa_column: pa.Array | None,
) -> pa.Table:
    kept = np.flatnonzero(keep)
    n = len(kept)
    rec = kept + lo
    i0, p0 = batch.inst_offsets[lo], batch.pair_offsets[lo]
    inst_idx, inst_off = _take_ranges(batch.inst_offsets - i0, rec)
    pair_idx, pair_off = _take_ranges(batch.pair_offsets - p0, rec)
    lab = labels[inst_idx]
    if batch.label_names is not None:
        names = [batch.label_names[i0 + k] for k in inst_idx]
        label_str = string_array(names)
        is_human = arrow_array(np.array([_is_human_name(s) for s in names], dtype=bool))
    else:
        assert tax is not None
        label_str = string_array(tax.objects).take(arrow_array(lab))
        is_human = arrow_array(lab == tax.human_object_id)
    bbox = pa.FixedSizeListArray.from_arrays(arrow_array(boxes[inst_idx].astype(np.float32).ravel()), 4)
    instances = pa.StructArray.from_arrays(
        [bbox, label_str, arrow_array(lab.astype(np.int32)), is_human], fields=list(canonical.INSTANCE)
    )
    verbs = batch.verbs[p0 + pair_idx] if len(pair_idx) else np.zeros(0, np.int64)
    verb_str = (
        string_array(tax.verbs).take(arrow_array(verbs))
        if tax is not None
        else string_array([""] * len(verbs))
    )
    interactions = pa.StructArray.from_arrays(
        [
            arrow_array(batch.subjects[p0 + pair_idx].astype(np.int32)),
            arrow_array(batch.objects[p0 + pair_idx].astype(np.int32)),
            verb_str,
            arrow_array(verbs.astype(np.int32)),
            arrow_array(hois[pair_idx].astype(np.int32)),
        ],
        fields=list(canonical.INTERACTION),
    )
    paths = relative_paths([batch.file_names[i] for i in rec])
    data = [images[i - lo].data if images[i - lo] is not None else None for i in rec]
    image = pa.StructArray.from_arrays(
        [binary_array(data), string_array(paths)], fields=list(canonical.IMAGE)
    )
    prefix = f"{batch.source}/{split}/"
    w, h = widths[kept], heights[kept]
    columns = {
        "sample_id": string_array([prefix + batch.keys[i] for i in rec]),
        "source": string_array([batch.source] * n),
        "split": string_array([split] * n),
        "image": image,
        "width": arrow_array(w.astype(np.int32), nulls=w <= 0),
        "height": arrow_array(h.astype(np.int32), nulls=h <= 0),
        "instances": pa.ListArray.from_arrays(arrow_array(inst_off.astype(np.int32)), instances),
        "interactions": pa.ListArray.from_arrays(arrow_array(pair_off.astype(np.int32)), interactions),
        "qa": qa_column.filter(arrow_array(keep))
        if qa_column is not None
        else pa.nulls(n, pa.list_(canonical.QA_ITEM)),
    }
    return pa.Table.from_pydict(columns, schema=canonical.SCHEMA)


def _is_human_name(label: str) -> bool:
    words = label.lower().split()
    return any(w in ("person", "hand", "hands", "man", "woman", "human") for w in words)


def _qa_column(
    batch: SourceBatch,
    lo: int,
    hi: int,
    widths: np.ndarray,
    heights: np.ndarray,
    errors: list[RecordError | None],
) -> tuple[pa.Array, list[RecordError | None]]:
    """QA items of records lo..hi with their boxes converted to canonical pixels."""
    assert batch.qa is not None
    rows: list[list[dict[str, Any]] | None] = []
    qa_errors: list[RecordError | None] = [None] * (hi - lo)
    for r in range(hi - lo):
        items = batch.qa[lo + r]
        if errors[lo + r] is not None:
            rows.append(None)
            continue
        w, h = int(widths[r]), int(heights[r])
        out = []
        for j, item in enumerate(items):
            converted = []
            for name, bxs in (("question_boxes", item.question_boxes), ("answer_boxes", item.answer_boxes)):
                if not bxs:
                    converted.append([])
                    continue
                if item.frame == "grid100":
                    if w <= 0:
                        qa_errors[r] = RecordError(
                            f"qa[{j}].{name}", "image size unknown: pass --images or --image-size"
                        )
                        break
                    arr = from_normalized(bxs, w, h, 100)
                else:
                    arr = from_origin(bxs, batch.box_origin)
                bad = (arr[:, 2] <= arr[:, 0]) | (arr[:, 3] <= arr[:, 1]) | ~np.isfinite(arr).all(axis=1)
                if bad.any():
                    qa_errors[r] = RecordError(
                        f"qa[{j}].{name}", f"inverted or empty box {bxs[int(np.argmax(bad))]}"
                    )
                    break
                converted.append(arr.astype(np.float32).tolist())
            if qa_errors[r] is not None:
                break
            out.append(
                {
                    "task": item.task,
                    "question": item.question,
                    "answer": item.answer,
                    "question_boxes": converted[0],
                    "answer_boxes": converted[1],
                }
            )
        rows.append(None if qa_errors[r] is not None else out)
    return pa.array(rows, pa.list_(canonical.QA_ITEM)), qa_errors


def _rejects(
    batch: SourceBatch, split: str, errors: list[RecordError | None], lo: int, hi: int, keep: np.ndarray
) -> pa.Table:
    bad = [lo + int(r) for r in np.flatnonzero(~keep)]
    prefix = f"{batch.source}/{split}/"
    return pa.Table.from_pydict(
        {
            "source_file": string_array([batch.source_file] * len(bad)),
            "record_index": arrow_array(np.array(bad, dtype=np.int64)),
            "sample_id": string_array(
                [prefix + batch.keys[i] if not batch.keys[i].startswith("#") else None for i in bad]
            ),
            "field": string_array([errors[i].field for i in bad]),  # type: ignore[union-attr]
            "reason": string_array([errors[i].reason for i in bad]),  # type: ignore[union-attr]
            "raw": string_array([batch.raw(i) for i in bad]),
        },
        schema=canonical.REJECTS_SCHEMA,
    )


def relative_paths(names: list[str]) -> list[str | None]:
    """:func:`safe_relative_path` of each name; one scan of the joined text clears the usual case
    (plain relative names) without per-name work."""
    joined = "\n" + "\n".join(names)
    suspicious = ("\n/", "\n.", "/.", "//", "\\", "\x00", "\n\n")
    if not any(s in joined for s in suspicious) and not joined.endswith("\n") and not joined.endswith("/"):
        return list(names)
    return [safe_relative_path(n) for n in names]
