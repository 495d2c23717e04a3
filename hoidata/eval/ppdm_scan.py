"""A compiled reader for PPDM/QPIC result JSON, the format most published HOI detectors write.

A result file is a list with one record per image, ``{"file_name": ..., "predictions": [{"bbox":
[x1, y1, x2, y2], "category_id": c}, ...], "hoi_prediction": [{"subject_id": s, "object_id": o,
"category_id": v, "score": p}, ...]}``, often a million detections and a quarter of a gigabyte.
This scanner reads the bytes in one compiled pass into flat arrays, with no Python object per value.

It accepts a strict subset of JSON: a list of records with only those keys, each at most once;
ids are integers of at most 31 bits (``object_id`` may be null); boxes are lists of four numbers;
``score`` a number or null; ``file_name`` a string without escapes, or null; ``predictions`` and
``hoi_prediction`` lists or null; numbers have at most 18 significant digits and a power of ten in
:data:`Q_RANGE`; whitespace is JSON's. A file that strays from that subset in any way (an escape, another key, a
float id, ``true``, truncation) is reported as not scanned, and :mod:`hoidata.eval.result_files`
reads it with orjson instead, so both readers agree on every file the scanner accepts.

Numbers are correctly rounded, as Python's ``float`` and orjson read them: a decimal whose digits
fit 2**53 with a power of ten up to 22 is one IEEE product or quotient (Clinger's fast path); any
other is computed by the Eisel-Lemire algorithm (as in fast_float, which Arrow and many C++
libraries use), whose 128-bit product is always enough for 19 digits or fewer.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numba import njit

# key ids: record keys, then box keys, then pair keys (category_id is both)
KEYS = (
    "file_name",
    "predictions",
    "hoi_prediction",
    "bbox",
    "category_id",
    "subject_id",
    "object_id",
    "score",
)
FILE_NAME, PREDICTIONS, HOI_PREDICTION, BBOX, CATEGORY_ID, SUBJECT_ID, OBJECT_ID, SCORE = range(len(KEYS))
NAME_ABSENT, NAME_NULL = -1, -2  # name spans of records without a file name, or with a null one
Q_RANGE = (-280, 280)  # powers of ten read here: every 18-digit decimal with them is a normal double


def _key_tables() -> tuple[np.ndarray, np.ndarray]:
    """Each key's bytes with its closing quote, and the key that starts with two given bytes (no two
    keys share their first two)."""
    key_bytes = np.zeros((len(KEYS), max(map(len, KEYS)) + 1), np.uint8)
    by_start = np.full((256, 256), -1, np.int64)
    for k, key in enumerate(KEYS):
        key_bytes[k, : len(key) + 1] = np.frombuffer(key.encode() + b'"', np.uint8)
        assert by_start[ord(key[0]), ord(key[1])] < 0
        by_start[ord(key[0]), ord(key[1])] = k
    return key_bytes, by_start


def _powers_of_five() -> np.ndarray:
    """The 128 leading bits of 5**q for q in ``Q_RANGE`` (rounded up for q < 0), as (high, low)
    words: the table of the Eisel-Lemire algorithm, built as fast_float's generator builds it."""
    rows = np.zeros((Q_RANGE[1] - Q_RANGE[0] + 1, 2), np.uint64)
    for q in range(Q_RANGE[0], Q_RANGE[1] + 1):
        if q < 0:
            power5 = 5**-q
            z = (power5 - 1).bit_length()  # the least z with 2**z >= power5
            c = 2 ** (z + 127) // power5 + 1 if q >= -27 else 2 ** (2 * z + 128) // power5 + 1
        else:
            c = 5**q << max(0, 127 - (5**q).bit_length() + 1)
        c >>= max(0, c.bit_length() - 128)
        rows[q - Q_RANGE[0]] = (c >> 64, c & (2**64 - 1))
    return rows


