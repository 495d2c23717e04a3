"""HOI-Ref-style referral questions about the person-object pairs of any canonical HOI dataset.

HOI-QA asks about hands and the objects they hold; here its two families are generalised to people
and anything they interact with, and written as canonical QA items (``<box>`` placeholders, boxes in
canonical pixels), so ``build-sft hoiqa``, ``predict`` and ``eval hoiqa`` treat them as HOI-QA's own:

``ho_ref`` (name ↔ box)
    ``objN2objBB`` "Where is the {object}?" → every instance of that class in the image;
    ``objBB2objN`` "<box>" (the identify task) → the class of an object someone interacts with.
``i_ref`` (one side of an interaction → the other)
    ``actObjN2objBB`` "Where is the {object} the person is {verb}?" → the objects of that interaction;
    ``actObjN2personBB`` "Which person is {verb} the {object}?" → the people doing it;
    ``actN2objN`` "What is the person {verb}?" → the object's class, asked only where one class answers.

A question whose answer needs more than ``max_boxes`` boxes is not asked (a crowd has no one answer
worth learning). ``no_interaction`` pairs and pairs without an object ask nothing. Column-wise: one
sort per family over all interactions of a table.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.profiles.text import join_texts
from hoidata.schemas.canonical import BOX_PLACEHOLDER, QA_ITEM

FAMILIES = ("objN2objBB", "objBB2objN", "actObjN2objBB", "actObjN2personBB", "actN2objN")
GROUP = {"objN2objBB": "ho_ref", "objBB2objN": "ho_ref"} | dict.fromkeys(FAMILIES[2:], "i_ref")
TAG = {  # HOI-Ref's task tag of each family
    "objN2objBB": "refer",
    "objBB2objN": "identify",
    "actObjN2objBB": "refer",
    "actObjN2personBB": "refer",
    "actN2objN": "vqa",
}
NO_INTERACTION = "no_interaction"
_DOUBLES = {"control": "controlling"}
_VOWELS = set("aeiou")


def ing_form(verb: str) -> str:
    """``sit_on`` → ``sitting on``, ``ride`` → ``riding``, ``lie_on`` → ``lying on``; SWIG-HOI's
    verbs are already participles and stay as they are."""
    head, *rest = verb.split("_")
    tail = "".join(" " + w for w in rest)
    if head.endswith("ing") and re.search("[aeiouy]", head[:-3]):  # riding, not swing or string
        return head + tail
    if head in _DOUBLES:
        return _DOUBLES[head] + tail
    if head.endswith("ie"):
        return head[:-2] + "ying" + tail
    if head.endswith("e") and not head.endswith(("ee", "ye", "oe")) and len(head) > 2:
        return head[:-1] + "ing" + tail
    vowel_groups = len(re.findall(r"[aeiou]+", head))
    if (
        vowel_groups == 1
        and len(head) >= 3
        and head[-1] not in _VOWELS | set("wxy")
        and head[-2] in _VOWELS
        and head[-3] not in _VOWELS
    ):
        return head + head[-1] + "ing" + tail
    return head + "ing" + tail


@dataclass
class Pairs:
    """A canonical table's person-object interactions (deduplicated), flattened; instances are
    indexed across the whole table, and classes coded by label text (the one name every source has)."""

    row: np.ndarray
    subject: np.ndarray  # instance index
    object: np.ndarray  # instance index
    verb_id: np.ndarray
    verb: pa.StringArray
    object_class: np.ndarray
    labels: pa.StringArray  # per instance
    inst_row: np.ndarray
    inst_class: np.ndarray
    boxes: pa.FixedSizeListArray  # per instance, canonical pixels


def flatten_pairs(table: pa.Table) -> Pairs:
    inst = table["instances"].combine_chunks()
    inter = table["interactions"].combine_chunks()
    inst_off = inst.offsets.to_numpy().astype(np.int64)
    int_off = inter.offsets.to_numpy().astype(np.int64)
    flat_inst = inst.values.slice(inst_off[0], inst_off[-1] - inst_off[0])
    flat_int = inter.values.slice(int_off[0], int_off[-1] - int_off[0])
    inst_off, int_off = inst_off - inst_off[0], int_off - int_off[0]
    row = np.repeat(np.arange(table.num_rows), np.diff(int_off))
    subject = flat_int.field("subject").to_numpy(zero_copy_only=False).astype(np.int64)
    obj = flat_int.field("object").to_numpy(zero_copy_only=False).astype(np.int64)
    verb = flat_int.field("verb")
    keep = (obj >= 0) & pc.not_equal(verb, NO_INTERACTION).fill_null(False).to_numpy(zero_copy_only=False)
    labels = flat_inst.field("label").fill_null("")
    inst_class = pc.dictionary_encode(labels).indices.to_numpy(zero_copy_only=False).astype(np.int64)
    g_subject = inst_off[row] + subject
    g_object = inst_off[row] + np.maximum(obj, 0)
    verb_id = flat_int.field("verb_id").fill_null(-1).to_numpy(zero_copy_only=False).astype(np.int64)
    idx = np.flatnonzero(keep)
    order = idx[np.lexsort((verb_id[idx], g_object[idx], g_subject[idx]))]
    dup = np.zeros(len(order), bool)  # one entry per distinct (person, object, verb)
    if len(order):
        dup[1:] = np.logical_and.reduce(
            [a[order][1:] == a[order][:-1] for a in (g_subject, g_object, verb_id)]
        )
    order = order[~dup]
    return Pairs(
        row=row[order],
        subject=g_subject[order],
        object=g_object[order],
        verb_id=verb_id[order],
        verb=verb.take(pa.array(order, pa.int64())),
        object_class=inst_class[g_object[order]],
        labels=labels,
        inst_row=np.repeat(np.arange(table.num_rows), np.diff(inst_off)),
        inst_class=inst_class,
        boxes=flat_inst.field("bbox"),
    )


def _distinct_groups(keys: list[np.ndarray], values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Group by ``keys``, the distinct ``values`` of each group: (first entry of each group, offsets
    into the distinct values, the distinct values in group order)."""
    if not len(values):
        return np.zeros(0, np.int64), np.zeros(1, np.int64), np.zeros(0, np.int64)
    order = np.lexsort([values, *keys[::-1]])
    new_group = np.zeros(len(order), bool)
    new_group[0] = True
    for k in keys:
        new_group[1:] |= k[order][1:] != k[order][:-1]
    new_value = new_group.copy()
    new_value[1:] |= values[order][1:] != values[order][:-1]
    kept = order[new_value]
    group_of_kept = np.cumsum(new_group)[new_value] - 1
    counts = np.bincount(group_of_kept, minlength=int(new_group.sum()))
    return order[new_group], np.concatenate([[0], np.cumsum(counts)]), values[kept]


