"""The text both sides of a model share: how boxes and answers are marked up, and names as written.

:mod:`~hoidata.profiles.profile` writes answers with these pieces and
:mod:`~hoidata.profiles.answers` reads them back, so both agree on every token and pattern.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc


class BoxStyle(StrEnum):
    JSON = "json"  # [x1, y1, x2, y2]; answers as JSON with "*_bbox_2d" keys
    TOKENS = "tokens"  # <|box_start|>(x1,y1),(x2,y2)<|box_end|>


REF_START, REF_END = "<|object_ref_start|>", "<|object_ref_end|>"
BOX_START, BOX_END = "<|box_start|>", "<|box_end|>"
THINK = ("<think>", "</think>")
ANSWER = ("<answer>", "</answer>")

_NUMBER = r"-?\d+(?:\.\d+)?"
_JSON_BOX = re.compile(rf"\[\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\]")
_TOKEN_BOX = re.compile(
    rf"\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)\s*,\s*\(\s*({_NUMBER})\s*,\s*({_NUMBER})\s*\)"
)


def display_name(name: str) -> str:
    """Taxonomy names as people write them: ``sports_ball`` → ``sports ball``."""
    return name.replace("_", " ")


def taxonomy_name(text: str) -> str:
    """The inverse of :func:`display_name`, tolerant of case and spacing."""
    return "_".join(text.strip().lower().split())


def box_pattern(style: BoxStyle) -> re.Pattern[str]:
    """A box as ``style`` writes it; its four groups are the numbers."""
    return _JSON_BOX if style is BoxStyle.JSON else _TOKEN_BOX


def token_entry(line: str) -> dict[str, Any] | None:
    """``person (box) verb object (box)`` with or without the special tokens (decoders drop them)."""
    found = list(_TOKEN_BOX.finditer(line))
    if not found:
        return None
    first = found[0]
    entry: dict[str, Any] = {"person": [float(g) for g in first.groups()], "object_box": None}
    between = line[first.end() : found[1].start()] if len(found) > 1 else line[first.end() :]
    between = between.replace(BOX_END, "").replace(BOX_START, "")
    if len(found) > 1:
        entry["object_box"] = [float(g) for g in found[1].groups()]
    if REF_START in between:
        verb, _, obj = between.partition(REF_START)
        entry["verb"], entry["object"] = verb.strip() or None, obj.replace(REF_END, "").strip() or None
    else:
        words = between.strip()
        entry["verb"] = words or None
    return entry


def join_texts(parts: list[Any], n: int) -> pa.StringArray:
    """Element-wise concatenation of ``n``-long string arrays and literals (literals broadcast)."""
    arrays = [p if isinstance(p, pa.Array | pa.ChunkedArray) else pa.scalar(p, pa.string()) for p in parts]
    if not any(isinstance(a, pa.Array | pa.ChunkedArray) for a in arrays):
        return pa.array(["".join(parts)] * n, pa.string())
    out = pc.binary_join_element_wise(*arrays, "")
    return out.combine_chunks() if isinstance(out, pa.ChunkedArray) else out
