"""The checks a shard's instances and pairs pass before they become canonical rows.

Each rule is a row of a table: the field a fault is reported under, a vectorised predicate that
marks every faulty item of the shard at once, and the one-line reason told for a faulty item.
A record is rejected for its first faulty item; on one item, the earlier rule of the table wins.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any, Generic, NamedTuple, TypeVar

import numpy as np

from hoidata.schemas.boxes import BoxOrigin
from hoidata.schemas.taxonomy import Taxonomy


@dataclass(frozen=True)
class Instances:
    """A shard's instances as the rules read them, one row per instance."""

    boxes: np.ndarray  # (N, 4) canonical pixels (clipped with --clip-boxes)
    written: np.ndarray  # (N, 4) as the file wrote them, for messages
    origin: BoxOrigin
    width: np.ndarray  # (N,) float64, of the instance's image; <= 0 when unknown
    height: np.ndarray
    labels: np.ndarray  # (N,) taxonomy object ids
    tax: Taxonomy | None

    @cached_property  # three rules read it
    def finite(self) -> np.ndarray:
        return np.isfinite(self.boxes).all(axis=1)

    @cached_property
    def known_size(self) -> np.ndarray:
        return self.width > 0

    @property
    def taxonomy(self) -> Taxonomy:
        assert self.tax is not None, "a taxonomy rule needs a taxonomy"
        return self.tax


def _no_ids() -> np.ndarray:
    return np.zeros(0, np.int64)


@dataclass(frozen=True)
class Pairs:
    """A shard's interactions as the rules read them, one row per pair; ids are 0-based."""

    subjects: np.ndarray  # (M,) index into the record's instances
    objects: np.ndarray  # (M,) index, -1 for no object
    boxes_in_record: np.ndarray  # (M,) how many instances the pair's record has
    verbs: np.ndarray
    hois: np.ndarray  # as the file gave them, -1 where it gave none
    verb_base: int  # the file's first id, so that messages quote the file's own ids
    hoi_base: int
    # set by classify_pairs, for the taxonomy rules
    tax: Taxonomy | None = None
    subject_labels: np.ndarray = field(default_factory=_no_ids)  # object id of the subject instance
    object_labels: np.ndarray = field(default_factory=_no_ids)  # -1 for no object
    derived_hois: np.ndarray = field(default_factory=_no_ids)  # HOI class of (verb, object), -1: none

    @property
    def taxonomy(self) -> Taxonomy:
        assert self.tax is not None, "a taxonomy rule needs a taxonomy"
        return self.tax


View = TypeVar("View", Instances, Pairs)


@dataclass(frozen=True)
class Rule(Generic[View]):
    """One check: a row of the rule tables below."""

    field: str  # the canonical field a fault is reported under
    faulty: Callable[[View], np.ndarray]  # a bool mask over all items of the shard
    reason: Callable[[View, int], str]  # the one-line reason for faulty item k


# ---- instances ------------------------------------------------------------------------------------
def box_not_finite(v: Instances) -> np.ndarray:
    return ~v.finite


def say_not_finite(v: Instances, k: int) -> str:
    return f"not finite: {v.written[k].tolist()}"


def box_inverted(v: Instances) -> np.ndarray:
    b = v.boxes
    return v.finite & ((b[:, 2] <= b[:, 0]) | (b[:, 3] <= b[:, 1]))


def say_inverted(v: Instances, k: int) -> str:
    return f"inverted or empty box {v.written[k].tolist()} ({v.origin})"


def box_outside_image(v: Instances) -> np.ndarray:
    b = v.boxes
    past_edge = v.known_size & ((b[:, 2] > v.width) | (b[:, 3] > v.height))
    return v.finite & ((b[:, 0] < 0) | (b[:, 1] < 0) | past_edge)


def say_outside_image(v: Instances, k: int) -> str:
    w, h = v.width[k], v.height[k]
    image = f"{int(w)}x{int(h)} image" if v.known_size[k] else "image (a negative coordinate)"
    hint = origin_hint(v.origin, v.written[k], w, h)
    return f"box {v.written[k].tolist()} ({v.origin}) lies outside the {image}{hint}"


def object_id_unknown(v: Instances) -> np.ndarray:
    return (v.labels < 0) | (v.labels >= len(v.taxonomy.objects))


def say_object_id_unknown(v: Instances, k: int) -> str:
    tax = v.taxonomy
    return f"object id {int(v.labels[k])} is outside the {len(tax.objects)} {tax.name} objects"


BOX_RULES: tuple[Rule[Instances], ...] = (
    Rule("bbox", box_not_finite, say_not_finite),
    Rule("bbox", box_inverted, say_inverted),
    Rule("bbox", box_outside_image, say_outside_image),
)
LABEL_RULES: tuple[Rule[Instances], ...] = (  # labels that are taxonomy ids
    Rule("label", object_id_unknown, say_object_id_unknown),
)


# ---- pairs ----------------------------------------------------------------------------------------
def subject_out_of_range(v: Pairs) -> np.ndarray:
    return (v.subjects < 0) | (v.subjects >= v.boxes_in_record)


def say_subject_out_of_range(v: Pairs, k: int) -> str:
    return f"index {int(v.subjects[k])} is out of range ({int(v.boxes_in_record[k])} boxes)"


def object_out_of_range(v: Pairs) -> np.ndarray:
    return (v.objects < -1) | (v.objects >= v.boxes_in_record)


def say_object_out_of_range(v: Pairs, k: int) -> str:
    return f"index {int(v.objects[k])} is out of range ({int(v.boxes_in_record[k])} boxes)"


