"""The SFT dataset schema: TRL's ``images`` + ``messages``, plus metadata that keeps every sample
traceable to its canonical record and checkable (``pairs`` holds the ground truth it covers).

One schema for all tasks, so datasets of different tasks concatenate and interleave.
"""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from hoidata.schemas.canonical import BBOX, IMAGE, MODEL_BBOX, _list, _value

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
    bbox = _list(_value("float32"), 4)
    image = {"_type": "Image"} if decode_images else {"decode": False, "_type": "Image"}
    content = _list({"type": _value("string"), "text": _value("string")})
    tool_call = {
        "type": _value("string"),
        "function": {"name": _value("string"), "arguments": _value("string")},
    }
    return {
        "sample_id": _value("string"),
        "source_id": _value("string"),
        "task": _value("string"),
        "images": _list(image),
        "messages": _list({"role": _value("string"), "content": content, "tool_calls": _list(tool_call)}),
        "tools": _value("string"),
        "width": _value("int32"),
        "height": _value("int32"),
        "resized_width": _value("int32"),
        "resized_height": _value("int32"),
        "pairs": _list(
            {
                "person_bbox": bbox,
                "object_bbox": bbox,
                "verb": _value("string"),
                "verb_id": _value("int32"),
                "object": _value("string"),
                "object_id": _value("int32"),
                "hoi_id": _value("int32"),
            }
        ),
        "refer_boxes": _list(_list(_value("int32"), 4)),
        "uses_tool": _value("bool"),
    }
