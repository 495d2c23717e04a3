"""SWIG-HOI JSON (``swig_{train,dev,val,test}_1000.json``): a list of image records.

Boxes are absolute pixels with a 0-based continuous origin by default (the THID evaluator uses no
+1 and boxes reach the image edge, e.g. ``y2 == height``). Object ``category_id`` indexes the 1000
categories (0 = person); ``action_id`` the 407 actions; the HOI id comes from (action, object).
``aux_category_id`` (other annotators' labels) is not kept.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from hoidata.errors import HoidataError
from hoidata.schemas.boxes import BoxOrigin
from hoidata.sources.base import SourceBatch, dumps, is_int, read_json, sample_keys
from hoidata.sources.records import RecordLayout, flatten_records

SWIG = RecordLayout(instances="box_annotations", pairs="hoi_annotations", verb="action_id")
DEFAULT_ORIGIN = BoxOrigin.CONTINUOUS


def read_swig(path: Path, box_origin: BoxOrigin | None = None) -> SourceBatch:
    path = Path(path)
    data = read_json(path)
    if not isinstance(data, list):
        raise HoidataError(f"expected a list of image records, got {type(data).__name__}", file=str(path))
    # the first record that names its boxes or pairs tells the layout (a malformed first record must not)
    first = next(
        (
            r
            for r in data
            if isinstance(r, dict) and ({"box_annotations", "hoi_annotations", "hoi_annotation"} & r.keys())
        ),
        None,
    )
    if first is not None and "hoi_annotation" in first and "hoi_annotations" not in first:
        raise HoidataError("this is a HICO-DET PPDM file: use `hoidata convert hico`", file=str(path))
    if data and first is None:
        raise HoidataError(
            "unknown layout: no record has 'box_annotations' or 'hoi_annotations' (is this a SWIG-HOI file?)",
            file=str(path),
        )
    flat, errors = flatten_records(data, SWIG)
    ok = [e is None and isinstance(r, dict) for r, e in zip(data, errors, strict=True)]
    # rejected records keep a usable file name, so that rejects.parquet names the sample
    names = [
        r["file_name"] if isinstance(r, dict) and isinstance(r.get("file_name"), str) else "" for r in data
    ]

    def dim(key: str) -> np.ndarray:
        return np.array(
            [r[key] if good and is_int(r.get(key)) else -1 for r, good in zip(data, ok, strict=True)],
            dtype=np.int64,
        )

    return SourceBatch(
        source="swig-hoi",
        source_file=str(path),
        layout="swig",
        box_origin=BoxOrigin(box_origin or DEFAULT_ORIGIN),
        file_names=names,
        keys=sample_keys(names),
        widths=dim("width"),
        heights=dim("height"),
        errors=errors,
        raw=lambda i: dumps(data[i]),
        instance_field="box_annotations",
        pair_field="hoi_annotations",
        field_names={
            "label": "category_id",
            "verb": "action_id",
            "subject": "subject_id",
            "object": "object_id",
        },
        **flat,
    )