_KEY_BYTES, _KEY_BY_START = _key_tables()
_KEY_LENGTHS = np.array([len(k) for k in KEYS], np.int64)
_POW10 = np.array([10.0**k for k in range(23)], np.float64)  # each exact in float64
_POW5 = _powers_of_five()
_NULL = np.frombuffer(b"null", np.uint8).copy()
_MAX_DIGITS = 18  # an int64 holds any 18-digit integer
_MAX_ID = 2**31 - 1  # ids are stored as int32; a larger one leaves the subset
_EXACT_MANTISSA = 2**53
_Q_MIN = Q_RANGE[0]
_LOW32 = np.uint64(0xFFFFFFFF)
_PRECISION_MASK = np.uint64(0x1FF)  # the bits below a 55-bit mantissa in the product's high word


class Records(NamedTuple):
    """Per record one call read: the byte span of its file name in the call's data (or
    :data:`NAME_ABSENT`, :data:`NAME_NULL`), its box and pair counts."""

    names: np.ndarray  # (R, 2) int64
    box_counts: np.ndarray  # (R,) int64
    pair_counts: np.ndarray  # (R,) int64

    @classmethod
    def empty(cls, capacity: int) -> Records:
        return cls(
            np.empty((capacity, 2), np.int64), np.empty(capacity, np.int64), np.empty(capacity, np.int64)
        )


class Items(NamedTuple):
    """Per box and per pair, filled call after call. Allocated with ``np.empty`` for as many as the
    bytes to read could hold: the rows past the last one filled are never resident."""

    boxes: np.ndarray  # (B, 4) float64
    labels: np.ndarray  # (B,) int32
    subjects: np.ndarray  # (P,) int32
    objects: np.ndarray  # (P,) int32, -1 for a null or absent object_id
    verbs: np.ndarray  # (P,) int32
    scores: np.ndarray  # (P,) float64, unset where has_score is False
    has_score: np.ndarray  # (P,) bool

    @classmethod
    def empty(cls, size: int) -> Items:
        """Room for every box and pair ``size`` bytes of a file can hold: each takes 32 bytes at
        least (``{"subject_id":0,"category_id":0}``)."""
        n = size // 32 + 1
        ints = lambda: np.empty(n, np.int32)  # noqa: E731
        boxes = np.empty((n, 4), np.float64)
        return cls(boxes, ints(), ints(), ints(), ints(), np.empty(n, np.float64), np.empty(n, np.bool_))


def scan_chunk(
    data: np.ndarray, opened: bool, first: bool, records: Records, items: Items, n_box: int, n_pair: int
) -> tuple:
    """Scan the records that ``data`` holds whole into ``records`` (from row 0) and ``items`` (from
    rows ``n_box`` and ``n_pair``). ``data``: a writable uint8 view of a ``bytearray`` holding a
    piece of the file (a read-only array would compile a second version of the scanner).

    ``opened``: the file's ``[`` was read in an earlier stretch (``data`` then starts at a record);
    ``first``: no record was read yet (so the list may still close empty).
    Returns ``(closed, at, opened, n_records, n_box, n_pair)``: ``closed`` when the list's ``]`` was
    read (``at`` just after it); else ``at`` is where the next record starts, the first one that
    ``data`` does not hold whole, or that leaves the subset (only the file's last stretch tells).
    """
    return _scan(data, opened, first, records, items, n_box, n_pair)


def count_byte(data: np.ndarray, value: int) -> int:
    """How often a byte occurs (several times faster than ``bytes.count``)."""
    return _count(data, value)


@njit(cache=True, nogil=True)
def _count(d, value):
    n = 0
    for c in d:
        n += c == value
    return n


@njit(cache=True, nogil=True, inline="always")
def _ws(d, i):
    n = len(d)
    while i < n and (d[i] == 32 or d[i] == 10 or d[i] == 13 or d[i] == 9):
        i += 1
    return i


@njit(cache=True, nogil=True, inline="always")
def _is_null(d, i):
    k = 0
    while k < 4 and i + k < len(d) and d[i + k] == _NULL[k]:
        k += 1
    return k == 4


