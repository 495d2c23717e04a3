"""PPDM/QPIC result JSON, the format most published HOI detectors write: read into flat columns by
the compiled scanner (:mod:`hoidata.eval.ppdm_scan`) when the file is in its subset, else by orjson
and a loop over records, with the same columns and the same errors either way; and written back.

A result file lists one record per image: ``file_name``, ``predictions`` (boxes with an object
``category_id``) and ``hoi_prediction`` (``subject_id``, ``object_id``, verb ``category_id``,
``score``). :func:`read_ppdm_columns` returns its values (boxes already canonical);
:func:`ppdm_predictions` maps them onto the ground truth's images and the taxonomy, for evaluation
(:func:`hoidata.eval.predictions.detections`) or as a predictions table (:func:`read_ppdm_results`).
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa

from hoidata.errors import HoidataError
from hoidata.eval.groundtruth import base_name
from hoidata.eval.ppdm_scan import NAME_ABSENT, Items, Records, count_byte, scan_chunk
from hoidata.eval.predictions import PREDICTION, PREDICTIONS_SCHEMA, PredictionColumns, conform
from hoidata.jit import start_numba
from hoidata.schemas.boxes import BoxOrigin, from_origin, to_origin
from hoidata.schemas.taxonomy import Taxonomy, hico_coco_ids

PPDM_IDS = ("coco91", "coco80")  # PPDM/QPIC result files: COCO-91 ids + verbs 1..117, or indices + 0..116
CHUNK = (
    4 << 20
)  # bytes the scanner holds at once (twice: two halves): memory stays flat however large the file
PARALLEL_FROM = 32 << 20  # files this large are scanned as two halves at once


@dataclass
class PpdmColumns:
    """Every value of a result file, flat, in file order (records, then list order)."""

    file_names: list[Any]  # per record its ``file_name`` (None when null or absent)
    named: np.ndarray  # (R,) bool: the record has a ``file_name`` key
    box_counts: np.ndarray  # (R,) int64
    pair_counts: np.ndarray  # (R,) int64
    boxes: np.ndarray  # (B, 4) float32 canonical: read with the file's origin, stored as a table stores them
    labels: np.ndarray  # (B,) integers: object category ids as in the file
    subjects: np.ndarray  # (P,) integers: index into the record's boxes
    objects: np.ndarray  # (P,) integers, -1 for a null or absent object_id
    verbs: np.ndarray  # (P,) integers: verb category ids as in the file
    scores: np.ndarray  # (P,) float64, NaN where not given
    has_score: np.ndarray  # (P,) bool

    @property
    def num_records(self) -> int:
        return len(self.file_names)


def read_ppdm_columns(path: Path | str, box_origin: BoxOrigin | str = BoxOrigin.ONE_BASED) -> PpdmColumns:
    """A result file's columns, its boxes read with ``box_origin``: scanned when the file is in the
    scanner's subset, else parsed."""
    path, origin = Path(path), BoxOrigin(box_origin)
    if not path.is_file():
        raise HoidataError("file not found", file=str(path))
    return scan_file(path, origin) or columns_from_records(_parse(path.read_bytes(), path), origin, path)


def canonical_float32(boxes: np.ndarray, origin: BoxOrigin) -> np.ndarray:
    """A file's boxes → canonical, rounded to float32 as a predictions table stores them; a million
    rows at a time, so that the float64 intermediates stay small."""
    out = np.empty(boxes.shape, np.float32)
    for start in range(0, len(boxes), 1 << 20):
        out[start : start + (1 << 20)] = from_origin(boxes[start : start + (1 << 20)], origin)
    return out


