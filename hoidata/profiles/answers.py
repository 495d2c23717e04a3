"""Reading answers back from model text, for a whole batch at once.

Rewards score hundreds of thousands of completions and evaluation reads every prediction, so
parsing is the hot path: each text is parsed once (well-formed JSON answers by the compiled
:mod:`~hoidata.profiles.json_scan`, any other by orjson on the answer block with a tolerant
fallback), the entries land in flat arrays, and the frame conversion back to canonical pixels is
one vectorised call. ``Profile.parse_pairs`` is this function on one text, so every
reader in the toolkit agrees on what an answer says.

A box is a list of four values that read as finite numbers. An entry without a readable person box
is dropped; an unreadable object box leaves the entry without an object.
"""

from __future__ import annotations

import contextlib
import math
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Protocol

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.perf import paused_gc
from hoidata.profiles.text import ANSWER, BoxStyle, taxonomy_name, token_entry
from hoidata.schemas.text import valid_text

_ANSWER_OPEN, _ANSWER_CLOSE = ANSWER
_VERB_SPLIT = re.compile(r"\s*(?:[,;\n/|]|\band\b|\bor\b)\s*")
_VERB_STRIP = " \t\"'`.!?:*-[]{}()"


class Flat:
    """Rows of a batch, flattened: item ``i`` owns rows ``offsets[i]:offsets[i+1]``."""

    offsets: np.ndarray  # int64 (C + 1,)

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def owner(self) -> np.ndarray:
        """The item each row belongs to."""
        return np.repeat(np.arange(len(self)), self.counts)


class AnswerFormat(Protocol):
    """What reading answers needs of a model profile (a :class:`~hoidata.profiles.profile.Profile`):
    how it writes boxes, and how its boxes go back to canonical pixels."""

    @property
    def style(self) -> BoxStyle: ...

    def from_model(self, boxes: Any, widths: Any, heights: Any) -> np.ndarray: ...


@dataclass(frozen=True)
class Answers(Flat):
    """Pairs read from a batch of texts, one row per answer entry."""

    offsets: np.ndarray  # int64 (C + 1,)
    person: np.ndarray  # (N, 4) canonical pixels
    object: np.ndarray  # (N, 4) canonical pixels, NaN where the entry has no object box
    verb: pa.StringArray  # taxonomy spelling (underscores), null when not written
    object_label: pa.StringArray

    @property
    def has_object(self) -> np.ndarray:
        return ~np.isnan(self.object[:, 0])


def answer_body(text: str) -> str:
    """The inside of the last closed ``<answer>…</answer>`` block, else the whole text."""
    close = text.rfind(_ANSWER_CLOSE)
    start = text.rfind(_ANSWER_OPEN, 0, close) if close >= 0 else -1
    if start < 0:
        return text
    start += len(_ANSWER_OPEN)
    return text[start : text.find(_ANSWER_CLOSE, start)]


def parse_answers(profile: AnswerFormat, texts: Sequence[str], widths: Any, heights: Any) -> Answers:
    """Every HOI answer entry in ``texts``; ``widths``/``heights`` (scalars or per text) are the
    canonical frame each text's boxes are converted back to."""
    # a text that is no string reads as empty; invalid Unicode (lone surrogates) as U+FFFD
    texts = [valid_text(t) if isinstance(t, str) else "" for t in texts]
    read = _json_entries if profile.style is BoxStyle.JSON else _token_entries
    entries = read(texts)
    label = pc.utf8_lower(pc.utf8_trim_whitespace(entries.label))
    native = entries.person_null & pc.fill_null(pc.equal(label, "person"), True).to_numpy(
        zero_copy_only=False
    )
    person = np.where(native[:, None], entries.boxes[:, 2], entries.boxes[:, 0])
    obj = entries.boxes[:, 1].copy()
    keep = np.isfinite(person).all(axis=1)
    obj[~np.isfinite(obj).all(axis=1)] = np.nan
    verb, object_label = _names(entries.verb), _names(entries.object)
    n, counts = len(texts), entries.counts
    owner = np.repeat(np.arange(n), counts)
    if not keep.all():
        owner, person, obj = owner[keep], person[keep], obj[keep]
        verb, object_label = verb.filter(pa.array(keep)), object_label.filter(pa.array(keep))
        counts = np.bincount(owner, minlength=n)
    w, h = _per_entry(widths, n, owner), _per_entry(heights, n, owner)
    if len(person):
        person = profile.from_model(person, w, h)
        has = ~np.isnan(obj[:, 0])
        if has.any():
            obj[has] = profile.from_model(obj[has], w[has], h[has])
    return Answers(
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        person=person,
        object=obj,
        verb=verb,
        object_label=object_label,
    )


