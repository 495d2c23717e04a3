"""The canonical HOI dataset schema, as Arrow types plus the `datasets` Features metadata.

The Features dict is written into every Parquet file's ``huggingface`` metadata, so that
``datasets.load_dataset("parquet", ...)`` gives back ``Image`` and ``List`` types. It is spelled out
here (not built with ``datasets``) to keep the data stages free of that import.
"""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

SOURCES = ("hico-det", "swig-hoi", "hoi-qa")

BBOX = pa.list_(pa.float32(), 4)
IMAGE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
INSTANCE = pa.struct(
    [("bbox", BBOX), ("label", pa.string()), ("label_id", pa.int32()), ("is_human", pa.bool_())]
)
INTERACTION = pa.struct(
    [
        ("subject", pa.int32()),
        ("object", pa.int32()),  # -1: the interaction has no object
        ("verb", pa.string()),
        ("verb_id", pa.int32()),
        ("hoi_id", pa.int32()),
    ]
)
QA_ITEM = pa.struct(
    [
        ("task", pa.string()),
        ("question", pa.string()),  # each "<box>" refers to the next box of question_boxes
        ("answer", pa.string()),  # each "<box>" refers to the next box of answer_boxes
        ("question_boxes", pa.list_(BBOX)),
        ("answer_boxes", pa.list_(BBOX)),
    ]
)
BOX_PLACEHOLDER = "<box>"

SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("source", pa.string()),
        ("split", pa.string()),
        ("image", IMAGE),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("instances", pa.list_(INSTANCE)),
        ("interactions", pa.list_(INTERACTION)),
        ("qa", pa.list_(QA_ITEM)),
    ]
)

REJECTS_SCHEMA = pa.schema(
    [
        ("source_file", pa.string()),
        ("record_index", pa.int64()),
        ("sample_id", pa.string()),
        ("field", pa.string()),
        ("reason", pa.string()),
        ("raw", pa.string()),  # the record as it was read, so nothing is lost
    ]
)


def value_feature(dtype: str) -> dict[str, Any]:
    """A ``datasets`` Value feature as the plain dict Arrow metadata stores, without importing datasets."""
    return {"dtype": dtype, "_type": "Value"}


def list_feature(feature: Any, length: int | None = None) -> dict[str, Any]:
    """A ``datasets`` List feature of ``feature`` (fixed ``length`` when given), as a dict."""
    out: dict[str, Any] = {"feature": feature}
    if length is not None:
        out["length"] = length
    out["_type"] = "List"
    return out


def features(decode_images: bool = True) -> dict[str, Any]:
    """The `datasets` Features of the canonical schema, as ``Features.to_dict()`` spells them.

    ``decode_images=False`` suits datasets that hold relative image paths and no bytes: `datasets`
    then hands back ``{"bytes", "path"}`` instead of failing to open a path relative to elsewhere.
    """
    bbox = list_feature(value_feature("float32"), 4)
    return {
        "sample_id": value_feature("string"),
        "source": value_feature("string"),
        "split": value_feature("string"),
        "image": {"_type": "Image"} if decode_images else {"decode": False, "_type": "Image"},
        "width": value_feature("int32"),
        "height": value_feature("int32"),
        "instances": list_feature(
            {
                "bbox": bbox,
                "label": value_feature("string"),
                "label_id": value_feature("int32"),
                "is_human": value_feature("bool"),
            }
        ),
        "interactions": list_feature(
            {
                "subject": value_feature("int32"),
                "object": value_feature("int32"),
                "verb": value_feature("string"),
                "verb_id": value_feature("int32"),
                "hoi_id": value_feature("int32"),
            }
        ),
        "qa": list_feature(
            {
                "task": value_feature("string"),
                "question": value_feature("string"),
                "answer": value_feature("string"),
                "question_boxes": list_feature(bbox),
                "answer_boxes": list_feature(bbox),
            }
        ),
    }


def rejects_features() -> dict[str, Any]:
    return {f.name: value_feature("int64" if f.type == pa.int64() else "string") for f in REJECTS_SCHEMA}


def with_features(schema: pa.Schema, feats: dict[str, Any]) -> pa.Schema:
    """Attach the `datasets` Features metadata to an Arrow schema."""
    meta = dict(schema.metadata or {})
    meta[b"huggingface"] = json.dumps({"info": {"features": feats}}).encode()
    return schema.with_metadata(meta)


# ---- the canonical schema plus the boxes stage's columns --------------------------------------------
MODEL_BBOX = pa.list_(pa.int32(), 4)
BOXED_INSTANCE = pa.struct([*INSTANCE, ("model_bbox", MODEL_BBOX)])
BOXED_INTERACTION = pa.struct(
    [
        *INTERACTION,
        ("union_bbox", BBOX),  # person ∪ object (padded, clipped to the image), canonical pixels
        ("refer_boxes", pa.list_(BBOX)),  # [person, object, union], canonical pixels
        ("model_union_bbox", MODEL_BBOX),
        ("model_refer_boxes", pa.list_(MODEL_BBOX)),  # [person, object, union] in the profile's frame
    ]
)
BOXED_SCHEMA = pa.schema(
    [
        *(f for f in SCHEMA if f.name not in ("instances", "interactions")),
        ("resized_width", pa.int32()),  # the profile's smart_resize size of the image
        ("resized_height", pa.int32()),
        ("instances", pa.list_(BOXED_INSTANCE)),
        ("interactions", pa.list_(BOXED_INTERACTION)),
    ]
)


def boxed_features(decode_images: bool = True) -> dict[str, Any]:
    """Features of :data:`BOXED_SCHEMA`, in its column order."""
    base = features(decode_images)
    bbox, model_bbox = list_feature(value_feature("float32"), 4), list_feature(value_feature("int32"), 4)
    instance = dict(base["instances"]["feature"]) | {"model_bbox": model_bbox}
    interaction = dict(base["interactions"]["feature"]) | {
        "union_bbox": bbox,
        "refer_boxes": list_feature(bbox),
        "model_union_bbox": model_bbox,
        "model_refer_boxes": list_feature(model_bbox),
    }
    extra = {
        "resized_width": value_feature("int32"),
        "resized_height": value_feature("int32"),
        "instances": list_feature(instance),
        "interactions": list_feature(interaction),
    }
    return {f.name: extra.get(f.name, base.get(f.name)) for f in BOXED_SCHEMA}