def scan_file(
    path: Path,
    origin: BoxOrigin = BoxOrigin.ONE_BASED,
    chunk: int = CHUNK,
    parallel_from: int = PARALLEL_FROM,
) -> PpdmColumns | None:
    """The compiled scan of a result file; None when the file is outside the scanner's subset.

    A file of ``parallel_from`` bytes or more is scanned as two halves at once (the scanner releases
    the GIL), split at a record's start found near the middle; the first half must end exactly
    there, which proves the split, else the file is scanned again from the start, whole."""
    start_numba()  # before the threads, which would each wait for it
    size = path.stat().st_size
    split = _record_start_near(path, size // 2) if size >= parallel_from else None
    if split is not None:
        with ThreadPoolExecutor(1) as pool:
            later = pool.submit(scan_stretch, path, split, size, opened=True, origin=origin, chunk=chunk)
            parts = [scan_stretch(path, 0, split, opened=False, origin=origin, chunk=chunk), later.result()]
        if all(p is not None for p in parts):
            return _joined(parts)  # type: ignore[arg-type]
    whole = scan_stretch(path, 0, size, opened=False, origin=origin, chunk=chunk)
    return None if whole is None else _joined([whole])


_RECORD_START = re.compile(rb',\s*(\{)\s*"(?:file_name|predictions|hoi_prediction)"\s*:')


def _record_start_near(path: Path, offset: int, window: int = 1 << 20) -> int | None:
    """The offset of a record's ``{`` after ``offset``: a comma, then an object opening with a record
    key (the scan of the first half confirms it)."""
    with open(path, "rb") as f:
        f.seek(offset)
        found = _RECORD_START.search(f.read(window))
    return offset + found.start(1) if found else None


@dataclass
class Stretch:
    """The records of bytes ``[start, stop)`` of a result file, scanned; their boxes canonical."""

    file_names: list[str | None]
    records: Records
    items: Items
    boxes: np.ndarray  # (n_box, 4) float32, canonical
    n_box: int
    n_pair: int


def scan_stretch(
    path: Path,
    start: int,
    stop: int,
    *,
    opened: bool,
    origin: BoxOrigin = BoxOrigin.ONE_BASED,
    chunk: int = CHUNK,
) -> Stretch | None:
    """Scan bytes ``[start, stop)`` of a result file, ``chunk`` bytes at a time into one buffer (which
    grows for a record longer than it), its boxes read with ``origin``. ``opened``: the list's ``[``
    lies before ``start`` (which is then a record's start). A stretch that ends the file must close
    the list and hold nothing after it; one that does not must end just after a record and its
    comma. None: outside the subset. The boxes are made canonical here, on the scanning thread."""
    items = Items.empty(stop - start)
    n_box = n_pair = 0
    closed, ends_file = False, stop == path.stat().st_size
    file_names: list[str | None] = []
    parts: list[Records] = []
    buf, filled, left = bytearray(chunk), 0, stop - start
    at_file_start = not opened  # then the list may still close empty
    with open(path, "rb") as f:
        f.seek(start)
        while not closed:
            if filled == len(buf):
                buf.extend(bytes(len(buf)))  # one record fills the buffer: double it
            n_read = f.readinto(memoryview(buf)[filled : filled + min(len(buf) - filled, left)])
            left -= n_read
            if not n_read:
                if ends_file or filled:
                    return None  # the list never closed, or a record left the subset
                break  # the stretch ends exactly after a record
            filled += n_read
            data = np.frombuffer(buf, np.uint8, filled)
            records = Records.empty(count_byte(data, ord("{")))  # every record opens with one
            first = at_file_start and not file_names
            closed, at, opened, n_rec, n_box, n_pair = scan_chunk(
                data, opened, first, records, items, n_box, n_pair
            )
            del data  # the buffer is resized and moved below
            try:
                file_names += [
                    buf[a:b].decode() if a >= 0 else None for a, b in records.names[:n_rec].tolist()
                ]
            except UnicodeDecodeError:
                return None  # orjson names the bad byte
            parts.append(Records(*(column[:n_rec] for column in records)))
            buf[: filled - at] = buf[at:filled]
            filled -= at
        if closed and (
            not ends_file or buf[:filled].strip() or any(p.strip() for p in iter(partial(f.read, chunk), b""))
        ):
            return None  # something after the list, or the list closed before the stretch's end
    joined = Records(*(np.concatenate(column) for column in zip(*parts, strict=True)))
    boxes = canonical_float32(items.boxes[:n_box], origin)
    return Stretch(file_names, joined, items, boxes, n_box, n_pair)


def _joined(parts: list[Stretch]) -> PpdmColumns:
    """The stretches of a file as one set of columns."""

    def column(field: str, count: str) -> np.ndarray:
        return np.concatenate([getattr(p.items, field)[: getattr(p, count)] for p in parts])

    names = np.concatenate([p.records.names for p in parts])
    scores, has_score = column("scores", "n_pair"), column("has_score", "n_pair")
    scores[~has_score] = np.nan
    return PpdmColumns(
        file_names=[name for p in parts for name in p.file_names],
        named=names[:, 0] != NAME_ABSENT,
        box_counts=np.concatenate([p.records.box_counts for p in parts]),
        pair_counts=np.concatenate([p.records.pair_counts for p in parts]),
        boxes=np.concatenate([p.boxes for p in parts]) if len(parts) > 1 else parts[0].boxes,
        labels=column("labels", "n_box"),
        subjects=column("subjects", "n_pair"),
        objects=column("objects", "n_pair"),
        verbs=column("verbs", "n_pair"),
        scores=scores,
        has_score=has_score,
    )


def _parse(data: bytes, path: Path) -> Any:
    try:
        records = orjson.loads(data)
    except orjson.JSONDecodeError as e:
        raise HoidataError(f"not valid JSON: {e}", file=str(path)) from e
    if not isinstance(records, list):
        raise HoidataError("expected a list with one result record per image", file=str(path))
    return records


def columns_from_records(
    records: list[Any], origin: BoxOrigin = BoxOrigin.ONE_BASED, path: Path | str = ""
) -> PpdmColumns:
    """The columns of parsed result records, one record at a time: the reference reading, which
    also names the record and field of any fault."""
    file_names: list[Any] = []
    named: list[bool] = []
    box_counts: list[int] = []
    pair_counts: list[int] = []
    boxes: list[list[float]] = []
    labels: list[int] = []
    subjects: list[int] = []
    objects: list[int] = []
    verbs: list[int] = []
    scores: list[float | None] = []
    for i, rec in enumerate(records):
        where = {"file": str(path), "record": i}
        if not isinstance(rec, dict):
            raise HoidataError("a result record must be an object", **where)  # type: ignore[arg-type]
        file_names.append(rec.get("file_name"))
        named.append("file_name" in rec)
        try:
            bxs = rec.get("predictions") or []
            hois = rec.get("hoi_prediction") or []
            boxes.extend(b["bbox"] for b in bxs)
            labels.extend(int(b["category_id"]) for b in bxs)
            subjects.extend(int(h["subject_id"]) for h in hois)
            objects.extend(-1 if h.get("object_id") is None else int(h["object_id"]) for h in hois)
            verbs.extend(int(h["category_id"]) for h in hois)
            scores.extend(h.get("score") for h in hois)
        except (KeyError, TypeError, ValueError) as e:
            raise HoidataError(f"malformed result record ({type(e).__name__}: {e})", **where) from e  # type: ignore[arg-type]
        box_counts.append(len(bxs))
        pair_counts.append(len(hois))
    try:
        box_arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    except ValueError as e:
        raise HoidataError(f"a 'bbox' is not 4 numbers: {e}", file=str(path), field="predictions.bbox") from e
    if not all(s is None or (isinstance(s, int | float) and not isinstance(s, bool)) for s in scores):
        raise HoidataError("a score is not a number", file=str(path), field="hoi_prediction.score")
    score_arr = np.array([np.nan if s is None else s for s in scores], dtype=np.float64)
    return PpdmColumns(
        file_names=file_names,
        named=np.array(named, dtype=bool),
        box_counts=np.array(box_counts, dtype=np.int64),
        pair_counts=np.array(pair_counts, dtype=np.int64),
        boxes=canonical_float32(box_arr, origin),
        labels=np.array(labels, dtype=np.int64),
        subjects=np.array(subjects, dtype=np.int64),
        objects=np.array(objects, dtype=np.int64),
        verbs=np.array(verbs, dtype=np.int64),
        scores=score_arr,
        has_score=np.array([s is not None for s in scores], dtype=bool),
    )


def coco80_ids() -> np.ndarray:
    """HICO object id of each COCO-80 index (QPIC's 0-based contiguous object labels)."""
    return np.argsort(hico_coco_ids())


def object_maps(ids: str) -> tuple[dict[int, int], int]:
    """File object id → HICO object id, and the id the file gives a person."""
    coco = hico_coco_ids()
    if ids == PPDM_IDS[0]:
        return {int(c): h for h, c in enumerate(coco)}, 1
    if ids == PPDM_IDS[1]:
        return {k: int(h) for k, h in enumerate(coco80_ids())}, 0
    raise HoidataError(f"unknown object ids {ids!r}; expected coco91 or coco80")


def hico_objects(labels: np.ndarray, ids: str) -> np.ndarray:
    """HICO object ids of a file's object labels, -1 for labels outside the map (one table lookup)."""
    obj_map, _ = object_maps(ids)
    table = np.full(max(obj_map) + 1, -1, dtype=np.int64)
    table[list(obj_map)] = list(obj_map.values())
    inside = (labels >= 0) & (labels < len(table))
    return np.where(inside, table[np.where(inside, labels, 0)], -1)


def ppdm_predictions(
    cols: PpdmColumns,
    taxonomy: Taxonomy,
    file_to_sample: dict[str, str],
    sample_ids: list[str],
    ids: str = "coco91",
    where: str = "",
) -> tuple[PredictionColumns, np.ndarray]:
    """A result file's columns as predictions of the ground truth's images, and each prediction's
    verb id (-1 outside the taxonomy). Images are matched by ``file_name`` through ``file_to_sample``; a
    file without ``file_name`` keys must list the ground truth's images in order."""
    object_maps(ids)  # an unknown id scheme is named before anything else
    n_rec = cols.num_records
    if n_rec and not cols.named.any():
        if n_rec != len(sample_ids):
            raise HoidataError(
                f"records have no 'file_name' and their number ({n_rec}) is not the ground truth's "
                f"({len(sample_ids)}): cannot tell which image each belongs to",
                file=where,
            )
        out_ids: list[str | None] = list(sample_ids)
    else:
        out_ids = []
        for name in cols.file_names:
            sid = file_to_sample.get(base_name(str(name))) if name is not None else None
            out_ids.append(sid if sid is not None else f"unmatched:{name}")
    box_start = np.cumsum(cols.box_counts) - cols.box_counts
    rec_of_pair = np.repeat(np.arange(n_rec), cols.pair_counts)
    n_boxes = cols.box_counts[rec_of_pair]
    s, o = cols.subjects, cols.objects
    bad = (s < 0) | (s >= n_boxes) | (o < -1) | (o >= n_boxes)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise HoidataError(
            f"subject_id/object_id ({s[k]}, {o[k]}) outside the record's {n_boxes[k]} boxes",
            file=where,
            record=int(rec_of_pair[k]),
            field="hoi_prediction",
        )
    base = box_start[rec_of_pair]
    has_obj = o >= 0
    human = cols.boxes[base + s]
    if has_obj.all():  # as in every file a detector writes: no masks to gather through
        obj = cols.boxes[base + o]
        obj_label = hico_objects(cols.labels, ids)[base + o]
    else:
        obj = np.full((len(o), 4), np.nan, np.float32)
        obj[has_obj] = cols.boxes[(base + o)[has_obj]]
        obj_label = np.full(len(o), -1, dtype=np.int64)
        obj_label[has_obj] = hico_objects(cols.labels, ids)[(base + o)[has_obj]]
    verb = cols.verbs - (1 if ids == PPDM_IDS[0] else 0)
    predictions = PredictionColumns(
        sample_ids=out_ids,
        counts=cols.pair_counts,
        human=human,
        obj=obj,
        has_obj=has_obj,
        hoi=taxonomy.hoi_ids(verb, obj_label),
        object_label=obj_label,
        score=cols.scores,
        has_score=cols.has_score,
        rank=np.arange(len(s)) - np.repeat(np.cumsum(cols.pair_counts) - cols.pair_counts, cols.pair_counts),
    )
    return predictions, np.where((verb >= 0) & (verb < len(taxonomy.verbs)), verb, -1)


def read_ppdm_results(
    path: Path | str,
    taxonomy: Taxonomy,
    file_to_sample: dict[str, str],
    sample_ids: list[str],
    box_origin: BoxOrigin | str = BoxOrigin.ONE_BASED,
    ids: str = "coco91",
) -> pa.Table:
    """PPDM/QPIC-style result JSON → predictions table.

    ``ids="coco91"``: objects are COCO-91 ids (person 1) and verbs 1..117, as in PPDM's files;
    ``"coco80"``: 0-based COCO-80 object indices and verbs 0..116, as in QPIC's in-memory results.
    Boxes are read with ``box_origin`` (default one-based: the frame of ``test_hico.json``, which the
    PPDM/QPIC evaluators compare them with unshifted). Images are matched as :func:`ppdm_predictions`
    says.
    """
    cols = read_ppdm_columns(path, box_origin)
    pred, verb = ppdm_predictions(cols, taxonomy, file_to_sample, sample_ids, ids, str(path))
    return predictions_table(pred, taxonomy, verb)


def predictions_table(pred: PredictionColumns, taxonomy: Taxonomy, verb: np.ndarray) -> pa.Table:
    """Flat predictions (with known ranks, and object and verb ids) as a predictions table."""

    def bbox(arr: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
        values = pa.array(np.nan_to_num(arr).astype(np.float32).ravel())
        mask = pa.array(null) if null is not None else None
        return pa.FixedSizeListArray.from_arrays(values, 4, mask=mask)

    def names(vocabulary: tuple[str, ...], index: np.ndarray) -> pa.Array:
        return pa.array([*vocabulary, None]).take(pa.array(np.where(index >= 0, index, len(vocabulary))))

    items = pa.StructArray.from_arrays(
        [
            bbox(pred.human),
            bbox(pred.obj, ~pred.has_obj),
            names(taxonomy.objects, pred.object_label),
            names(taxonomy.verbs, verb),
            pa.array(pred.hoi.astype(np.int32), mask=pred.hoi < 0),
            pa.array(pred.score, pa.float64(), mask=~pred.has_score),
            pa.array(pred.rank.astype(np.int32)),
        ],
        fields=list(PREDICTION),
    )
    offsets = np.concatenate([[0], np.cumsum(pred.counts)]).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), items)
    return pa.Table.from_arrays([pa.array(pred.sample_ids, pa.string()), lists], schema=PREDICTIONS_SCHEMA)