def parse_verbs(texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """The distinct verbs each text's answer names (``"ride, hold"``), as ``(offsets, verbs)``."""
    offsets = [0]
    verbs: list[str] = []
    for text in texts:
        seen: set[str] = set()
        body = answer_body(valid_text(text)) if isinstance(text, str) else ""
        for part in _VERB_SPLIT.split(body):
            name = _name(part.strip(_VERB_STRIP))
            if name and name not in seen and len(name) <= 64:
                seen.add(name)
                verbs.append(name)
        offsets.append(len(verbs))
    return np.asarray(offsets, np.int64), verbs


# ---- entry readers: texts → the entries they write, before any frame conversion ---------------
@dataclass(frozen=True)
class Entries:
    """Answer entries as written: item ``i`` of the batch wrote ``counts[i]`` of them, in order."""

    counts: np.ndarray  # int64 (C,)
    boxes: np.ndarray  # (E, 3, 4) person_bbox_2d, object_bbox_2d, bbox_2d; NaN unless 4 numbers
    person_null: np.ndarray  # (E,) no person_bbox_2d at all (absent or null)
    label: pa.StringArray
    verb: pa.StringArray
    object: pa.StringArray

    @classmethod
    def from_struct(cls, counts: np.ndarray, entries: pa.StructArray) -> Entries:
        person = pc.struct_field(entries, "person_bbox_2d")
        return cls(
            counts=counts,
            boxes=np.stack(
                [_boxes(person)]
                + [_boxes(pc.struct_field(entries, k)) for k in ("object_bbox_2d", "bbox_2d")],
                axis=1,
            ),
            person_null=pc.is_null(person).to_numpy(zero_copy_only=False),
            label=pc.struct_field(entries, "label"),
            verb=pc.struct_field(entries, "verb"),
            object=pc.struct_field(entries, "object"),
        )

    @classmethod
    def merge(cls, parts: list[tuple[np.ndarray, Entries]], n: int) -> Entries:
        """Entries of disjoint sets of items (``(items, entries)``) in item order."""
        owner = np.concatenate([np.repeat(items, e.counts) for items, e in parts])
        order = np.argsort(owner, kind="stable")
        counts = np.zeros(n, np.int64)
        for items, e in parts:
            counts[items] = e.counts
        return cls(
            counts=counts,
            boxes=np.concatenate([e.boxes for _, e in parts])[order],
            person_null=np.concatenate([e.person_null for _, e in parts])[order],
            **{
                k: pa.concat_arrays([getattr(e, k) for _, e in parts]).take(pa.array(order))
                for k in ("label", "verb", "object")
            },
        )


ENTRY = pa.struct(
    [
        ("person_bbox_2d", pa.list_(pa.float64())),
        ("object_bbox_2d", pa.list_(pa.float64())),
        ("bbox_2d", pa.list_(pa.float64())),
        ("label", pa.string()),
        ("verb", pa.string()),
        ("object", pa.string()),
    ]
)
_CHUNK = 1024  # bodies per Arrow conversion; a chunk with an ill-typed entry is cleaned in Python
# Starting numba costs a process about 0.4 s (import, registries, cached kernels); the scanner then
# saves about 10 ns a character over orjson. Below this many characters orjson alone is faster.
SCAN_MIN_CHARS = 40_000_000


def _json_entries(texts: Sequence[str], scan: bool | None = None) -> Entries:
    """Well-formed answers through the compiled scanner, every other one through orjson. ``scan``:
    whether to use the scanner (default: when numba is running already, or the batch is big enough
    to pay for starting it)."""
    if scan is None:
        scan = "numba" in sys.modules or sum(map(len, texts)) >= SCAN_MIN_CHARS
    scanned = _scan(texts) if scan else None
    if scanned is None:
        return _orjson_entries([answer_body(t) for t in texts])
    ok, fast = scanned
    rest = np.flatnonzero(~ok)
    if not len(rest):
        return fast
    slow = _orjson_entries([answer_body(texts[i]) for i in rest])
    return Entries.merge([(np.flatnonzero(ok), fast), (rest, slow)], len(texts))


def _scan(texts: Sequence[str]) -> tuple[np.ndarray, Entries] | None:
    from hoidata.profiles.json_scan import gather_strings, scan_answers  # numba: only when it pays

    try:
        array = pa.array(texts, pa.large_string())
    except (pa.ArrowException, UnicodeError):  # e.g. a lone surrogate: orjson refuses it too
        return None
    buffer = array.buffers()[2]
    data = np.frombuffer(buffer, np.uint8) if buffer is not None else np.zeros(0, np.uint8)
    offsets = np.frombuffer(array.buffers()[1], np.int64)[: len(texts) + 1]
    ok, counts, boxes, spans = scan_answers(data, offsets)

    def strings(column: int) -> pa.StringArray:
        value_offsets, values, valid = gather_strings(data, np.ascontiguousarray(spans[:, column]))
        return pa.LargeStringArray.from_buffers(
            len(valid),
            pa.py_buffer(value_offsets),
            pa.py_buffer(values),
            pa.py_buffer(np.packbits(valid, bitorder="little")),
        ).cast(pa.string())

    entries = Entries(
        counts=counts[ok],
        boxes=boxes,
        person_null=np.isnan(boxes[:, 0, 0]),
        label=strings(0),
        verb=strings(1),
        object=strings(2),
    )
    return ok, entries


def _orjson_entries(bodies: list[str]) -> Entries:
    counts = np.zeros(len(bodies), np.int64)
    chunks = []
    with paused_gc():
        for start in range(0, len(bodies), _CHUNK):
            flat: list[Any] = []
            for i, body in enumerate(bodies[start : start + _CHUNK], start):
                data = _json_value(body)
                if type(data) is dict:
                    data = [data]
                if type(data) is list:
                    flat.extend(data)
                    counts[i] = len(data)
            try:
                chunks.append(pa.array(flat, ENTRY))
            except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError):
                chunks.append(pa.array([_clean(d) for d in flat], ENTRY))
    return Entries.from_struct(counts, _concat(chunks))