@dataclass
class Family:
    """Questions of one family: item → row, text, and boxes as instance indices."""

    name: str
    row: np.ndarray
    question: pa.StringArray
    answer: pa.StringArray
    question_boxes: tuple[np.ndarray, np.ndarray]  # (offsets, instance indices)
    answer_boxes: tuple[np.ndarray, np.ndarray]


def _marks(counts: np.ndarray) -> pa.StringArray:
    marks = np.array(
        [", ".join([BOX_PLACEHOLDER] * k) for k in range(int(counts.max(initial=0)) + 1)], object
    )
    return pa.array(marks[counts], pa.string())


def _none(n: int) -> tuple[np.ndarray, np.ndarray]:
    return np.zeros(n + 1, np.int64), np.zeros(0, np.int64)


def families(p: Pairs, names: tuple[str, ...], max_boxes: int) -> list[Family]:
    """Every requested family's questions about the pairs ``p``."""
    out = []
    obj_name = pc.replace_substring(p.labels, "_", " ")
    verbs, verb_index = np.unique(np.array(p.verb.to_pylist() or [""], object), return_inverse=True)
    verb_ing = pa.array([ing_form(v) for v in verbs], pa.string()).take(pa.array(verb_index, pa.int64()))
    for name in names:
        if name in ("actObjN2objBB", "actObjN2personBB"):
            side = p.object if name == "actObjN2objBB" else p.subject
            first, offsets, values = _distinct_groups([p.row, p.verb_id, p.object_class], side)
            counts = np.diff(offsets)
            ok = counts <= max_boxes
            f, sel = first[ok], pa.array(first[ok], pa.int64())
            obj = obj_name.take(pa.array(p.object[f], pa.int64()))
            parts = (
                ["Where is the ", obj, " the person is ", verb_ing.take(sel), "?"]
                if name == "actObjN2objBB"
                else ["Which person is ", verb_ing.take(sel), " the ", obj, "?"]
            )
            answers = _keep_groups(offsets, values, ok)
            out.append(
                Family(name, p.row[f], join_texts(parts, len(f)), _marks(counts[ok]), _none(len(f)), answers)
            )
        elif name == "actN2objN":
            first, offsets, _ = _distinct_groups([p.row, p.verb_id], p.object_class)
            f = first[np.diff(offsets) == 1]
            question = join_texts(
                ["What is the person ", verb_ing.take(pa.array(f, pa.int64())), "?"], len(f)
            )
            answer = obj_name.take(pa.array(p.object[f], pa.int64()))
            out.append(Family(name, p.row[f], question, answer, _none(len(f)), _none(len(f))))
        elif name == "objBB2objN":
            objects = np.unique(p.object)
            n = len(objects)
            question = pa.array(np.full(n, BOX_PLACEHOLDER, object), pa.string())
            answer = obj_name.take(pa.array(objects, pa.int64()))
            boxes = (np.arange(n + 1), objects)
            out.append(Family(name, p.inst_row[objects], question, answer, boxes, _none(n)))
        elif name == "objN2objBB":
            # every instance of each class someone interacts with, interacting or not
            n_classes = int(p.inst_class.max(initial=0)) + 1
            asked = np.unique(p.row * n_classes + p.object_class)
            inst = np.flatnonzero(np.isin(p.inst_row * n_classes + p.inst_class, asked))
            first, offsets, values = _distinct_groups([p.inst_row[inst], p.inst_class[inst]], inst)
            counts = np.diff(offsets)
            ok = counts <= max_boxes
            f = inst[first[ok]]
            question = join_texts(["Where is the ", obj_name.take(pa.array(f, pa.int64())), "?"], len(f))
            answers = _keep_groups(offsets, values, ok)
            out.append(Family(name, p.inst_row[f], question, _marks(counts[ok]), _none(len(f)), answers))
        else:
            raise ValueError(f"unknown question family {name!r}; choose from {', '.join(FAMILIES)}")
    return out


