"""The SFT dataset schema: TRL's ``images`` + ``messages``, plus metadata that keeps every sample
traceable to its canonical record and checkable (``pairs`` holds the ground truth it covers).

One schema for all tasks, so datasets of different tasks concatenate and interleave.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from hoidata.schemas.canonical import BBOX, IMAGE, MODEL_BBOX, list_feature, value_feature

CONTENT = pa.struct([("type", pa.string()), ("text", pa.string())])  # text is null for image blocks
FUNCTION = pa.struct([("name", pa.string()), ("arguments", pa.string())])  # arguments: a JSON object
TOOL_CALL = pa.struct([("type", pa.string()), ("function", FUNCTION)])
MESSAGE = pa.struct(
    [("role", pa.string()), ("content", pa.list_(CONTENT)), ("tool_calls", pa.list_(TOOL_CALL))]
)
PAIR = pa.struct(
    [
        ("person_bbox", BBOX),  # canonical pixels of the stored image
        ("object_bbox", BBOX),  # null when the interaction has no object
        ("verb", pa.string()),
        ("verb_id", pa.int32()),
        ("object", pa.string()),
        ("object_id", pa.int32()),
        ("hoi_id", pa.int32()),
    ]
)
SFT_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("source_id", pa.string()),  # the canonical record's sample_id
        ("task", pa.string()),
        ("images", pa.list_(IMAGE)),
        ("messages", pa.list_(MESSAGE)),
        ("tools", pa.string()),  # JSON list of tool schemas when the sample calls tools (TRL's column)
        ("width", pa.int32()),  # of the stored image (the resized one with --resize)
        ("height", pa.int32()),
        ("resized_width", pa.int32()),  # what the profile's processor makes of it
        ("resized_height", pa.int32()),
        ("pairs", pa.list_(PAIR)),
        ("refer_boxes", pa.list_(MODEL_BBOX)),  # spatial: [person, object, union] in the profile's frame
        ("uses_tool", pa.bool_()),
    ]
)


def sft_features(decode_images: bool) -> dict[str, Any]:
    bbox = list_feature(value_feature("float32"), 4)
    image = {"_type": "Image"} if decode_images else {"decode": False, "_type": "Image"}
    content = list_feature({"type": value_feature("string"), "text": value_feature("string")})
    tool_call = {
        "type": value_feature("string"),
        "function": {"name": value_feature("string"), "arguments": value_feature("string")},
    }
    return {
        "sample_id": value_feature("string"),
        "source_id": value_feature("string"),
        "task": value_feature("string"),
        "images": list_feature(image),
        "messages": list_feature(
            {"role": value_feature("string"), "content": content, "tool_calls": list_feature(tool_call)}
        ),
        "tools": value_feature("string"),
        "width": value_feature("int32"),
        "height": value_feature("int32"),
        "resized_width": value_feature("int32"),
        "resized_height": value_feature("int32"),
        "pairs": list_feature(
            {
                "person_bbox": bbox,
                "object_bbox": bbox,
                "verb": value_feature("string"),
                "verb_id": value_feature("int32"),
                "object": value_feature("string"),
                "object_id": value_feature("int32"),
                "hoi_id": value_feature("int32"),
            }
        ),
        "refer_boxes": list_feature(list_feature(value_feature("int32"), 4)),
        "uses_tool": value_feature("bool"),
    }
