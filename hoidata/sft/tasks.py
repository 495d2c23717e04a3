"""The SFT tasks as column operations over a boxed table.

Each task decides its unit (a person–object pair, an HOI class in an image, or an image), groups
the flattened interactions into units with one sort, and fills question and answer text for all
units at once. Every interaction of the input lands in exactly one unit's ``pairs`` (detection,
grounding) or in the unit of its person–object pair (referring, spatial, cof): nothing dropped,
nothing invented.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.profiles import Profile
from hoidata.profiles.text import BoxStyle, join_texts
from hoidata.sft import prompts
from hoidata.sft.schema import PAIR
from hoidata.sft.spatial_prompt import spatial_questions

TASKS = ("referring", "grounding", "detection", "cof", "spatial", "hoiqa", "box-answer")


@dataclass
class Interactions:
    """A boxed table's interactions, flattened; boxes in canonical pixels and the profile's frame."""

    n_rows: int
    row: np.ndarray
    subject: np.ndarray
    object: np.ndarray
    has_object: np.ndarray
    verb: pa.Array  # taxonomy names
    verb_id: np.ndarray
    hoi_id: np.ndarray
    object_label: pa.Array  # null where there is no object
    object_id: np.ndarray  # -1 where there is no object
    person: np.ndarray  # (N, 4) canonical
    object_box: np.ndarray  # (N, 4) canonical; the person box where there is no object
    model_person: np.ndarray
    model_object: np.ndarray
    model_union: np.ndarray
    union_null: np.ndarray  # the boxes stage was told to leave union/refer boxes null for these

    def __len__(self) -> int:
        return len(self.row)


@dataclass
class Units:
    """One task's samples before images and messages: sample → table row, and its interactions."""

    task: str
    row: np.ndarray
    order: np.ndarray  # interaction indices, grouped by sample
    offsets: np.ndarray  # sample i covers order[offsets[i]:offsets[i+1]]
    question: pa.Array
    answer: pa.Array
    first: np.ndarray  # the first interaction of each sample (-1 for an image without interactions)

    def __len__(self) -> int:
        return len(self.row)


def flatten(table: pa.Table) -> Interactions:
    n = table.num_rows
    inst = table["instances"].combine_chunks()
    inter = table["interactions"].combine_chunks()
    inst_off = inst.offsets.to_numpy().astype(np.int64)
    int_off = inter.offsets.to_numpy().astype(np.int64)
    flat_inst = inst.values.slice(inst_off[0], inst_off[-1] - inst_off[0])
    flat_int = inter.values.slice(int_off[0], int_off[-1] - int_off[0])
    inst_off, int_off = inst_off - inst_off[0], int_off - int_off[0]
    row = np.repeat(np.arange(n), np.diff(int_off))
    subject = _ints(flat_int.field("subject"))
    obj = _ints(flat_int.field("object"))
    has_object = obj >= 0
    gs = inst_off[row] + subject
    go = np.where(has_object, inst_off[row] + obj, gs)
    boxes = _boxes(flat_inst.field("bbox"))
    model = _boxes(flat_inst.field("model_bbox")).astype(np.int64)
    labels = flat_inst.field("label")
    label_ids = _ints(flat_inst.field("label_id"))
    mask = pa.array(~has_object)
    return Interactions(
        n_rows=n,
        row=row,
        subject=subject,
        object=obj,
        has_object=has_object,
        verb=flat_int.field("verb"),
        verb_id=_ints(flat_int.field("verb_id")),
        hoi_id=_ints(flat_int.field("hoi_id"), fill=-1),
        object_label=pc.if_else(mask, pa.scalar(None, pa.string()), labels.take(pa.array(go))),
        object_id=np.where(has_object, label_ids[go], -1),
        person=boxes[gs],
        object_box=boxes[go],
        model_person=model[gs],
        model_object=model[go],
        model_union=_boxes(flat_int.field("model_union_bbox"), fill=0).astype(np.int64),
        union_null=pc.is_null(flat_int.field("model_union_bbox")).to_numpy(zero_copy_only=False),
    )