@njit(cache=True, nogil=True, inline="always")
def _string_end(d, i):
    """``d[i]`` opens a string: the offset of its closing quote; -1 for an escape, a control
    character or no end."""
    i += 1
    while i < len(d):
        c = d[i]
        if c == 34:
            return i
        if c == 92 or c < 32:
            return -1
        i += 1
    return -1


@njit(cache=True, nogil=True, inline="always")
def _key(d, i):
    """A key at ``d[i]`` and the colon after it: (key id, offset of the value); id -1 if unknown.
    Its first two bytes name the only key it can be; the rest, closing quote included, must match."""
    lengths = _KEY_LENGTHS
    if i + 2 >= len(d) or d[i] != 34:
        return -1, i
    k = _KEY_BY_START[d[i + 1], d[i + 2]]
    if k < 0:
        return -1, i
    end = i + 1 + lengths[k]  # the closing quote
    if end >= len(d):
        return -1, i
    for j in range(2, lengths[k] + 1):
        if d[i + 1 + j] != _KEY_BYTES[k, j]:
            return -1, i
    i = _ws(d, end + 1)
    if i >= len(d) or d[i] != 58:
        return -1, i
    return k, _ws(d, i + 1)


@njit(cache=True, nogil=True, inline="always")
def _mul128(a, b):
    """The 128-bit product of two uint64, as (high, low) words."""
    a_lo, a_hi = a & _LOW32, a >> np.uint64(32)
    b_lo, b_hi = b & _LOW32, b >> np.uint64(32)
    p0, p1, p2, p3 = a_lo * b_lo, a_lo * b_hi, a_hi * b_lo, a_hi * b_hi
    mid = (p0 >> np.uint64(32)) + (p1 & _LOW32) + (p2 & _LOW32)
    high = p3 + (p1 >> np.uint64(32)) + (p2 >> np.uint64(32)) + (mid >> np.uint64(32))
    return high, (p0 & _LOW32) | (mid << np.uint64(32))


@njit(cache=True, nogil=True)
def _eisel_lemire(w, q):
    """``w * 10**q`` correctly rounded, for ``0 < w < 2**63`` and q in :data:`Q_RANGE`."""
    w = np.uint64(w)
    lz = 0
    while (w << np.uint64(lz)) >> np.uint64(63) == np.uint64(0):
        lz += 1
    w = w << np.uint64(lz)
    row = q - _Q_MIN
    hi, lo = _mul128(w, _POW5[row, 0])
    if hi & _PRECISION_MASK == _PRECISION_MASK:
        hi2, _ = _mul128(w, _POW5[row, 1])
        lo = lo + hi2
        if hi2 > lo:
            hi = hi + np.uint64(1)
    upper = int(hi >> np.uint64(63))
    shift = upper + 9
    mantissa = hi >> np.uint64(shift)
    power2 = (((152170 + 65536) * q) >> 16) + 63 + upper - lz + 1023
    halfway = lo <= np.uint64(1) and -4 <= q <= 23 and mantissa & np.uint64(3) == np.uint64(1)
    if halfway and (mantissa << np.uint64(shift)) == hi:  # exactly between two doubles: to even
        mantissa = mantissa & ~np.uint64(1)
    mantissa = (mantissa + (mantissa & np.uint64(1))) >> np.uint64(1)
    if mantissa >= np.uint64(2) << np.uint64(52):
        mantissa = np.uint64(1) << np.uint64(52)
        power2 += 1
    return math.ldexp(float(mantissa), power2 - 1075)


