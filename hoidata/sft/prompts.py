"""Prompt templates (package data) filled column-wise, with a paraphrase chosen per sample from a
stable hash of its id and the seed, so a rebuild with the same seed gives the same text."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Any

import numpy as np
import pyarrow as pa
import yaml

from hoidata.profiles.text import join_texts

_FIELD = re.compile(r"\{(\w+)\}")
_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


# The one instruction of tool-using prompts: chain-of-focus SFT, gen-cot and GRPO ask with the same words,
# so a model cold-started on chain-of-focus data sees, when it generates, the prompt it was trained on.
COT_INSTRUCTION = (
    "Reason step by step inside <think></think> before every action. Use the tools when they help "
    "you see the people and objects better. Give the final answer inside <answer></answer>."
)


def with_cot_instruction(question: str) -> str:
    """``question`` followed by :data:`COT_INSTRUCTION` (once, however often it is applied)."""
    return question if question.endswith(COT_INSTRUCTION) else f"{question}\n{COT_INSTRUCTION}"


@cache
def templates() -> dict[str, list[str]]:
    text = resources.files("hoidata.sft").joinpath("prompts.yaml").read_text(encoding="utf-8")
    return yaml.safe_load(text)


def stable_hash(strings: pa.Array, salt: int) -> np.ndarray:
    """A 64-bit hash per string that is the same on every machine and version (unlike Python's
    ``hash``): a polynomial hash of the UTF-8 bytes, mixed with ``salt``, then splitmix64."""
    arr = strings.cast(pa.large_string()) if isinstance(strings, pa.Array) else pa.array(strings)
    arr = arr.combine_chunks() if isinstance(arr, pa.ChunkedArray) else arr
    offsets = np.frombuffer(arr.buffers()[1], dtype=np.int64)[arr.offset : arr.offset + len(arr) + 1]
    data = np.frombuffer(arr.buffers()[2], dtype=np.uint8) if arr.buffers()[2] else np.zeros(0, np.uint8)
    data = data[offsets[0] : offsets[-1]].astype(np.uint64)
    lengths = np.diff(offsets)
    pos = np.arange(len(data)) - np.repeat(offsets[:-1] - offsets[0], lengths)
    with np.errstate(over="ignore"):
        powers = np.cumprod(np.full(max(1, int(lengths.max(initial=0))), 1099511628211, np.uint64))
        terms = (data + np.uint64(1)) * powers[pos]
        h = np.zeros(len(arr), np.uint64)
        nonempty = lengths > 0
        if nonempty.any():
            starts = (offsets[:-1] - offsets[0])[nonempty]
            h[nonempty] = np.add.reduceat(terms, starts) if len(terms) else 0
        h = h ^ np.uint64(salt & 0xFFFFFFFFFFFFFFFF)
        h = (h + np.uint64(0x9E3779B97F4A7C15)) & _MASK
        h = ((h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)) & _MASK
        h = ((h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)) & _MASK
        return h ^ (h >> np.uint64(31))


def choose(ids: pa.Array, seed: int, n: int, purpose: str) -> np.ndarray:
    """A choice in ``range(n)`` per id, stable for (id, seed, purpose)."""
    salt = int(stable_hash(pa.array([f"{purpose}:{seed}"]), 0)[0])
    return (stable_hash(ids, salt) % np.uint64(n)).astype(np.int64)


def uniform(ids: pa.Array, seed: int, purpose: str) -> np.ndarray:
    """A number in [0, 1) per id, stable for (id, seed, purpose)."""
    salt = int(stable_hash(pa.array([f"{purpose}:{seed}"]), 0)[0])
    return (stable_hash(ids, salt) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


def fill(name: str, choice: np.ndarray, fields: dict[str, Any]) -> pa.StringArray:
    """Template ``name`` filled per row: row i uses paraphrase ``choice[i]``; a field is an Arrow
    string array (one value per row) or a plain string (the same for all rows)."""
    options = templates()[name]
    n = len(choice)
    chunks, order = [], []
    for k, template in enumerate(options):
        idx = np.flatnonzero(choice % len(options) == k)
        if not len(idx):
            continue
        pieces = _FIELD.split(template)  # literal, field, literal, field, ...
        parts: list[Any] = []
        for j, piece in enumerate(pieces):
            if j % 2 == 0:
                if piece:
                    parts.append(piece)
            else:
                value = fields[piece]
                parts.append(value if isinstance(value, str) else value.take(pa.array(idx)))
        chunks.append(join_texts(parts, len(idx)))
        order.append(idx)
    if not chunks:
        return pa.array([], pa.string())
    perm = np.concatenate(order)
    inverse = np.empty(n, np.int64)
    inverse[perm] = np.arange(n)
    return pa.concat_arrays(chunks).take(pa.array(inverse))
