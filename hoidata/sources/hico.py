"""HICO-DET in its three layouts: the official ``anno_bbox.mat``, the PPDM/QPIC JSON and the UPT JSON.

Box origin defaults (``--box-origin`` overrides; the README's "Box origins" table lists every source):
  * ``mat``  — one-based: the official 1-based inclusive MATLAB pixels.
  * ``upt``  — one-based: the UPT release keeps the raw official values.
  * ``ppdm`` — one-based: ``test_hico.json`` equals the official values (checked on real data).
    ``trainval_hico.json`` is believed to store official − 1: convert it with ``--box-origin zero-based``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from itertools import chain
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.json as pa_json

from hoidata.errors import HoidataError, RecordError
from hoidata.schemas.boxes import BoxOrigin
from hoidata.schemas.taxonomy import hico_coco_ids
from hoidata.sources.base import (
    SourceBatch,
    dumps,
    int_array,
    is_box,
    is_int,
    numpy_values,
    offsets_from_counts,
    read_bytes,
    read_json,
    sample_keys,
)
from hoidata.sources.hico_mat import read_mat
from hoidata.sources.instances import instances_from_pairs
from hoidata.sources.records import RecordLayout, flatten_records

LAYOUTS = ("mat", "ppdm", "upt")
DEFAULT_ORIGIN = {"mat": BoxOrigin.ONE_BASED, "upt": BoxOrigin.ONE_BASED, "ppdm": BoxOrigin.ONE_BASED}
PPDM = RecordLayout(
    instances="annotations",
    pairs="hoi_annotation",
    verb="category_id",
    hoi="hoi_category_id",
    verb_base=1,
    hoi_base=1,
)


def _is_mat(path: Path) -> bool:
    """MATLAB files announce themselves in their first bytes."""
    try:
        with open(path, "rb") as f:
            return f.read(6) == b"MATLAB"
    except IsADirectoryError:
        return False


def detect_layout(path: Path, data: Any = None) -> str:
    """Which HICO-DET layout a file is in, from its content."""
    if data is None:
        return "mat" if _is_mat(path) else detect_layout(path, read_json(path))
    if isinstance(data, dict) and "annotation" in data and "filenames" in data:
        return "upt"
    if isinstance(data, list):
        # the first record that names its pairs decides: a malformed first record must not hide the layout
        keys = {"hoi_annotation", "hoi_annotations"}
        first = next((r for r in data if isinstance(r, dict) and keys & r.keys()), None)
        if first is not None and "hoi_annotation" in first:
            return "ppdm"
        if first is not None:
            raise HoidataError("this is a SWIG-HOI file: use `hoidata convert swig`", file=str(path))
        if not data:
            raise HoidataError(
                "an empty list: no records to convert (--format ppdm accepts it)", file=str(path)
            )
    raise HoidataError(
        "unknown HICO-DET layout (expected anno_bbox.mat, a PPDM/QPIC list of records, or a UPT "
        "dict with 'annotation' and 'filenames'; --format forces one)",
        file=str(path),
    )


def read_hico(
    path: Path, layout: str | None = None, box_origin: BoxOrigin | None = None, split: str = ""
) -> SourceBatch:
    """Read a HICO-DET annotation file in any layout."""
    path = Path(path)
    if not path.exists():
        raise HoidataError("file not found", file=str(path))
    if layout == "mat" or (layout is None and _is_mat(path)):
        return read_mat(path, split, box_origin or DEFAULT_ORIGIN["mat"])
    if layout in (None, "upt"):
        fast = read_upt_arrow(path, BoxOrigin(box_origin or DEFAULT_ORIGIN["upt"]))
        if fast is not None:
            return fast
    data = read_json(path)
    layout = layout or detect_layout(path, data)
    if layout not in LAYOUTS:
        raise HoidataError(f"unknown format {layout!r}; expected one of {', '.join(LAYOUTS)}", file=str(path))
    origin = BoxOrigin(box_origin or DEFAULT_ORIGIN[layout])
    if layout == "upt":
        if not isinstance(data, dict):
            raise HoidataError(
                f"expected a UPT dict with 'annotation' and 'filenames', got {type(data).__name__}",
                file=str(path),
            )
        return read_upt(path, data, origin)
    return read_ppdm(path, data, origin, origin_given=box_origin is not None)


def read_ppdm(path: Path, data: Any, origin: BoxOrigin, origin_given: bool = True) -> SourceBatch:
    if not isinstance(data, list):
        raise HoidataError(f"expected a list of image records, got {type(data).__name__}", file=str(path))
    flat, errors = flatten_records(data, PPDM)
    coco_to_hico = np.full(max(hico_coco_ids()) + 1, -1, dtype=np.int64)
    coco_to_hico[hico_coco_ids()] = np.arange(len(hico_coco_ids()))
    coco = flat["labels"]
    known = (coco >= 0) & (coco < len(coco_to_hico))
    labels = np.full(coco.shape, -1, dtype=np.int64)
    labels[known] = coco_to_hico[coco[known]]
    for k in np.flatnonzero(labels < 0):
        i = int(np.searchsorted(flat["inst_offsets"], k, side="right") - 1)
        if errors[i] is None:
            errors[i] = RecordError(
                f"annotations[{k - flat['inst_offsets'][i]}].category_id",
                f"{int(coco[k])} is not one of the 80 COCO ids that HICO-DET uses",
            )
    flat["labels"] = labels
    # rejected records keep their file name too, so that rejects.parquet names the sample
    file_names = [r.get("file_name", "") if isinstance(r, dict) else "" for r in data]
    file_names = [f if isinstance(f, str) else "" for f in file_names]
    widths = np.array([_dim(r, "width", e) for r, e in zip(data, errors, strict=True)], dtype=np.int64)
    heights = np.array([_dim(r, "height", e) for r, e in zip(data, errors, strict=True)], dtype=np.int64)
    notes = []
    has_hoi_ids = bool(len(flat["hois"])) and bool((flat["hois"] >= 0).any())
    if has_hoi_ids and not origin_given:
        notes.append(
            "this PPDM file carries hoi_category_id, as trainval_hico.json does, whose boxes are believed to be "
            "official − 1: boxes were read as one-based; pass --box-origin zero-based if that is wrong"
        )
    return SourceBatch(
        source="hico-det",
        source_file=str(path),
        layout="ppdm",
        box_origin=origin,
        file_names=file_names,
        keys=sample_keys(file_names),
        widths=widths,
        heights=heights,
        errors=errors,
        raw=lambda i: dumps(data[i]),
        notes=notes,
        instance_field="annotations",
        pair_field="hoi_annotation",
        field_names={
            "label": "category_id",
            "verb": "category_id",
            "hoi": "hoi_category_id",
            "subject": "subject_id",
            "object": "object_id",
        },
        verb_base=1,
        hoi_base=1,
        **flat,
    )


def _dim(rec: Any, key: str, err: RecordError | None) -> int:
    return rec[key] if err is None and isinstance(rec, dict) and is_int(rec.get(key)) else -1


def check_upt_record(ann: Any, size: Any) -> RecordError | None:
    if not isinstance(ann, dict):
        return RecordError("annotation", "expected an object")
    n = None
    for key in ("boxes_h", "boxes_o", "hoi", "object", "verb"):
        v = ann.get(key)
        if not isinstance(v, list):
            return RecordError(f"annotation.{key}", "missing or not a list")
        if n is not None and len(v) != n:
            return RecordError(f"annotation.{key}", f"has {len(v)} entries, boxes_h has {n}")
        n = len(v)
        for k, x in enumerate(v):
            ok = is_box(x) if key.startswith("boxes") else is_int(x)
            if not ok:
                return RecordError(
                    f"annotation.{key}[{k}]",
                    f"expected {'4 numbers' if key.startswith('boxes') else 'an integer'}, got {x!r}",
                )
    if size is not None and not (
        isinstance(size, list) and len(size) == 2 and all(is_int(s) and s > 0 for s in size)
    ):
        return RecordError("size", f"expected [width, height] as positive integers, got {size!r}")
    return None


def read_upt(path: Path, data: dict[str, Any], origin: BoxOrigin) -> SourceBatch:
    """The UPT/pocket layout: one dict of parallel lists; boxes per pair, not per instance."""
    anns, names, sizes = data.get("annotation"), data.get("filenames"), data.get("size")
    if not isinstance(anns, list):
        raise HoidataError("expected a list", file=str(path), field="annotation")
    if not isinstance(names, list) or len(names) != len(anns):
        raise HoidataError(f"expected a list of {len(anns)} file names", file=str(path), field="filenames")
    if sizes is not None and (not isinstance(sizes, list) or len(sizes) != len(anns)):
        raise HoidataError(
            f"expected a list of {len(anns)} [width, height] pairs", file=str(path), field="size"
        )
    n = len(anns)
    errors: list[RecordError | None] = [None] * n
    for i, f in enumerate(names):
        if not isinstance(f, str) or not f:
            errors[i] = RecordError("filenames", f"expected a non-empty string, got {f!r}")
    try:
        pairs = _upt_pairs(anns)
        size_arr = np.array(sizes).reshape(n, 2) if sizes is not None else np.full((n, 2), -1)
        if sizes is not None and (size_arr.dtype.kind not in "iu" or (size_arr <= 0).any()):
            raise ValueError("bad size")  # strings, floats, booleans or non-positive values
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError):
        for i in range(n):
            errors[i] = errors[i] or check_upt_record(anns[i], sizes[i] if sizes is not None else None)
        empty = {"boxes_h": [], "boxes_o": [], "hoi": [], "object": [], "verb": []}
        pairs = _upt_pairs([a if errors[i] is None else empty for i, a in enumerate(anns)])
        size_arr = np.array(
            [
                s if errors[i] is None and sizes is not None else [-1, -1]
                for i, s in enumerate(sizes or [None] * n)
            ],
            dtype=np.int64,
        ).reshape(n, 2)
    original_names = names
    if any(errors):
        names = [f if isinstance(f, str) else "" for f in names]

    def raw(i: int) -> str:
        return dumps(
            {
                "filename": original_names[i],
                "annotation": anns[i],
                "size": sizes[i] if sizes is not None else None,
            }
        )

    return _upt_batch(path, origin, names, errors, pairs, size_arr, raw)


def _upt_batch(
    path: Path,
    origin: BoxOrigin,
    names: list[str],
    errors: list[RecordError | None],
    pairs: tuple[np.ndarray, ...],
    size_arr: np.ndarray,
    raw: Callable[[int], str],
) -> SourceBatch:
    """Per-pair UPT columns → instances and interactions, whichever parser read them."""
    pair_offsets = pairs[0]
    for k in np.flatnonzero(pairs[5] < 0).tolist():  # every UPT pair carries its HOI id
        i = int(np.searchsorted(pair_offsets, k, side="right") - 1)
        errors[i] = errors[i] or RecordError(
            f"annotation.hoi[{k - pair_offsets[i]}]", f"HOI id {int(pairs[5][k])} is outside 0..599"
        )
    batch_arrays = instances_from_pairs(*pairs, with_first_rows=True)
    first_rows = batch_arrays.pop("first_rows")

    def item_field(kind: str, k: int, name: str) -> str:
        """Instances are made from the pairs' boxes: name the pair entry an instance came from first."""
        if kind == "pair":
            pair, name = k, {"subject": "boxes_h", "object": "boxes_o"}.get(name, name)
        else:
            row = int(first_rows[k])
            pair, name = row // 2, "object" if name == "label" else ("boxes_h", "boxes_o")[row % 2]
        i = int(np.searchsorted(pair_offsets, pair, side="right") - 1)
        return f"annotation.{name}[{pair - pair_offsets[i]}]"

    return SourceBatch(
        source="hico-det",
        source_file=str(path),
        layout="upt",
        box_origin=origin,
        file_names=names,
        keys=sample_keys(names),
        widths=size_arr[:, 0].copy(),
        heights=size_arr[:, 1].copy(),
        errors=errors,
        raw=raw,
        instance_field="instance",
        pair_field="annotation.hoi",
        field_names={"file_name": "filenames"},
        item_field=item_field,
        **batch_arrays,
    )