@njit(cache=True, nogil=True, inline="always")
def _number(d, i):
    """A JSON number at ``d[i]``: (end, is_integer, integer value, float value); end -1 if there is
    none, or if it has more than 18 significant digits or a power of ten outside :data:`Q_RANGE`."""
    n = len(d)
    neg = i < n and d[i] == 45
    if neg:
        i += 1
    if i >= n or d[i] < 48 or d[i] > 57:
        return -1, False, 0, 0.0
    m = e10 = 0
    is_int = True
    first = i
    if d[i] == 48:
        i += 1
        if i < n and 48 <= d[i] <= 57:  # JSON has no leading zeros
            return -1, False, 0, 0.0
    else:
        while i < n and 48 <= d[i] <= 57:
            m = m * 10 + (d[i] - 48)
            i += 1
    digits = i - first
    if i < n and d[i] == 46:
        is_int = False
        i += 1
        start = i
        while i < n and 48 <= d[i] <= 57:
            m = m * 10 + (d[i] - 48)
            i += 1
        if i == start:
            return -1, False, 0, 0.0
        e10 = start - i
        digits += i - start
        if digits > _MAX_DIGITS:  # leading zeros do not count: "0.000123" has 3 digits
            k = first
            while k < i and (d[k] == 48 or d[k] == 46):
                digits -= d[k] == 48
                k += 1
    if digits > _MAX_DIGITS:
        return -1, False, 0, 0.0
    if i < n and (d[i] == 101 or d[i] == 69):
        is_int = False
        i += 1
        neg_exp = i < n and d[i] == 45
        if i < n and (d[i] == 43 or d[i] == 45):
            i += 1
        if i >= n or d[i] < 48 or d[i] > 57:
            return -1, False, 0, 0.0
        ex = 0
        while i < n and 48 <= d[i] <= 57:
            ex = min(ex * 10 + (d[i] - 48), 100000)
            i += 1
        e10 += -ex if neg_exp else ex
    value = -m if neg else m
    if is_int:
        return i, True, value, float(value)  # "-0" is the integer 0, as in Python
    if m == 0:
        return i, False, 0, -0.0 if neg else 0.0
    if m <= _EXACT_MANTISSA and -22 <= e10 <= 22:  # Clinger: one correctly rounded operation
        f = float(m) * _POW10[e10] if e10 >= 0 else float(m) / _POW10[-e10]
    elif Q_RANGE[0] <= e10 <= Q_RANGE[1]:
        f = _eisel_lemire(m, e10)
    else:
        return -1, False, 0, 0.0
    return i, False, value, -f if neg else f


@njit(cache=True, nogil=True, inline="always")
def _next(d, i, close):
    """After a value: (offset of the next item, more items follow); offset -1 if neither a comma
    nor ``close`` comes."""
    i = _ws(d, i)
    if i < len(d) and d[i] == 44:
        return _ws(d, i + 1), True
    if i < len(d) and d[i] == close:
        return i + 1, False
    return -1, False


@njit(cache=True, nogil=True, inline="always")
def _box(d, i, b, boxes, labels):
    """The box object at ``d[i]`` into row ``b``: the offset after it, or -1."""
    i = _ws(d, i + 1)
    got = 0  # bit k: key k was given
    more = i < len(d) and d[i] != 125
    if not more:
        i += 1
    while more:
        k, i = _key(d, i)
        if (k != BBOX and k != CATEGORY_ID) or got & (1 << k):
            return -1
        got |= 1 << k
        if k == CATEGORY_ID:
            end, is_int, value, _ = _number(d, i)
            if end < 0 or not is_int or abs(value) > _MAX_ID:
                return -1
            labels[b] = value
            i = end
        else:
            if i >= len(d) or d[i] != 91:
                return -1
            for c in range(4):
                i = _ws(d, i + 1)
                end, _, _, f = _number(d, i)
                if end < 0:
                    return -1
                boxes[b, c] = f
                i = _ws(d, end)
                if i >= len(d) or d[i] != (93 if c == 3 else 44):
                    return -1
            i += 1
        i, more = _next(d, i, 125)
        if i < 0:
            return -1
    return i if got == (1 << BBOX) | (1 << CATEGORY_ID) else -1


