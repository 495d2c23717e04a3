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


def multi_turn(question: pa.Array, answer: pa.Array, offsets: np.ndarray) -> pa.ListArray:
    """One conversation per group of items (``offsets`` over items, in order): user [image, q0] →
    assistant [a0] → user [q1] → assistant [a1] …, the image shown once, in the first turn."""
    n, n_conv = len(question), len(offsets) - 1
    offsets = np.asarray(offsets, np.int64)
    conv = np.repeat(np.arange(n_conv), np.diff(offsets))
    i = np.arange(n)
    first = i == offsets[:-1][conv]
    # blocks of conversation c: [image, q, a, q, a, ...]; item i's q at c + 2i + 1, its a at c + 2i + 2
    text = pa.concat_arrays([question.cast(pa.string()), answer.cast(pa.string()), pa.nulls(1, pa.string())])
    take = np.full(n_conv + 2 * n, 2 * n, np.int64)
    take[conv + 2 * i + 1] = i
    take[conv + 2 * i + 2] = n + i
    kinds = np.full(n_conv + 2 * n, "text", object)
    kinds[conv[first] + 2 * i[first]] = "image"
    blocks = pa.StructArray.from_arrays(
        [pa.array(kinds, pa.string()), text.take(pa.array(take))], fields=list(CONTENT)
    )
    starts = np.empty(2 * n + 1, np.int64)
    starts[0::2][:n] = conv + 2 * i + 1 - first
    starts[1::2] = conv + 2 * i + 2
    starts[-1] = n_conv + 2 * n
    messages = pa.StructArray.from_arrays(
        [
            pa.array(np.tile(np.array(["user", "assistant"], object), n), pa.string()),
            pa.ListArray.from_arrays(pa.array(starts, pa.int32()), blocks),
            pa.nulls(2 * n, pa.list_(TOOL_CALL)),
        ],
        fields=list(MESSAGE),
    )
    return pa.ListArray.from_arrays(pa.array(2 * offsets, pa.int32()), messages)