_BOXES = pa.list_(pa.list_(pa.float64()))
_IDS = pa.list_(pa.int64())
UPT_ARROW_SCHEMA = pa.schema(
    [
        ("filenames", pa.list_(pa.string())),
        ("size", pa.list_(pa.list_(pa.int64()))),
        (
            "annotation",
            pa.list_(
                pa.struct(
                    [
                        ("boxes_h", _BOXES),
                        ("boxes_o", _BOXES),
                        ("hoi", _IDS),
                        ("object", _IDS),
                        ("verb", _IDS),
                    ]
                )
            ),
        ),
    ]
)


def read_upt_arrow(path: Path, origin: BoxOrigin) -> SourceBatch | None:
    """A well-formed UPT file parsed by Arrow's C++ JSON reader, with no Python object per number.

    Anything irregular (a null, a string where a number belongs, a box of 3 numbers, lists of unequal
    length, not a UPT dict at all) returns None, and the record-by-record reader finds and names it.
    """
    data = read_bytes(path)
    if not re.match(rb"\s*\{", data):
        return None
    pretty = b"\n" in data.rstrip()  # one object over many lines; the one-line reader is faster
    try:
        table = pa_json.read_json(
            pa.BufferReader(data),
            # one block: Arrow's thread pool would parallelise nothing, and starting it costs more
            # than the parse (0.06-0.15 s against 0.04 s on 2 cores)
            read_options=pa_json.ReadOptions(block_size=len(data) + 1, use_threads=False),
            parse_options=pa_json.ParseOptions(
                explicit_schema=UPT_ARROW_SCHEMA,
                unexpected_field_behavior="ignore",
                newlines_in_values=pretty,
            ),
        ).combine_chunks()
    except (pa.ArrowException, OverflowError):
        return None
    names_col, size_col, ann_col = (table.column(k).chunk(0) for k in ("filenames", "size", "annotation"))
    if table.num_rows != 1 or names_col.null_count or ann_col.null_count:
        return None
    records = ann_col.flatten()
    n = len(records)
    names = names_col.flatten()
    if (
        records.null_count
        or len(names) != n
        or names.null_count
        or not (numpy_values(pc.utf8_length(names)) > 0).all()
    ):
        return None
    fields = dict(zip(("boxes_h", "boxes_o", "hoi", "object", "verb"), records.flatten(), strict=True))
    counts = fields["hoi"].value_lengths()
    for col in fields.values():
        if col.null_count or col.flatten().null_count or not col.value_lengths().equals(counts):
            return None
    boxes = {}
    for key in ("boxes_h", "boxes_o"):
        per_pair = fields[key].flatten()
        values = per_pair.flatten()
        if (
            len(values) != 4 * len(per_pair)
            or values.null_count
            or (numpy_values(per_pair.value_lengths()) != 4).any()
        ):
            return None
        boxes[key] = numpy_values(values).reshape(-1, 4)
        if not np.isfinite(boxes[key]).all():  # Arrow reads NaN and Infinity, which JSON forbids
            return None
    if size_col.null_count:
        size_arr, sizes = np.full((n, 2), -1, dtype=np.int64), None
    else:
        sizes = size_col.flatten()
        flat = sizes.flatten()
        if len(sizes) != n or sizes.null_count or flat.null_count or len(flat) != 2 * n:
            return None
        if (numpy_values(sizes.value_lengths()) != 2).any() or (numpy_values(flat) <= 0).any():
            return None
        size_arr = numpy_values(flat).reshape(n, 2)
    pairs = (
        offsets_from_counts(numpy_values(counts)),
        boxes["boxes_h"],
        boxes["boxes_o"],
        *(numpy_values(fields[k].flatten()) for k in ("object", "verb", "hoi")),
    )
    file_names = names.to_pylist()

    def raw(i: int) -> str:
        size = sizes[i].as_py() if sizes is not None else None
        return dumps({"filename": file_names[i], "annotation": records[i].as_py(), "size": size})

    return _upt_batch(path, origin, file_names, [None] * n, pairs, size_arr, raw)


