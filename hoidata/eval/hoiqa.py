"""HOI-QA (HOI-Ref) accuracy: names and boxes of hands and the objects they hold (docs/metrics.md).

The ground truth is a dataset with QA items (``hoidata convert hoiqa``, or ``hoidata qa`` on any HOI
dataset): each item's answer is either boxes (``answer_boxes``, canonical pixels) or a noun (the
answer text).

**Which completion answers which item.** A completion's ``sample_id`` is the row's sample id, ``#``,
and the item's 0-based index in the row's ``qa`` list (``hoi-qa/test/a1#0``); the bare row id is
accepted for a row with exactly one item (the VISOR layout). The first completion of an item counts;
items without one are answered with nothing (wrong, IoU 0) unless ``skip_missing``.

**Boxes.** Answers write ``{<x1><y1><x2><y2>}`` on a 0–100 grid of the image (the converter's reading:
``x * width / 100``, no rounding; ``truncate=True`` takes ``int()`` of the pixels as the reference's
``bb_normalize`` does), or, for a model trained on ``build-sft hoiqa --box-format profile``, boxes in
its profile's frame (read through the profile; ``predict`` records which in its manifest). IoU is
the reference's inclusive ``+1`` rule on pixel values, and a box is correct when IoU **> 0.5**
(strictly). A one-box item takes the best IoU over every predicted box; an item with n > 1 boxes
(the "hands" question, n = 2) needs exactly n predicted boxes, each ground-truth box takes its best
IoU over them, and the n boxes are all correct or all wrong. An answer without
the right number of boxes scores IoU 0 for each ground-truth box (the reference leaves some of those
out of its mean IoU, inconsistently across its two loops).

**Nouns.** Answer and prediction are lowercased with ``.`` removed. "right hand" / "left hand" must
appear in the prediction; "right glove" / "left glove" need "glove"; any other noun must appear as
whole words (the reference splits the prediction on spaces and compares single words, so a
multi-word noun can never match there; here it matches as a run of words).

**Groups and subsets** come from the question templates (after the converter strips the ``[tag]``):
``ho_ref`` — "Where is the {noun}" (test layout; objN2objBB / handN2handBB), the box question
(identify; objBB2objN / handBB2handN), "Where is the right/left hand of the person?" and "Where are
the hands of the person?" (handN2handBB); ``i_ref`` — "Locate the object being manipulated by…"
(handN2objBB), "Which hand has the…" (objN2handBB), "What hand is holding the…" (objN2handN), "What
is the object in the…" (handN2objN); ``hoidata qa``'s pair questions add three ``i_ref`` subsets: "Where
is the {object} the person is {verb}?" (actObjN2objBB), "Which person is {verb} the {object}?"
(actObjN2personBB), "What is the person {verb}?" (actN2objN), while "Where is the {object}?" and
the box question fall in objN2objBB and objBB2objN. Other questions count overall as ``other``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hoidata.errors import HoidataError
from hoidata.eval.completions import first_answers, read_completions
from hoidata.eval.report import Report, percent
from hoidata.io import read_manifest, read_table
from hoidata.profiles import Profile, get_profile
from hoidata.sft.qa import BOX_FORMATS, read_boxes
from hoidata.sources.hoiqa import BOX_TEXT

THRESHOLD = 0.5
HANDS = ("right hand", "left hand")
GLOVES = ("right glove", "left glove")
SUBSETS = (
    "handBB2handN",
    "objBB2objN",
    "objN2objBB",
    "handN2handBB",
    "handN2objBB",
    "objN2handBB",
    "objN2handN",
    "handN2objN",
    "actObjN2objBB",  # referral questions about person-object pairs (``hoidata qa``)
    "actObjN2personBB",
    "actN2objN",
)
GROUPS = ("ho_ref", "i_ref", "other")
_HAND_REFER = re.compile(
    r"^(where is the (right|left) hand of the person|where are the hands of the person)\b"
)
_WHERE = re.compile(r"^where is the (.+?)\s*\??\s*$")
_PAIR_TEMPLATES = (  # (pattern, group, subset) of ``hoidata qa``'s i_ref questions
    (re.compile(r"^where is the .+ the person is .+\?$"), "i_ref", "actObjN2objBB"),
    (re.compile(r"^which person is .+ the .+\?$"), "i_ref", "actObjN2personBB"),
    (re.compile(r"^what is the person .+\?$"), "i_ref", "actN2objN"),
)
_TEMPLATES = (  # (question prefix, group, subset), box then noun questions
    ("locate the object being manipulated by", "i_ref", "handN2objBB"),
    ("which hand has the", "i_ref", "objN2handBB"),
    ("what hand is holding the", "i_ref", "objN2handN"),
    ("what is the object in the", "i_ref", "handN2objN"),
)


def classify(question: str, gt_noun: str | None, is_box: bool) -> tuple[str, str | None]:
    """(group, subset) of one QA item from its question template and answer kind."""
    q = question.strip().lower()
    if is_box and _HAND_REFER.match(q):
        return "ho_ref", "handN2handBB"
    for prefix, group, subset in _TEMPLATES:
        if q.startswith(prefix) and is_box == subset.endswith("BB"):
            return group, subset
    for pattern, group, subset in _PAIR_TEMPLATES:
        if pattern.match(q) and is_box == subset.endswith("BB"):
            return group, subset
    if is_box and (m := _WHERE.match(q)):
        return "ho_ref", "handN2handBB" if m.group(1) in HANDS else "objN2objBB"
    if not is_box and q == "<box>" and gt_noun is not None:
        return "ho_ref", "handBB2handN" if gt_noun in HANDS else "objBB2objN"
    return "other", None


def noun_correct(prediction: str, noun: str) -> bool:
    """The reference's noun rule (hands by phrase, gloves by "glove"), multi-word nouns as word runs."""
    pred = prediction.lower().replace(".", "")
    gt = noun.strip().lower().replace(".", "")
    if gt in HANDS:
        return gt in pred
    if gt in GLOVES:
        return "glove" in pred
    words, want = pred.split(), gt.split()
    n = len(want)
    return n > 0 and any(words[i : i + n] == want for i in range(len(words) - n + 1))


