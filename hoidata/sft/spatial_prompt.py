"""The one text form of a spatial-linking question, shared by ``build-sft spatial`` and ``predict``.

A spatial-linking model reads every region the prompt refers to as ``<|box_start|>BOX<|box_end|>``
(``BOX`` as the profile writes a box, in its frame): the hidden state at each ``<|box_end|>`` is
linked to the image patches inside that box. Training data and prediction prompts come from the
functions here, so both carry the same tokens in the same places; the module then trains on the
text it is asked with. Regions come as ``[person, object, union]`` (``refer_boxes``); a sample
without an object names the person only.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.errors import HoidataError
from hoidata.profiles import Profile
from hoidata.profiles.text import BOX_END, BOX_START, BoxStyle, display_name, join_texts

QUESTION = (
    "Look at the person {person}, the {object} {object_box} and the region around both {union}. "
    "What is the person doing with the {object}?"
)
QUESTION_NO_OBJECT = "Look at the person {person}. What is the person doing?"
RELATIVE = "relative-1000"  # a profile frame (hoidata.profiles.BoxFrame); the other is resized pixels
REGIONS = ("person", "object", "union")  # the order of refer_boxes and of the boxes in QUESTION

_FIELD = re.compile(r"\{(\w+)\}")
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")
_SPAN = re.compile(re.escape(BOX_START) + "(.*?)" + re.escape(BOX_END), re.S)


def linked_box_texts(profile: Profile, model_boxes: Any) -> pa.StringArray:
    """Model-frame boxes (N, 4) as the profile writes them, each between ``<|box_start|>`` and
    ``<|box_end|>`` (the token style already carries them)."""
    texts = profile.box_texts(model_boxes)
    if profile.style is BoxStyle.TOKENS:
        return texts
    return join_texts([BOX_START, texts, BOX_END], len(texts))


def spatial_questions(
    profile: Profile, refer_boxes: Any, objects: pa.Array, has_object: Any
) -> pa.StringArray:
    """One question per sample: ``refer_boxes`` (N, 3, 4) model-frame ``[person, object, union]``,
    ``objects`` display names, ``has_object`` (N,) bool (without an object only the person is named)."""
    boxes = np.asarray(refer_boxes, np.int64).reshape(-1, 3, 4)
    n = len(boxes)
    fields: dict[str, Any] = {
        name: linked_box_texts(profile, boxes[:, k])
        for name, k in (("person", 0), ("object_box", 1), ("union", 2))
    }
    fields["object"] = objects.cast(pa.string())
    with_object = _fill(QUESTION, fields, n)
    if n and np.asarray(has_object, bool).all():
        return with_object
    without = _fill(QUESTION_NO_OBJECT, fields, n)
    return pc.if_else(pa.array(np.asarray(has_object, bool)), with_object, without)


def spatial_question(profile: Profile, refer_boxes: Any, object_name: str | None) -> str:
    """The question for one sample; ``object_name`` None: a person without an object."""
    boxes = np.asarray(refer_boxes, np.int64).reshape(1, -1, 4)
    if boxes.shape[1] == 1:  # the person only
        boxes = np.repeat(boxes, 3, axis=1)
    objects = pa.array([object_name or ""], pa.string())
    return spatial_questions(profile, boxes, objects, [object_name is not None])[0].as_py()


def _fill(template: str, fields: dict[str, Any], n: int) -> pa.StringArray:
    pieces = _FIELD.split(template)  # literal, field, literal, field, ...
    parts = [fields[p] if k % 2 else p for k, p in enumerate(pieces) if p]
    return join_texts(parts, n)


def box_numbers(inner: str) -> list[float] | None:
    """The four numbers of a box as written between the box tokens, or None if it holds other than four."""
    found = _NUMBER.findall(inner)
    return [float(x) for x in found] if len(found) == 4 else None


def linked_boxes(text: str) -> list[list[float]]:
    """Every ``<|box_start|>…<|box_end|>`` box in ``text``, in order; ``ValueError`` saying why when
    the tokens do not pair up or a box is not four numbers."""
    if text.count(BOX_START) != text.count(BOX_END):
        raise ValueError(f"{text.count(BOX_START)} {BOX_START} but {text.count(BOX_END)} {BOX_END}")
    boxes = []
    for k, match in enumerate(_SPAN.finditer(text)):
        inner = match.group(1)
        if BOX_START in inner:
            raise ValueError(f"box {k}: {BOX_START} opened twice before {BOX_END}")
        numbers = box_numbers(inner)
        if numbers is None:
            raise ValueError(f"box {k}: {inner!r} is not four numbers")
        boxes.append(numbers)
    if len(boxes) != text.count(BOX_START):
        raise ValueError(f"{BOX_END} before its {BOX_START}")
    return boxes


def prompt_boxes(messages: Sequence[dict[str, Any]] | None, prompt_key: str = "user") -> list[list[float]]:
    """The linked boxes of every ``user`` turn of a TRL conversation (text blocks or plain strings)."""
    boxes: list[list[float]] = []
    for message in messages or []:
        if message.get("role") != prompt_key:
            continue
        content = message.get("content")
        texts = [content] if isinstance(content, str) else [b.get("text") or "" for b in content or []]
        for text in texts:
            boxes += linked_boxes(text)
    return boxes


def box_problem(box: list[float], width: float, height: float, frame: str) -> str | None:
    """Why ``box`` cannot be linked to an image whose frame is ``width`` × ``height`` (inverted, or
    outside it), or None."""
    x1, y1, x2, y2 = box
    if x1 > x2 or y1 > y2:
        return f"box {_text(box)} is inverted"
    if x1 < 0 or y1 < 0 or x2 > width or y2 > height:
        return f"box {_text(box)} lies outside the image ({_text([0, 0, width, height])} in {frame})"
    return None


def frame_extent(frame: str, resized_width: float, resized_height: float) -> tuple[float, float]:
    """Width and height of the frame boxes are written in, for an image resized to this size."""
    return (1000.0, 1000.0) if frame == RELATIVE else (float(resized_width), float(resized_height))


def _text(box: list[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in box) + "]"


def sample_question(row: dict[str, Any], profile: Profile) -> str:
    """What an SFT sample is asked: a spatial sample's question rebuilt from its ``refer_boxes`` (the
    text build-sft writes, box tokens included, even for data built before them), else its first
    user text. One-line errors name the sample and field of a box outside the image."""
    if row.get("task") != "spatial":
        user = next(m for m in row["messages"] if m["role"] == "user")
        return next(b["text"] for b in user["content"] if b["type"] == "text")
    first = (row.get("pairs") or [None])[0]
    if first is None:
        raise HoidataError("a spatial sample without pairs", record=row["sample_id"], field="pairs")
    has_object = first.get("object_bbox") is not None
    refer = row.get("refer_boxes")
    if refer is None:  # boxes --no-object null: only the person is named
        refer = profile.to_model([first["person_bbox"]], row["width"], row["height"])
    refer = [[float(v) for v in box] for box in (refer if has_object else refer[:1])]
    rw, rh = profile.resized([row["width"]], [row["height"]])
    width, height = frame_extent(str(profile.frame), rw[0], rh[0])
    for k, box in enumerate(refer):
        problem = box_problem(box, width, height, str(profile.frame))
        if problem:
            raise HoidataError(f"box {k}: {problem}", record=row["sample_id"], field="refer_boxes")
    name = display_name(first["object"]) if has_object and first.get("object") else None
    if has_object and name is None:
        raise HoidataError("an object box without an object name", record=row["sample_id"], field="pairs")
    return spatial_question(profile, refer, name)