def _upt_pairs(anns: list[dict[str, Any]]) -> tuple[np.ndarray, ...]:
    counts = list(map(len, map(itemgetter("hoi"), anns)))
    for key in ("boxes_h", "boxes_o", "object", "verb"):
        if list(map(len, map(itemgetter(key), anns))) != counts:
            raise ValueError(f"{key} length differs from hoi")
    bh = _flat_boxes([a["boxes_h"] for a in anns], "boxes_h")
    bo = _flat_boxes([a["boxes_o"] for a in anns], "boxes_o")
    objects, verbs, hois = (
        int_array(list(chain.from_iterable(map(itemgetter(k), anns)))) for k in ("object", "verb", "hoi")
    )
    return offsets_from_counts(counts), bh, bo, objects, verbs, hois


def _flat_boxes(per_record: list[list[list[float]]], what: str) -> np.ndarray:
    """Boxes of all records as (N, 4), flattening in C; raises when a box is not 4 numbers."""
    boxes = list(chain.from_iterable(per_record))
    if set(map(len, boxes)) - {4}:
        raise ValueError(f"{what} are not lists of 4 numbers")
    if not set(map(type, chain.from_iterable(boxes))) <= {int, float}:
        raise TypeError(f"{what} are not numbers")
    return np.fromiter(chain.from_iterable(boxes), np.float64, 4 * len(boxes)).reshape(-1, 4)