def write_ppdm_results(
    table: pa.Table,
    path: Path | str,
    taxonomy: Taxonomy,
    file_names: dict[str, str],
    box_origin: BoxOrigin | str = BoxOrigin.ONE_BASED,
    ids: str = "coco91",
) -> None:
    """Predictions table → PPDM/QPIC-style result JSON (two boxes per prediction, person first), so
    that other tools can score hoidata's predictions; ``file_names`` maps sample_id → file name."""
    obj_map, person = object_maps(ids)
    to_file = {h: c for c, h in obj_map.items()}
    verb_base = 1 if ids == PPDM_IDS[0] else 0
    out = []
    for row in conform(table, str(path)).to_pylist():
        boxes, hois = [], []
        for p in row["predictions"] or []:
            hoi = p["hoi_id"]
            if hoi is None or p["object_bbox"] is None:
                raise HoidataError(
                    "the PPDM format needs an hoi_id and an object box for every prediction",
                    record=row["sample_id"],
                )
            h, o = to_origin(np.array([p["person_bbox"], p["object_bbox"]], np.float64), box_origin).tolist()
            k = len(boxes)
            boxes += [
                {"bbox": h, "category_id": person},
                {"bbox": o, "category_id": to_file[int(taxonomy.hoi_object[hoi])]},
            ]
            entry: dict[str, Any] = {
                "subject_id": k,
                "object_id": k + 1,
                "category_id": int(taxonomy.hoi_verb[hoi]) + verb_base,
            }
            if p["score"] is not None:
                entry["score"] = p["score"]
            hois.append(entry)
        out.append({"file_name": file_names[row["sample_id"]], "predictions": boxes, "hoi_prediction": hois})
    Path(path).write_bytes(orjson.dumps(out))