def inclusive_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU with the reference's ``+1`` widths on pixel values (intersection clamped at 0)."""
    iw = np.maximum(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + 1, 0.0)
    ih = np.maximum(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + 1, 0.0)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0] + 1) * (a[:, 3] - a[:, 1] + 1)
    area_b = (b[:, 2] - b[:, 0] + 1) * (b[:, 3] - b[:, 1] + 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(inter > 0, inter / (area_a + area_b - inter), 0.0)


def grid_boxes(text: str, width: float, height: float, truncate: bool = False) -> np.ndarray:
    """Every ``{<x1><y1><x2><y2>}`` of an answer, from the 0–100 grid to pixels, as (N, 4)."""
    grid = np.array([[float(v) for v in m.groups()] for m in BOX_TEXT.finditer(text)], np.float64)
    px = grid.reshape(-1, 4) * np.array([width, height, width, height]) / 100.0
    return np.trunc(px) if truncate else px


def score_boxes(pred: np.ndarray, gt: np.ndarray) -> tuple[np.ndarray, bool]:
    """Best IoU of each ground-truth box, and whether the item's boxes are correct (see module doc)."""
    n_gt = len(gt)
    if not len(pred) or (n_gt > 1 and len(pred) != n_gt):
        return np.zeros(n_gt), False
    ious = inclusive_iou(np.repeat(gt, len(pred), axis=0), np.tile(pred, (n_gt, 1))).reshape(n_gt, -1)
    best = ious.max(axis=1)
    return best, bool((best > THRESHOLD).all())


@dataclass
class Tally:
    """Correct / total counts and IoUs of one group or subset."""

    noun_correct: int = 0
    noun_total: int = 0
    box_correct: int = 0
    box_total: int = 0
    ious: list[float] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "noun_accuracy": self.noun_correct / self.noun_total if self.noun_total else None,
            "box_accuracy": self.box_correct / self.box_total if self.box_total else None,
            "mean_iou": float(np.mean(self.ious)) if self.ious else None,
            "noun_correct": self.noun_correct,
            "noun_total": self.noun_total,
            "box_correct": self.box_correct,
            "box_total": self.box_total,
        }