def _ints(arr: pa.Array, fill: int = 0) -> np.ndarray:
    return arr.fill_null(fill).to_numpy(zero_copy_only=False).astype(np.int64)


def _boxes(arr: pa.FixedSizeListArray, fill: float | None = None) -> np.ndarray:
    if fill is not None and arr.null_count:
        arr = pc.if_else(pc.is_null(arr), pa.scalar([fill] * 4, arr.type), arr)
    return arr.flatten().to_numpy(zero_copy_only=False).astype(np.float64).reshape(-1, 4)


def display(names: pa.Array) -> pa.Array:
    return pc.replace_substring(names, "_", " ")


def _groups(keys: list[np.ndarray], by: int) -> tuple[np.ndarray, np.ndarray]:
    """Sort by all ``keys`` (stable), group by the first ``by`` of them: (order, offsets)."""
    if not len(keys[0]):
        return np.zeros(0, np.int64), np.zeros(1, np.int64)
    order = np.lexsort(keys[::-1])
    change = np.zeros(len(order), bool)
    change[0] = True
    for k in keys[:by]:
        s = k[order]
        change[1:] |= s[1:] != s[:-1]
    starts = np.flatnonzero(change)
    return order, np.append(starts, len(order))


def _verb_answer(it: Interactions, order: np.ndarray, offsets: np.ndarray) -> pa.Array:
    """The distinct verbs of each group (order sorted by verb within the group), joined by ', '."""
    group = np.repeat(np.arange(len(offsets) - 1), np.diff(offsets))
    v = it.verb_id[order]
    first = np.ones(len(order), bool)
    first[1:] = (v[1:] != v[:-1]) | (group[1:] != group[:-1])
    kept = order[first]
    counts = np.bincount(group[first], minlength=len(offsets) - 1)
    lists = pa.ListArray.from_arrays(
        pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int32()), display(it.verb.take(pa.array(kept)))
    )
    return pc.binary_join(lists, ", ")


def pair_units(it: Interactions, profile: Profile, seed: int, task: str) -> Units:
    """One sample per (image, person, object): referring, spatial and cof share this unit."""
    order, offsets = _groups([it.row, it.subject, it.object, it.verb_id], by=3)
    first = order[offsets[:-1]]
    ids = _unit_ids(it.row[first], it.subject[first], it.object[first])
    fields = {
        "person": profile.box_texts(it.model_person[first]),
        "object_box": profile.box_texts(it.model_object[first]),
        "object": display(it.object_label.take(pa.array(first)).fill_null("")),
    }
    has_obj = it.has_object[first]
    if task == "spatial":  # the one text form spatial-linking models train and predict with
        refer = np.stack([it.model_person[first], it.model_object[first], it.model_union[first]], axis=1)
        question = spatial_questions(profile, refer, fields["object"], has_obj)
    else:
        question = _fill_split("referring", has_obj, prompts.choose(ids, seed, 1 << 20, task), fields)
    return Units(task, it.row[first], order, offsets, question, _verb_answer(it, order, offsets), first)


def grounding_units(it: Interactions, profile: Profile, seed: int) -> Units:
    """One sample per (image, verb, object class); the answer holds every matching pair."""
    order, offsets = _groups([it.row, it.verb_id, it.object_id], by=3)
    first = order[offsets[:-1]]
    ids = _unit_ids(it.row[first], it.verb_id[first], it.object_id[first])
    entries = profile.pair_texts(it.model_person[order], it.model_object[order], it.has_object[order])
    answer = profile.join_entries(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), entries))
    fields = {
        "verb": display(it.verb.take(pa.array(first))),
        "object": display(it.object_label.take(pa.array(first)).fill_null("")),
        "format": profile.answer_hint(labels=False),
    }
    question = _fill_split(
        "grounding", it.has_object[first], prompts.choose(ids, seed, 1 << 20, "grounding"), fields
    )
    return Units("grounding", it.row[first], order, offsets, question, answer, first)