def _keep_groups(offsets: np.ndarray, values: np.ndarray, ok: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    counts = np.diff(offsets)
    return np.concatenate([[0], np.cumsum(counts[ok])]), values[np.repeat(ok, counts)]


def referral_qa(table: pa.Table, names: tuple[str, ...] = FAMILIES, max_boxes: int = 4) -> pa.ListArray:
    """The table's ``qa`` column with the referral questions appended to each row's own items, in
    the order of ``names``, then by group."""
    p = flatten_pairs(table)
    fams = families(p, names, max_boxes)
    n = table.num_rows
    row = np.concatenate([f.row for f in fams] + [np.zeros(0, np.int64)])
    order = np.argsort(row, kind="stable")
    tasks = np.concatenate([np.full(len(f.row), TAG[f.name], object) for f in fams] + [np.zeros(0, object)])

    def boxes(which: str) -> pa.ListArray:
        offsets, values = [], []
        base = 0
        for f in fams:
            off, val = getattr(f, which)
            offsets.append(off[:-1] + base)
            values.append(val)
            base += len(val)
        off = np.concatenate([*offsets, [base]]).astype(np.int64)
        val = np.concatenate([*values, np.zeros(0, np.int64)]).astype(np.int64)
        counts = np.diff(off)[order]
        take = val[_ranges(off[:-1][order], counts)]
        return pa.ListArray.from_arrays(
            pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int32()),
            p.boxes.take(pa.array(take, pa.int64())) if len(take) else pa.array([], p.boxes.type),
        )

    items = pa.StructArray.from_arrays(
        [
            pa.array(tasks[order], pa.string()),
            pa.concat_arrays([f.question for f in fams] or [pa.array([], pa.string())]).take(pa.array(order)),
            pa.concat_arrays([f.answer for f in fams] or [pa.array([], pa.string())]).take(pa.array(order)),
            boxes("question_boxes"),
            boxes("answer_boxes"),
        ],
        fields=list(QA_ITEM),
    )
    counts = np.bincount(row, minlength=n)
    new = pa.ListArray.from_arrays(pa.array(np.concatenate([[0], np.cumsum(counts)]), pa.int32()), items)
    old = table["qa"].combine_chunks().fill_null(pa.scalar([], table.schema.field("qa").type))
    return append_lists(old, new)


def _ranges(starts: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """``concat(arange(s, s + c) for s, c in zip(starts, counts))`` without the loop."""
    total = int(counts.sum())
    begin = np.concatenate([[0], np.cumsum(counts)])[:-1]
    return np.repeat(starts - begin, counts) + np.arange(total)


def append_lists(a: pa.ListArray, b: pa.ListArray) -> pa.ListArray:
    """Row-wise ``a[i] + b[i]`` of two list arrays of one type."""
    ao, bo = a.offsets.to_numpy().astype(np.int64), b.offsets.to_numpy().astype(np.int64)
    ca, cb = np.diff(ao), np.diff(bo)
    values = pa.concat_arrays([a.values.slice(ao[0], ao[-1] - ao[0]), b.values.slice(bo[0], bo[-1] - bo[0])])
    out = np.concatenate([[0], np.cumsum(ca + cb)])
    take = np.empty(out[-1], np.int64)
    take[_ranges(out[:-1], ca)] = _ranges(ao[:-1] - ao[0], ca)
    take[_ranges(out[:-1] + ca, cb)] = ao[-1] - ao[0] + _ranges(bo[:-1] - bo[0], cb)
    return pa.ListArray.from_arrays(pa.array(out, pa.int32()), values.take(pa.array(take)))