@dataclass
class HoiqaReport(Report):
    """Noun accuracy, box accuracy (IoU > 0.5) and mean IoU: overall, per group, per subset."""

    overall: dict[str, Any]
    groups: dict[str, dict[str, Any]]
    subsets: dict[str, dict[str, Any]]  # accuracy, correct, total
    counts: dict[str, int]
    unmatched_samples: list[str]
    items: list[dict[str, Any]] = field(default_factory=list)  # per item: id, group, subset, correct, ious
    notes: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"metric": "hoi-qa", "threshold": f"IoU > {THRESHOLD} (inclusive +1 pixels)"}

    def format_table(self) -> str:
        """The console summary, in percent."""
        lines = [
            "HOI-QA — noun accuracy, box accuracy (IoU > 0.5), mean IoU",
            f"  {'':<14}{'noun %':>10}{'box %':>10}{'mIoU %':>10}",
        ]
        for label, s in (("all", self.overall), *self.groups.items()):
            if s["noun_total"] or s["box_total"]:
                shown = "".join(percent(s[k]) for k in ("noun_accuracy", "box_accuracy", "mean_iou"))
                lines.append(f"  {label:<14}{shown}")
        for name, s in self.subsets.items():
            if s["total"]:
                lines.append(f"  {name:<14}{percent(s['accuracy'])}  ({s['correct']:,}/{s['total']:,})")
        c = self.counts
        lines.append(
            f"  {c['evaluated']:,} items evaluated ({c['answered']:,} answered) of {c['items']:,}; "
            f"{c['completions']:,} completions read"
        )
        if c["without_completion"]:
            lines.append(f"  {c['without_completion']:,} items have no completion")
        if c["duplicate_completions"]:
            lines.append(
                f"  set aside: {c['duplicate_completions']:,} repeated completions (first one counts)"
            )
        if self.unmatched_samples:
            lines.append(
                f"  set aside: {len(self.unmatched_samples):,} completions whose sample_id names no item "
                f"(first: {self.unmatched_samples[0]!r})"
            )
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


@dataclass(frozen=True)
class BoxReader:
    """How answers write boxes: ``grid`` (HOI-Ref's 0–100) or ``profile`` (a Qwen VL family's frame)."""

    box_format: str = "grid"
    profile: Profile | None = None
    truncate: bool = False

    def read(self, text: str, width: float, height: float) -> np.ndarray:
        if self.box_format == "grid" or self.profile is None:
            return grid_boxes(text, width, height, self.truncate)
        px = read_boxes(text, "profile", self.profile, width, height)
        return np.trunc(px) if self.truncate else px


def box_reader(completions: Path, box_format: str | None, profile: str | None, truncate: bool) -> BoxReader:
    """The reader the user asked for; else what ``predict`` recorded beside its completions; else grid."""
    config = read_manifest(completions).config if (completions / "manifest.json").is_file() else {}
    fmt = box_format or config.get("box_format") or "grid"
    if fmt not in BOX_FORMATS:
        raise HoidataError(f"--box-format must be one of {', '.join(BOX_FORMATS)}, got {fmt!r}")
    if fmt == "grid":
        return BoxReader("grid", None, truncate)
    spec = config.get("profile_spec") or {}
    name = profile or spec.get("name")
    if not name:
        raise HoidataError("--box-format profile needs --profile (the family the model writes boxes as)")
    same = name == spec.get("name")
    budget = (spec.get("min_pixels"), spec.get("max_pixels")) if same else (None, None)
    return BoxReader("profile", get_profile(name, *budget), truncate)


@dataclass
class Item:
    """One QA item of the ground truth."""

    id: str
    question: str
    answer: str
    answer_boxes: np.ndarray  # (n, 4) canonical pixels; empty: a noun answer
    width: float | None
    height: float | None


def load_items(dataset: Path | str) -> list[Item]:
    """Every QA item of a converted HOI-QA dataset, identified as ``sample_id#index``."""
    table = read_table(dataset, ["sample_id", "width", "height", "qa"])
    items = []
    for row in table.to_pylist():
        for k, qa in enumerate(row["qa"] or []):
            boxes = np.array(qa["answer_boxes"] or [], np.float64).reshape(-1, 4)
            items.append(
                Item(
                    f"{row['sample_id']}#{k}",
                    qa["question"],
                    qa["answer"],
                    boxes,
                    row["width"],
                    row["height"],
                )
            )
    if not items:
        raise HoidataError(
            "this dataset has no QA items (convert HOI-QA, or add referral questions with `hoidata qa`)",
            file=str(dataset),
        )
    return items