def subject_not_person(v: Pairs) -> np.ndarray:
    return ~subject_out_of_range(v) & (v.subject_labels != v.taxonomy.human_object_id)


def say_subject_not_person(v: Pairs, k: int) -> str:
    label = object_name(v.taxonomy, v.subject_labels[k])
    return f"instance {int(v.subjects[k])} is a {label}, not a person"


def verb_id_unknown(v: Pairs) -> np.ndarray:
    return (v.verbs < 0) | (v.verbs >= len(v.taxonomy.verbs))


def say_verb_id_unknown(v: Pairs, k: int) -> str:
    tax, base = v.taxonomy, v.verb_base
    n = len(tax.verbs)
    return f"verb id {int(v.verbs[k]) + base} is outside {base}..{n - 1 + base} ({n} {tax.name} verbs)"


def not_an_hoi_class(v: Pairs) -> np.ndarray:
    return ~verb_id_unknown(v) & (v.object_labels >= 0) & (v.derived_hois < 0)


def say_not_an_hoi_class(v: Pairs, k: int) -> str:
    tax = v.taxonomy
    obj = object_name(tax, v.object_labels[k])
    return f"({tax.verbs[v.verbs[k]]}, {obj}) is not a {tax.name} HOI class"


def hoi_id_unknown(v: Pairs) -> np.ndarray:
    return v.hois >= v.taxonomy.num_hois


def say_hoi_id_unknown(v: Pairs, k: int) -> str:
    tax, base = v.taxonomy, v.hoi_base
    n = tax.num_hois
    return f"HOI id {int(v.hois[k]) + base} is outside {base}..{n - 1 + base} ({n} {tax.name} HOI classes)"


def hoi_id_disagrees(v: Pairs) -> np.ndarray:
    derived = v.derived_hois
    return (v.hois >= 0) & (derived >= 0) & (v.hois != derived)


def say_hoi_id_disagrees(v: Pairs, k: int) -> str:
    base = v.hoi_base
    derived = int(v.derived_hois[k]) + base
    return f"HOI id {int(v.hois[k]) + base} disagrees with (verb, object) → {derived}"


INDEX_RULES: tuple[Rule[Pairs], ...] = (
    Rule("subject", subject_out_of_range, say_subject_out_of_range),
    Rule("object", object_out_of_range, say_object_out_of_range),
)
TAXONOMY_RULES: tuple[Rule[Pairs], ...] = (  # pairs of a source with a taxonomy
    Rule("subject", subject_not_person, say_subject_not_person),
    Rule("verb", verb_id_unknown, say_verb_id_unknown),
    Rule("verb", not_an_hoi_class, say_not_an_hoi_class),
    Rule("hoi", hoi_id_unknown, say_hoi_id_unknown),
    Rule("hoi", hoi_id_disagrees, say_hoi_id_disagrees),
)


# ---- applying the rules ---------------------------------------------------------------------------
class Fault(NamedTuple, Generic[View]):
    """The first faulty item of a record and the rule it breaks; a tuple, cheap to make: a bad file has many."""

    item: int  # index among the shard's items
    rule: Rule[View]
    view: View

    def reason(self) -> str:
        return self.rule.reason(self.view, self.item)


def first_faults(view: View, rules: Sequence[Rule[View]], record: np.ndarray) -> dict[int, Fault[View]]:
    """For each record (``record[k]``: item k's record) with a faulty item: its first fault."""
    out: dict[int, Fault[View]] = {}
    for rule in rules:
        for k in np.flatnonzero(rule.faulty(view)):
            r = int(record[k])
            if r not in out or k < out[r].item:
                out[r] = Fault(int(k), rule, view)
    return out


def classify_pairs(pairs: Pairs, tax: Taxonomy, labels: np.ndarray, first_instance: np.ndarray) -> Pairs:
    """``pairs`` with the object labels of their subject and object instances, and the HOI class
    their (verb, object) names; an index out of range reads instance 0 (its rule rejects it)."""
    subjects, objects, n = pairs.subjects, pairs.objects, pairs.boxes_in_record
    safe_s = np.where(subject_out_of_range(pairs), 0, subjects) + first_instance
    safe_o = np.where((objects < 0) | (objects >= n), 0, objects) + first_instance
    if len(labels):
        subject_labels = labels[np.clip(safe_s, 0, len(labels) - 1)]
        object_labels = np.where(objects >= 0, labels[np.clip(safe_o, 0, len(labels) - 1)], -1)
    else:
        subject_labels = object_labels = np.full(len(subjects), -1)
    return replace(
        pairs,
        tax=tax,
        subject_labels=subject_labels,
        object_labels=object_labels,
        derived_hois=tax.hoi_ids(pairs.verbs, object_labels),
    )


def object_name(tax: Taxonomy, k: Any) -> str:
    k = int(k)
    return tax.objects[k] if 0 <= k < len(tax.objects) else f"unknown object {k}"


def origin_hint(origin: BoxOrigin, box: np.ndarray, w: float, h: float) -> str:
    """A likely cause of a box outside its image: the file's origin is not the one assumed."""
    if origin is BoxOrigin.ONE_BASED and (box[:2] == 0).any():
        return "; a 0 coordinate in a one-based file: is --box-origin right?"
    if origin is BoxOrigin.ZERO_BASED and (box[2] == w or box[3] == h):
        return "; a coordinate equal to the image size in a zero-based file: is --box-origin right?"
    return ""