def _json_value(body: str) -> Any:
    stripped = body.strip()
    if stripped[:1] in ("[", "{"):
        try:
            return orjson.loads(stripped)
        except orjson.JSONDecodeError:
            pass
    return _tolerant_json(stripped)


def _tolerant_json(body: str) -> Any:
    """The longest JSON value from the first bracket: survives code fences, prose and cut-offs.

    A bounded number of tries keeps adversarial text (thousands of brackets) cheap.
    """
    start = min((i for i in (body.find("["), body.find("{")) if i >= 0), default=-1)
    if start < 0:
        return None
    ends = [i + 1 for i in range(len(body) - 1, start, -1) if body[i] in "]}"][:32]
    for end in ends:
        try:
            return orjson.loads(body[start:end])
        except orjson.JSONDecodeError:
            continue
    return None


def _clean(d: Any) -> dict[str, Any] | None:
    """One entry as Arrow reads the entries it takes, so that an entry reads the same in any chunk:
    a box field that is there but is no list of numbers stays there, unreadable (``[]``), so that
    a person box the model wrote badly is not replaced by its ``bbox_2d``; an ill-typed name is
    dropped."""
    if type(d) is not dict:
        return {}  # counted, then dropped for lack of a person box
    out: dict[str, Any] = {}
    for key in ("person_bbox_2d", "object_bbox_2d", "bbox_2d"):
        v = d.get(key)
        if v is None:
            continue
        out[key] = []
        if type(v) is list and all(c is None or isinstance(c, int | float) for c in v):
            with contextlib.suppress(OverflowError):  # an integer past 2**53 rounds, as in any parser
                out[key] = [math.nan if c is None else float(c) for c in v]
    for key in ("label", "verb", "object"):
        if type(d.get(key)) is str:
            out[key] = d[key]
    return out


def _token_entries(texts: Sequence[str]) -> Entries:
    counts = np.zeros(len(texts), np.int64)
    rows = []
    for i, text in enumerate(texts):
        for line in answer_body(text).splitlines():
            e = token_entry(line)
            if e is not None:
                rows.append(
                    {
                        "person_bbox_2d": e["person"],
                        "object_bbox_2d": e["object_box"],
                        "verb": e.get("verb"),
                        "object": e.get("object"),
                    }
                )
                counts[i] += 1
    return Entries.from_struct(counts, pa.array(rows, ENTRY))


# ---- conversions -------------------------------------------------------------------------------
def _concat(chunks: list[pa.Array]) -> pa.StructArray:
    return pa.concat_arrays(chunks) if chunks else pa.array([], ENTRY)


def _boxes(column: pa.Array) -> np.ndarray:
    """A list<double> column → (N, 4) float64; NaN rows where the list is null or not 4 long."""
    out = np.full((len(column), 4), np.nan)
    ok = pc.fill_null(pc.equal(pc.list_value_length(column), 4), False).to_numpy(zero_copy_only=False)
    if ok.any():
        values = pc.list_flatten(column.filter(pa.array(ok))).to_numpy(zero_copy_only=False)
        out[ok] = values.reshape(-1, 4)
    return out


def _per_entry(values: Any, n: int, owner: np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    return np.full(len(owner), float(arr)) if arr.ndim == 0 else arr.reshape(n)[owner]


def _names(column: pa.Array) -> pa.StringArray:
    """Taxonomy spelling of written names (``" Sports Ball"`` → ``sports_ball``); null when empty.

    Spelled once per distinct name: a batch writes few.
    """
    encoded = column.dictionary_encode()
    name = pc.replace_substring_regex(pc.utf8_trim_whitespace(pc.utf8_lower(encoded.dictionary)), r"\s+", "_")
    name = pc.if_else(pc.equal(name, ""), pa.scalar(None, pa.string()), name)
    return name.take(encoded.indices)


@lru_cache(maxsize=65536)
def _name(text: str | None) -> str | None:
    """The scalar :func:`_names`, for verbs split out of free text."""
    return taxonomy_name(text) or None if text else None