def evaluate(
    items: list[Item],
    answers: list[str | None],
    *,
    image_size: tuple[int, int] | None = None,
    truncate: bool = False,
    boxes: BoxReader | None = None,
) -> HoiqaReport:
    """Score one answer per item (None: no completion, scored as an empty answer): no I/O."""
    tallies = {g: Tally() for g in ("all", *GROUPS)}
    subsets = {s: [0, 0] for s in SUBSETS}
    per_item = []
    for item, answer in zip(items, answers, strict=True):
        text = answer or ""
        is_box = len(item.answer_boxes) > 0
        noun = None if is_box else item.answer.strip().lower()
        group, subset = classify(item.question, noun, is_box)
        if is_box:
            w, h = (
                item.width or (image_size[0] if image_size else None),
                item.height or (image_size[1] if image_size else None),
            )
            if w is None or h is None:
                raise HoidataError(
                    "image size unknown: the grid boxes cannot be rescaled (pass --image-size WxH)",
                    record=item.id,
                )
            pred = grid_boxes(text, w, h, truncate) if boxes is None else boxes.read(text, w, h)
            best, ok = score_boxes(pred, item.answer_boxes)
            n = len(best)
            for t in (tallies["all"], tallies[group]):
                t.box_total += n
                t.box_correct += n if ok else 0
                t.ious.extend(best.tolist())
            record: dict[str, Any] = {"ious": best.tolist()}
            units = n
        else:
            ok = noun_correct(text, noun or "")
            for t in (tallies["all"], tallies[group]):
                t.noun_total += 1
                t.noun_correct += int(ok)
            record, units = {}, 1
        if subset is not None:
            subsets[subset][0] += units if ok else 0
            subsets[subset][1] += units
        per_item.append({"id": item.id, "group": group, "subset": subset, "correct": ok, **record})
    return HoiqaReport(
        overall=tallies["all"].summary(),
        groups={g: tallies[g].summary() for g in GROUPS},
        subsets={
            s: {"accuracy": c / t if t else None, "correct": c, "total": t} for s, (c, t) in subsets.items()
        },
        counts={},
        unmatched_samples=[],
        items=per_item,
    )


def eval_hoiqa(
    completions: Path | str,
    dataset: Path | str,
    *,
    skip_missing: bool = False,
    image_size: tuple[int, int] | None = None,
    truncate: bool = False,
    box_format: str | None = None,
    profile: str | None = None,
) -> HoiqaReport:
    """Read completions (JSONL/Parquet ``{sample_id, completion}``) and score them against the QA
    items of a converted HOI-QA dataset directory. ``image_size`` (w, h) rescales grid boxes where a
    row has no size (the test layout; the reference uses 1920×1080 for EPIC, 1440×1080 for Ego4D).
    ``completions`` may be a ``predict`` directory: its manifest then says how boxes are written."""
    items = load_items(dataset)
    index = {it.id: i for i, it in enumerate(items)}
    rows = read_table(dataset, ["sample_id", "qa"])
    for sid, qa in zip(rows.column("sample_id").to_pylist(), rows.column("qa").to_pylist(), strict=True):
        if qa is not None and len(qa) == 1:
            index.setdefault(sid, index[f"{sid}#0"])  # a one-item row answers by its bare id
    path = Path(completions)
    reader = box_reader(path, box_format, profile, truncate)
    ids, raw = read_completions(path)
    got = first_answers(ids, raw, index, len(items))
    if got.matched_none:
        raise HoidataError(
            f"none of the {len(ids):,} completions names a QA item of this dataset (first: {ids[0]!r}; "
            f"items are named like {items[0].id!r})",
            file=str(path),
        )
    keep = np.flatnonzero(got.answered) if skip_missing else np.arange(len(items))
    report = evaluate(
        [items[i] for i in keep],
        [got.texts[i] for i in keep],
        image_size=image_size,
        truncate=truncate,
        boxes=reader,
    )
    report.counts = {"items": len(items), "evaluated": len(keep), **got.counts()}
    report.unmatched_samples = got.unmatched
    if report.counts["without_completion"] and not skip_missing:
        report.notes.append(
            f"{report.counts['without_completion']:,} items without a completion count as empty answers"
        )
    if reader.box_format == "profile" and reader.profile is not None:
        report.notes.append(f"boxes read in the {reader.profile.name} profile's frame")
    if truncate:
        report.notes.append(
            "predicted pixel coordinates truncated to integers (the reference's bb_normalize)"
        )
    report.sources = {"completions": str(path), "ground_truth": str(dataset)}
    return report