def detection_units(it: Interactions, profile: Profile, seed: int) -> Units:
    """One sample per image, empty images included (their answer says there is nothing)."""
    order = np.argsort(it.row, kind="stable")
    counts = np.bincount(it.row, minlength=it.n_rows)
    offsets = np.concatenate([[0], np.cumsum(counts)])
    entries = profile.pair_texts(
        it.model_person[order],
        it.model_object[order],
        it.has_object[order],
        display(it.verb.take(pa.array(order))),
        display(it.object_label.take(pa.array(order)).fill_null("")),
    )
    answer = profile.join_entries(pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), entries))
    if profile.style is BoxStyle.TOKENS:
        answer = pc.if_else(pa.array(counts == 0), "none", answer)
    rows = np.arange(it.n_rows)
    ids = _unit_ids(rows, rows, rows)
    question = prompts.fill(
        "detection", prompts.choose(ids, seed, 1 << 20, "detection"), {"format": profile.answer_hint()}
    )
    first = np.full(it.n_rows, -1, np.int64)
    first[counts > 0] = order[offsets[:-1][counts > 0]]
    return Units("detection", rows, order, offsets, question, answer, first)


def _fill_split(name: str, has_object: np.ndarray, choice: np.ndarray, fields: dict) -> pa.Array:
    """Fill ``name`` where the unit has an object and ``name_no_object`` elsewhere."""
    if has_object.all():
        return prompts.fill(name, choice, fields)
    out = np.empty(len(has_object), object)
    for flag, template in ((True, name), (False, f"{name}_no_object")):
        idx = np.flatnonzero(has_object == flag)
        if len(idx):
            sub = {k: v if isinstance(v, str) else v.take(pa.array(idx)) for k, v in fields.items()}
            out[idx] = prompts.fill(template, choice[idx], sub).to_pylist()
    return pa.array(out, pa.string())


def _unit_ids(*keys: np.ndarray) -> pa.Array:
    """Text keys of units, used only to seed paraphrase choice (stable across runs)."""
    return join_texts([x for k in keys for x in (pa.array(k).cast(pa.string()), ":")][:-1], len(keys[0]))


def pairs_column(it: Interactions, units: Units) -> pa.ListArray:
    """The ground-truth pairs each sample covers, canonical pixels."""
    o = units.order
    obj_box = pa.FixedSizeListArray.from_arrays(
        pa.array(it.object_box[o].astype(np.float32).reshape(-1)), 4, mask=pa.array(~it.has_object[o])
    )
    values = pa.StructArray.from_arrays(
        [
            pa.FixedSizeListArray.from_arrays(pa.array(it.person[o].astype(np.float32).reshape(-1)), 4),
            obj_box,
            it.verb.take(pa.array(o)),
            pa.array(it.verb_id[o], pa.int32()),
            it.object_label.take(pa.array(o)),
            pa.array(it.object_id[o], pa.int32()),
            pa.array(it.hoi_id[o], pa.int32()),
        ],
        fields=list(PAIR),
    )
    return pa.ListArray.from_arrays(pa.array(units.offsets, pa.int32()), values)


def refer_boxes_column(it: Interactions, units: Units) -> pa.ListArray:
    """``[person, object, union]`` of each sample's pair, in the profile's frame (spatial-linking)."""
    f = units.first
    stacked = np.stack([it.model_person[f], it.model_object[f], it.model_union[f]], axis=1).reshape(-1)
    boxes = pa.FixedSizeListArray.from_arrays(pa.array(stacked.astype(np.int32)), 4)
    null = it.union_null[f]
    return pa.ListArray.from_arrays(
        pa.array(np.arange(0, 3 * len(f) + 1, 3), pa.int32()),
        boxes,
        mask=pa.array(null) if null.any() else None,
    )
