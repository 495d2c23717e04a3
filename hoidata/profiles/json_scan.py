"""A compiled scanner for JSON answers, for the texts rewards see most: well-formed pair lists.

RL scores hundreds of thousands of completions per step, and a trained policy answers in the
format it was taught: ``[{"person_bbox_2d": [x1, y1, x2, y2], "verb": "...", ...}, ...]``. This
scanner reads that format straight from the UTF-8 bytes of a whole batch, in one compiled pass per
text, without a Python object per value. It accepts a strict subset of JSON: a list of objects
(or one object) whose keys are the six answer keys, each at most once; box values are lists of
four integers of at most 15 digits (exact in float64); strings have no escapes and no ``<``; values may
be ``null``; whitespace is JSON's. A text that strays from that subset in any way (a decimal, an
escape, an unknown key, a list of three numbers, a list inside prose) is reported as not scanned, and
:mod:`hoidata.profiles.answers` reads it with orjson instead, so both readers agree on every text
the scanner accepts. Text without any ``[`` or ``{`` has no entries.

Outputs per entry: three boxes (``person_bbox_2d``, ``object_bbox_2d``, ``bbox_2d``; NaN when
absent or null) and three byte spans (``label``, ``verb``, ``object``; -1 when absent or null).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from hoidata.jit import start_numba

# key ids: boxes 0-2, strings 3-5, the order of the output columns
BOX_KEYS = ("person_bbox_2d", "object_bbox_2d", "bbox_2d")
STRING_KEYS = ("label", "verb", "object")
_KEYS = tuple(k.encode() for k in BOX_KEYS + STRING_KEYS)
_KEY_BYTES = np.zeros((len(_KEYS), max(map(len, _KEYS))), np.uint8)
_KEY_LENGTHS = np.array([len(k) for k in _KEYS], np.int64)
for _i, _k in enumerate(_KEYS):
    _KEY_BYTES[_i, : len(_k)] = np.frombuffer(_k, np.uint8)
_OPEN, _CLOSE = np.frombuffer(b"<answer>", np.uint8).copy(), np.frombuffer(b"</answer>", np.uint8).copy()
_NULL = np.frombuffer(b"null", np.uint8).copy()
_MAX_DIGITS = 15


def scan_answers(data: np.ndarray, offsets: np.ndarray) -> tuple[np.ndarray, ...]:
    """Scan every text ``data[offsets[i]:offsets[i+1]]`` (UTF-8 bytes).

    Returns ``(scanned, counts, boxes, spans)``: per text whether it was scanned and how many
    entries it has; per entry ``boxes`` (E, 3, 4) float64 and ``spans`` (E, 3, 2) int64 byte spans
    into ``data``. Entries of texts that were not scanned are absent.
    """
    start_numba()
    capacity = _count(data, ord("{"))  # every entry opens with a brace
    return _scan(data, offsets.astype(np.int64), capacity, _KEY_BYTES, _KEY_LENGTHS, _OPEN, _CLOSE, _NULL)


@njit(cache=True)
def _count(data, byte):
    n = 0
    for c in data:
        n += c == byte
    return n


@njit(cache=True)
def _scan(data, offsets, capacity, key_bytes, key_lengths, open_tag, close_tag, null):
    n = len(offsets) - 1
    scanned = np.zeros(n, np.bool_)
    counts = np.zeros(n, np.int64)
    boxes = np.empty((capacity, 3, 4), np.float64)
    spans = np.empty((capacity, 3, 2), np.int64)
    e = 0
    for i in range(n):
        start, end = _answer_span(data, offsets[i], offsets[i + 1], open_tag, close_tag)
        after = _body(data, start, end, e, boxes, spans, key_bytes, key_lengths, null)
        if after >= 0:
            scanned[i] = True
            counts[i] = after - e
            e = after
    return scanned, counts, boxes[:e], spans[:e]


@njit(cache=True)
def _matches(data, at, end, tag):
    if at + len(tag) > end:
        return False
    for k in range(len(tag)):  # noqa: SIM110 (compiled: no generators)
        if data[at + k] != tag[k]:
            return False
    return True


@njit(cache=True)
def _answer_span(data, start, end, open_tag, close_tag):
    """Inside the last closed ``<answer>`` block, else the whole text (as ``answer_body``).

    The block runs to the last ``</answer>``; ``answer_body`` stops at the first one after the
    block opens, which is the same one whenever a scan succeeds, as scanned text has no ``<``.
    """
    close = -1
    for at in range(end - len(close_tag), start - 1, -1):
        if data[at] == 60 and _matches(data, at, end, close_tag):  # '<'
            close = at
            break
    for at in range(close - len(open_tag), start - 1, -1):
        if data[at] == 60 and _matches(data, at, end, open_tag):
            return at + len(open_tag), close
    return start, end


@njit(cache=True)
def _ws(data, at, end):
    while at < end and (data[at] == 32 or data[at] == 10 or data[at] == 13 or data[at] == 9):
        at += 1
    return at


@njit(cache=True)
def _body(data, at, end, e, boxes, spans, key_bytes, key_lengths, null):
    """Entries of one answer written from slot ``e``; the next free slot, or -1 if not scanned."""
    at = _ws(data, at, end)
    if at < end and data[at] == 123:  # '{': one object
        at = _entry(data, at, end, e, boxes, spans, key_bytes, key_lengths, null)
        if at < 0 or _ws(data, at, end) != end:
            return -1
        return e + 1
    if at >= end or data[at] != 91:  # '['
        return -1 if _has_bracket(data, at, end) else e  # prose: no JSON value to read
    at = _ws(data, at + 1, end)
    if at < end and data[at] == 93:  # ']'
        return e if _ws(data, at + 1, end) == end else -1
    while True:
        if at >= end or data[at] != 123:
            return -1
        at = _entry(data, at, end, e, boxes, spans, key_bytes, key_lengths, null)
        if at < 0:
            return -1
        e += 1
        at = _ws(data, at, end)
        if at < end and data[at] == 44:  # ','
            at = _ws(data, at + 1, end)
        elif at < end and data[at] == 93:
            return e if _ws(data, at + 1, end) == end else -1
        else:
            return -1


@njit(cache=True)
def _has_bracket(data, at, end):
    for k in range(at, end):  # noqa: SIM110 (compiled: no generators)
        if data[k] == 91 or data[k] == 123:
            return True
    return False


@njit(cache=True)
def _entry(data, at, end, e, boxes, spans, key_bytes, key_lengths, null):
    """One ``{...}`` entry into slot ``e``; the position after it, or -1."""
    boxes[e, :, :] = np.nan
    spans[e, :, :] = -1
    at = _ws(data, at + 1, end)
    if at < end and data[at] == 125:  # '}': an empty entry
        return at + 1
    seen = 0
    while True:
        if at >= end or data[at] != 34:  # '"'
            return -1
        stop = _string_end(data, at + 1, end)
        if stop < 0:
            return -1
        key = _key(data, at + 1, stop, key_bytes, key_lengths)
        if key < 0 or seen & (1 << key):
            return -1
        seen |= 1 << key
        at = _ws(data, stop + 1, end)
        if at >= end or data[at] != 58:  # ':'
            return -1
        at = _ws(data, at + 1, end)
        if _matches(data, at, end, null):
            at += 4
        elif key < 3:
            at = _box(data, at, end, boxes, e, key)
        elif at < end and data[at] == 34:
            stop = _string_end(data, at + 1, end)
            if stop < 0:
                return -1
            spans[e, key - 3, 0] = at + 1
            spans[e, key - 3, 1] = stop
            at = stop + 1
        else:
            return -1
        if at < 0:
            return -1
        at = _ws(data, at, end)
        if at < end and data[at] == 44:
            at = _ws(data, at + 1, end)
        elif at < end and data[at] == 125:
            return at + 1
        else:
            return -1


@njit(cache=True)
def _string_end(data, at, end):
    """The closing quote of a string without escapes, control characters or ``<``, or -1."""
    while at < end:
        c = data[at]
        if c == 34:
            return at
        if c == 92 or c < 32 or c == 60:
            return -1
        at += 1
    return -1


@njit(cache=True)
def _key(data, start, stop, key_bytes, key_lengths):
    for k in range(len(key_lengths)):
        if stop - start == key_lengths[k]:
            same = True
            for j in range(stop - start):
                if data[start + j] != key_bytes[k, j]:
                    same = False
                    break
            if same:
                return k
    return -1


@njit(cache=True)
def _box(data, at, end, boxes, e, key):
    """``[a, b, c, d]`` of JSON integers into ``boxes[e, key]``; the position after it, or -1."""
    if at >= end or data[at] != 91:
        return -1
    at = _ws(data, at + 1, end)
    for k in range(4):
        if k:
            if at >= end or data[at] != 44:
                return -1
            at = _ws(data, at + 1, end)
        negative = at < end and data[at] == 45  # '-'
        if negative:
            at += 1
        first = at
        value = 0
        while at < end and 48 <= data[at] <= 57:
            value = value * 10 + (data[at] - 48)
            at += 1
        digits = at - first
        if digits == 0 or digits > _MAX_DIGITS or (digits > 1 and data[first] == 48):
            return -1
        boxes[e, key, k] = -float(value) if negative else float(value)
        at = _ws(data, at, end)  # a fraction or an exponent fails at the ',' or ']' expected next
    if at >= end or data[at] != 93:
        return -1
    return at + 1


@njit(cache=True)
def gather_strings(data, spans):
    """Byte spans → (int64 offsets, bytes, valid) of one string column; -1 spans are nulls."""
    n = len(spans)
    offsets = np.zeros(n + 1, np.int64)
    valid = np.zeros(n, np.bool_)
    for i in range(n):
        length = spans[i, 1] - spans[i, 0] if spans[i, 0] >= 0 else 0
        offsets[i + 1] = offsets[i] + length
        valid[i] = spans[i, 0] >= 0
    out = np.empty(offsets[n], np.uint8)
    for i in range(n):
        if valid[i]:
            out[offsets[i] : offsets[i + 1]] = data[spans[i, 0] : spans[i, 1]]
    return offsets, out, valid
