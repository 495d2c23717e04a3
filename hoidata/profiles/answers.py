"""Reading answers back from model text, for a whole batch at once.

Rewards score hundreds of thousands of completions and evaluation reads every prediction, so
parsing is the hot path: each text is parsed once (orjson on the answer block, a tolerant fallback
only when that fails), the entries land in flat arrays, and the frame conversion back to canonical
pixels is one vectorised call. ``Profile.parse_pairs`` is this function on one text, so every
reader in the toolkit agrees on what an answer says.

A box is a list of four values that read as finite numbers. An entry without a readable person box
is dropped; an unreadable object box leaves the entry without an object.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson

if TYPE_CHECKING:
    from hoidata.profiles.profile import Profile

_ANSWER_OPEN, _ANSWER_CLOSE = "<answer>", "</answer>"
_VERB_SPLIT = re.compile(r"\s*(?:[,;\n/|]|\band\b|\bor\b)\s*")
_VERB_STRIP = " \t\"'`.!?:*-[]{}()"


@dataclass(frozen=True)
class Answers:
    """Pairs read from a batch of texts, flattened: text ``i`` owns rows ``offsets[i]:offsets[i+1]``."""

    offsets: np.ndarray  # int64 (C + 1,)
    person: np.ndarray  # (N, 4) canonical pixels
    object: np.ndarray  # (N, 4) canonical pixels, NaN where the entry has no object box
    verb: list[str | None]  # taxonomy spelling (underscores), None when not written
    object_label: list[str | None]

    def __len__(self) -> int:
        return len(self.offsets) - 1

    @property
    def has_object(self) -> np.ndarray:
        return ~np.isnan(self.object[:, 0])

    @property
    def counts(self) -> np.ndarray:
        return np.diff(self.offsets)

    @property
    def owner(self) -> np.ndarray:
        """The text each entry belongs to."""
        return np.repeat(np.arange(len(self)), self.counts)


def answer_body(text: str) -> str:
    """The last ``<answer>…</answer>`` block when there is one, else the whole text."""
    start = text.rfind(_ANSWER_OPEN)
    if start < 0:
        return text
    end = text.find(_ANSWER_CLOSE, start)
    if end < 0:  # an unclosed last block: fall back to the last closed one, if any
        head = text[:start]
        return answer_body(head) if _ANSWER_CLOSE in head else text
    return text[start + len(_ANSWER_OPEN) : end]


def parse_answers(profile: Profile, texts: Sequence[str], widths: Any, heights: Any) -> Answers:
    """Every HOI answer entry in ``texts``; ``widths``/``heights`` (scalars or per text) are the
    canonical frame each text's boxes are converted back to."""
    from hoidata.profiles.profile import BoxStyle

    n = len(texts)
    reader = _json_entries if profile.style is BoxStyle.JSON else _token_entries
    counts = np.zeros(n, np.int64)
    persons: list[Any] = []
    objects: list[Any] = []
    verbs: list[Any] = []
    labels: list[Any] = []
    enabled = gc.isenabled()
    gc.disable()  # millions of short-lived containers: the cyclic collector only slows this down
    try:
        for i, text in enumerate(texts):
            before = len(persons)
            reader(answer_body(text) if isinstance(text, str) else "", persons, objects, verbs, labels)
            counts[i] = len(persons) - before
    finally:
        if enabled:
            gc.enable()
    person = _boxes(persons)
    obj = _boxes(objects)
    keep = np.isfinite(person).all(axis=1)
    obj[~np.isfinite(obj).all(axis=1)] = np.nan
    owner = np.repeat(np.arange(n), counts)
    if not keep.all():
        owner, person, obj = owner[keep], person[keep], obj[keep]
        verbs = [v for v, k in zip(verbs, keep, strict=True) if k]
        labels = [v for v, k in zip(labels, keep, strict=True) if k]
        counts = np.bincount(owner, minlength=n)
    w = _per_entry(widths, n, owner)
    h = _per_entry(heights, n, owner)
    if len(person):
        person = profile.from_model(person, w, h)
        has = ~np.isnan(obj[:, 0])
        if has.any():
            obj[has] = profile.from_model(obj[has], w[has], h[has])
    return Answers(
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        person=person,
        object=obj,
        verb=[_name(v) for v in verbs],
        object_label=[_name(v) for v in labels],
    )


def parse_verbs(texts: Sequence[str]) -> tuple[np.ndarray, list[str]]:
    """The distinct verbs each text's answer names (``"ride, hold"``), as ``(offsets, verbs)``."""
    offsets = [0]
    verbs: list[str] = []
    for text in texts:
        seen: set[str] = set()
        body = answer_body(text) if isinstance(text, str) else ""
        for part in _VERB_SPLIT.split(body):
            name = _name(part.strip(_VERB_STRIP))
            if name and name not in seen and len(name) <= 64:
                seen.add(name)
                verbs.append(name)
        offsets.append(len(verbs))
    return np.asarray(offsets, np.int64), verbs


# ---- entry readers: append one value per entry to each list ------------------------------------
def _json_entries(body: str, persons: list, objects: list, verbs: list, labels: list) -> None:
    stripped = body.strip()
    data: Any = None
    if stripped[:1] in ("[", "{"):
        try:
            data = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            data = None
    if data is None:
        data = _tolerant_json(stripped)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        return
    for d in data:
        if type(d) is not dict:
            continue
        person = d.get("person_bbox_2d")
        if person is None and str(d.get("label", "person")).strip().lower() == "person":
            person = d.get("bbox_2d")  # Qwen's native {"bbox_2d", "label"} grounding entries
        if type(person) is not list or len(person) != 4:
            continue
        obj = d.get("object_bbox_2d")
        verb, label = d.get("verb"), d.get("object")
        persons.append(person)
        objects.append(obj if type(obj) is list and len(obj) == 4 else None)
        verbs.append(verb if type(verb) is str else None)
        labels.append(label if type(label) is str else None)


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


def _token_entries(body: str, persons: list, objects: list, verbs: list, labels: list) -> None:
    from hoidata.profiles.profile import token_entry

    for line in body.splitlines():
        entry = token_entry(line)
        if entry is None:
            continue
        persons.append(entry["person"])
        objects.append(entry["object_box"])
        verbs.append(entry.get("verb"))
        labels.append(entry.get("object"))


# ---- conversions -------------------------------------------------------------------------------
def _boxes(values: list[Any]) -> np.ndarray:
    """Box candidates (4-lists or None) → (N, 4) float64, NaN rows where a value is not a number."""
    out = np.full((len(values), 4), np.nan)
    present = [i for i, v in enumerate(values) if v is not None]
    if not present:
        return out
    try:
        out[present] = np.array([values[i] for i in present], dtype=np.float64)
    except (TypeError, ValueError):  # a string or a nested list somewhere: check box by box
        for i in present:
            out[i] = _box(values[i])
    return out


def _box(value: list[Any]) -> list[float]:
    if all(isinstance(c, int | float) and not isinstance(c, bool) for c in value):
        return [float(c) for c in value]
    return [np.nan] * 4


def _per_entry(values: Any, n: int, owner: np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    return np.full(len(owner), float(arr)) if arr.ndim == 0 else arr.reshape(n)[owner]


@lru_cache(maxsize=65536)
def _name(text: str | None) -> str | None:
    """Taxonomy spelling of a written name (``"Sports Ball"`` → ``sports_ball``); None when empty."""
    if not text:
        return None
    name = "_".join(text.strip().lower().split())
    return name or None