@njit(cache=True, nogil=True, inline="always")
def _pair(d, i, p, subjects, objects, verbs, scores, has_score):
    """The pair object at ``d[i]`` into row ``p``: the offset after it, or -1."""
    i = _ws(d, i + 1)
    got = 0
    objects[p] = -1
    has_score[p] = False
    more = i < len(d) and d[i] != 125
    if not more:
        i += 1
    while more:
        k, i = _key(d, i)
        if k < CATEGORY_ID or got & (1 << k):
            return -1
        got |= 1 << k
        if k >= OBJECT_ID and _is_null(d, i):  # object_id and score may be null
            i += 4
        else:
            end, is_int, value, f = _number(d, i)
            if end < 0 or (k != SCORE and not (is_int and abs(value) <= _MAX_ID)):
                return -1
            if k == SCORE:
                scores[p] = f
                has_score[p] = True
            elif k == CATEGORY_ID:
                verbs[p] = value
            elif k == SUBJECT_ID:
                subjects[p] = value
            else:
                objects[p] = value
            i = end
        i, more = _next(d, i, 125)
        if i < 0:
            return -1
    need = (1 << CATEGORY_ID) | (1 << SUBJECT_ID)
    return i if got & need == need else -1


@njit(cache=True, nogil=True)
def _scan(d, opened, first, records, items, n_box, n_pair):
    names, box_counts, pair_counts = records
    boxes, labels, subjects, objects, verbs, scores, has_score = items
    n_rec = 0
    i = _ws(d, 0)
    if not opened:
        if i >= len(d) or d[i] != 91:
            return False, 0, False, n_rec, n_box, n_pair
        i = _ws(d, i + 1)
        opened = True
    if first and i < len(d) and d[i] == 93:  # an empty list has no record
        return True, i + 1, True, n_rec, n_box, n_pair
    while i < len(d) and d[i] == 123 and n_rec < len(names):
        # one record into row r, its boxes from row b and its pairs from row p: kept only when the
        # comma or bracket after it is here too (else the next call reads it again, whole)
        start, r, b, p = i, n_rec, n_box, n_pair
        names[r, 0] = names[r, 1] = NAME_ABSENT
        box_counts[r] = pair_counts[r] = 0
        i = _ws(d, i + 1)
        seen = 0  # bit k: record key k was given
        fields = i < len(d) and d[i] != 125
        if not fields:
            i += 1
        while fields and i >= 0:
            key, i = _key(d, i)
            if key < 0 or key > HOI_PREDICTION or seen & (1 << key):
                i = -1
                break
            seen |= 1 << key
            if _is_null(d, i):
                if key == FILE_NAME:
                    names[r, 0] = names[r, 1] = NAME_NULL
                i += 4
            elif key == FILE_NAME:
                end = _string_end(d, i) if i < len(d) and d[i] == 34 else -1
                if end >= 0:
                    names[r, 0], names[r, 1] = i + 1, end
                i = end + 1 if end >= 0 else -1
            elif i < len(d) and d[i] == 91:  # a list of boxes or of pairs
                i = _ws(d, i + 1)
                items = i < len(d) and d[i] != 93
                if not items:
                    i += 1
                while items and i >= 0:
                    if i >= len(d) or d[i] != 123 or b >= len(labels) or p >= len(verbs):
                        i = -1
                    elif key == PREDICTIONS:
                        i = _box(d, i, b, boxes, labels)
                        b += 1
                        box_counts[r] += 1
                    else:
                        i = _pair(d, i, p, subjects, objects, verbs, scores, has_score)
                        p += 1
                        pair_counts[r] += 1
                    if i >= 0:
                        i, items = _next(d, i, 93)
            else:
                i = -1
            if i >= 0:
                i, fields = _next(d, i, 125)
        after, more = _next(d, i, 93) if i >= 0 else (-1, False)
        if after < 0:  # the record is not here whole, or leaves the subset
            return False, start, opened, n_rec, n_box, n_pair
        n_rec, n_box, n_pair = r + 1, b, p
        if not more:
            return True, after, True, n_rec, n_box, n_pair
        i = after
    return False, i, opened, n_rec, n_box, n_pair
