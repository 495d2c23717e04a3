"""Conversations as Arrow columns in TRL's format: ``{"role", "content": [{"type", "text"}], "tool_calls"}``."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from hoidata.sft.schema import CONTENT, MESSAGE, TOOL_CALL


def single_turn(question: pa.Array, answer: pa.Array) -> pa.ListArray:
    """user [image, question] → assistant [answer], for every row at once."""
    n = len(question)
    text = pa.concat_arrays([question.cast(pa.string()), answer.cast(pa.string()), pa.nulls(1, pa.string())])
    i = np.arange(n)
    take = np.stack([np.full(n, 2 * n), i, n + i], axis=1).reshape(-1)
    blocks = pa.StructArray.from_arrays(
        [
            pa.array(np.tile(np.array(["image", "text", "text"], object), n), pa.string()),
            text.take(pa.array(take)),
        ],
        fields=list(CONTENT),
    )
    content_offsets = np.zeros(2 * n + 1, np.int64)
    content_offsets[1::2] = 3 * i + 2
    content_offsets[2::2] = 3 * i + 3
    messages = pa.StructArray.from_arrays(
        [
            pa.array(np.tile(np.array(["user", "assistant"], object), n), pa.string()),
            pa.ListArray.from_arrays(pa.array(content_offsets, pa.int32()), blocks),
            pa.nulls(2 * n, pa.list_(TOOL_CALL)),
        ],
        fields=list(MESSAGE),
    )
    return pa.ListArray.from_arrays(pa.array(np.arange(0, 2 * n + 1, 2), pa.int32()), messages)


def text(t: str) -> dict[str, Any]:
    return {"type": "text", "text": t}


IMAGE_BLOCK: dict[str, Any] = {"type": "image", "text": None}


def message(role: str, content: list[dict[str, Any]], tool_calls: list[dict] | None = None) -> dict[str, Any]:
    return {"role": role, "content": content, "tool_calls": tool_calls}


def to_arrow(conversations: list[list[dict[str, Any]]]) -> pa.ListArray:
    return pa.array(conversations, pa.list_(MESSAGE))
