"""Grounding AR: how many ground-truth (person, object) pairs a model's boxes recover.

A grounding sample is one image × (verb, object class); its ``pairs`` are every ground-truth pair
of that class in the image (canonical pixels). The model answers with a list of pairs of boxes,
read back with the dataset's profile by :func:`~hoidata.profiles.answers.parse_answers`; an answer
that yields no pair (unparseable, empty, or missing) counts as zero predictions.

Two ways to turn matches into a number (the report says which one it holds):

* ``pooled`` (default; the hoi-benchmarks grounding scripts): per sample and threshold ``t``, a
  prediction and a ground-truth pair are candidates when ``IoU_p >= t`` and ``IoU_o >= t``; they are
  matched one-to-one, greedily by the mean ``(IoU_p + IoU_o) / 2``, highest first, ties broken by the
  prediction's position in the answer, then the pair's position in the ground truth.
  ``recall_t = sum TP / sum GT`` pooled over all samples; AR is the mean over ``t``. No confidence is
  used, so false positives never lower it.
* ``coco`` (COCO-style AR): one category per (verb, object); per sample, only the first 100
  predictions in answer order count (COCO's ``maxDets=100``, answer order standing in for the score
  order VLMs lack), and each prediction in turn takes the free candidate with the highest mean IoU.
  Recall is computed per category and AR averages categories that have ground truth.

Thresholds are the exact decimals ``k / 100`` for ``k = 50, 55, …, 95`` (``0.55`` is the double
nearest 0.55, not ``numpy.arange``'s accumulated value). IoU is :func:`hoidata.schemas.boxes.iou`:
continuous edges, no ``+1``. The reference scripts compare boxes on the 0–1000 grid, also without
``+1``; scaling x and y by constant factors does not change an IoU, so canonical pixels give the
same values. A pair without an object matches only a prediction without an object box, on the
person box alone (its mean IoU is ``IoU_p``). Size buckets follow COCO's areas on the ground-truth
object box in canonical pixels (small < 32², medium < 96², large ≥ 96²); a pair without an object
is bucketed by its person box. Buckets reuse the one matching over all pairs (COCO re-matches per
area range with out-of-range pairs ignored; that refinement is not reproduced).

The matching is vectorised over samples and thresholds at once: greedy one-to-one matching over a
strict priority order equals repeatedly accepting every edge that is the best remaining edge of both
its prediction and its pair, which takes a handful of array passes instead of a loop over edges.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.errors import HoidataError
from hoidata.eval.completions import join_completions
from hoidata.eval.report import Report, count_lines, summary_rows
from hoidata.eval.score import resolve_profile
from hoidata.profiles.answers import Answers, parse_answers
from hoidata.rewards.greedy import accept_in_order
from hoidata.rewards.targets import GROUNDING, Targets
from hoidata.schemas.boxes import iou

THRESHOLDS = np.array([k / 100 for k in range(50, 100, 5)])  # exact decimals 0.50 … 0.95
SMALL, MEDIUM = 32.0**2, 96.0**2  # COCO area edges, canonical pixels
MAX_DETS = 100  # COCO-style: predictions per sample (answer order)
METHODS = ("pooled", "coco")
SIZES = ("small", "medium", "large")
METHOD_TEXT = {
    "pooled": "pooled recall over all ground-truth pairs; greedy one-to-one matching by mean IoU "
    "(highest first, ties by answer order); no confidence, false positives never lower it",
    "coco": f"COCO-style AR: recall per (verb, object) category averaged over categories; first {MAX_DETS} "
    "predictions per sample in answer order, each taking its free candidate with the highest mean IoU",
}


# ---- matching ----------------------------------------------------------------------------------
def _edges(pred: Answers, gt: Targets) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every (prediction, ground-truth pair) of the same sample whose object presence agrees:
    ``(p, g, mean IoU, min IoU)``."""
    owner = pred.owner
    per_pred = gt.counts[owner]
    p = np.repeat(np.arange(len(owner)), per_pred)
    first_edge = np.repeat(np.cumsum(per_pred) - per_pred, per_pred)
    g = np.repeat(gt.offsets[owner], per_pred) + np.arange(len(p)) - first_edge
    pred_has, gt_has = ~np.isnan(pred.object[:, 0]), ~np.isnan(gt.object[:, 0])
    ok = pred_has[p] == gt_has[g]
    p, g = p[ok], g[ok]
    iou_p = iou(pred.person[p], gt.person[g]) if len(p) else np.zeros(0)
    iou_o = iou_p.copy()
    both = gt_has[g]
    if both.any():
        iou_o[both] = iou(pred.object[p[both]], gt.object[g[both]])
    return p, g, (iou_p + iou_o) / 2, np.minimum(iou_p, iou_o)


def match(
    pred: Answers, gt: Targets, *, method: str = "pooled", thresholds: np.ndarray = THRESHOLDS
) -> np.ndarray:
    """``(T, G)`` bool: which ground-truth pairs are recovered at each threshold."""
    if method not in METHODS:
        raise HoidataError(f"unknown method {method!r}; expected {' or '.join(METHODS)}")
    if len(pred) != len(gt):
        raise ValueError(f"{len(pred)} answers for {len(gt)} samples")
    n_pred, n_gt, n_t = len(pred.person), len(gt.person), len(thresholds)
    p, g, mean, low = _edges(pred, gt)
    if method == "coco":
        rank = np.arange(n_pred) - pred.offsets[pred.owner]
        keep = rank[p] < MAX_DETS
        p, g, mean, low = p[keep], g[keep], mean[keep], low[keep]
        order = np.lexsort((g, -mean, p))  # answer order; within a prediction, best pair first
    else:
        order = np.lexsort((g, p, -mean))  # best mean IoU first; ties by answer, then GT order
    p, g, low = p[order], g[order], low[order]
    ok = low[None, :] >= thresholds[:, None]  # (T, E)
    t_idx, e = np.nonzero(ok)  # row-major: threshold by threshold, priority order kept inside
    won = accept_in_order(t_idx * n_pred + p[e], t_idx * n_gt + g[e])
    tp = np.zeros((n_t, n_gt), bool)
    tp[t_idx[won], g[e[won]]] = True
    return tp


def size_bucket(gt: Targets) -> np.ndarray:
    """0 small, 1 medium, 2 large, by object-box area (person box when the pair has no object)."""
    box = np.where(np.isnan(gt.object[:, :1]), gt.person, gt.object)
    area = np.clip(box[:, 2] - box[:, 0], 0, None) * np.clip(box[:, 3] - box[:, 1], 0, None)
    return np.searchsorted(np.array([SMALL, MEDIUM]), area, side="right")


# ---- report ------------------------------------------------------------------------------------
@dataclass
class GroundingReport(Report):
    """AR summaries, recall at each threshold, per-category AR, and how they were computed."""

    method: str  # pooled | coco
    summary: dict[str, float | None]  # ar, ar50, ar75, ar_small, ar_medium, ar_large
    thresholds: list[float]
    recall: list[float | None]  # per threshold (pooled over pairs, or the category mean)
    categories: list[dict[str, Any]]  # verb, object, gt_pairs, ar, recall50
    counts: dict[str, int]
    unmatched_samples: list[str]
    profile: str
    notes: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {
            "metric": "grounding_ar",
            "method_description": METHOD_TEXT[self.method],
            "iou": "continuous (no +1), canonical pixels; a pair must reach the threshold on both boxes",
        }

    def format_table(self) -> str:
        """The console summary: AR in percent, as papers print it."""
        lines = [f"Grounding AR — {self.method} ({METHOD_TEXT[self.method].split(';')[0]})"]
        lines.append(f"  {'metric':<10}{'%':>10}")
        labels = [("AR", "ar"), ("AR@0.5", "ar50"), ("AR@0.75", "ar75")]
        labels += [("ARs", "ar_small"), ("ARm", "ar_medium"), ("ARl", "ar_large")]
        lines += summary_rows(self.summary, labels, 10)
        lines.extend(count_lines(self.counts, self.unmatched_samples))
        lines.append(f"  profile: {self.profile}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)


def _mean(values: np.ndarray) -> float | None:
    return float(values.mean()) if values.size else None


def evaluate(pred: Answers, gt: Targets, *, method: str = "pooled") -> GroundingReport:
    """Grounding AR of parsed answers against ground truth, one answer per sample: no I/O."""
    tp = match(pred, gt, method=method)
    bucket = size_bucket(gt)
    labels = pc.binary_join_element_wise(gt.verb, pc.fill_null(gt.object_label, ""), "\x00")
    enc = labels.dictionary_encode() if len(labels) else pa.array([], pa.string()).dictionary_encode()
    cat = enc.indices.to_numpy(zero_copy_only=False).astype(np.int64)
    names = enc.dictionary.to_pylist()
    n_cat = len(names)
    # per-category recall at each threshold, (T, C); categories all have >= 1 pair by construction
    per_cat = np.stack([np.bincount(cat, weights=row, minlength=n_cat) for row in tp.astype(float)])
    cat_gt = np.bincount(cat, minlength=n_cat)
    cat_recall = per_cat / np.maximum(cat_gt, 1)

    def recall_of(mask: np.ndarray) -> np.ndarray | None:
        """Recall per threshold over the pairs in ``mask``; None when there are none."""
        if not mask.any():
            return None
        if method == "pooled":
            return tp[:, mask].mean(axis=1)
        n = np.bincount(cat[mask], minlength=n_cat)
        hit = np.stack([np.bincount(cat[mask], weights=row, minlength=n_cat) for row in tp[:, mask]])
        return (hit[:, n > 0] / n[n > 0]).mean(axis=1)

    overall = recall_of(np.ones(len(bucket), bool))
    summary: dict[str, float | None] = {
        "ar": _mean(overall) if overall is not None else None,
        "ar50": float(overall[0]) if overall is not None else None,
        "ar75": float(overall[5]) if overall is not None else None,
    }
    for k, size in enumerate(SIZES):
        r = recall_of(bucket == k)
        summary[f"ar_{size}"] = _mean(r) if r is not None else None
    categories = [
        {
            "verb": name.split("\x00")[0],
            "object": name.split("\x00")[1] or None,
            "gt_pairs": int(cat_gt[c]),
            "ar": float(cat_recall[:, c].mean()),
            "recall50": float(cat_recall[0, c]),
        }
        for c, name in enumerate(names)
    ]
    notes = []
    if (gt.counts == 0).any():
        notes.append(f"{int((gt.counts == 0).sum())} samples have no ground-truth pair: they add nothing")
    return GroundingReport(
        method=method,
        summary=summary,
        thresholds=[float(t) for t in THRESHOLDS],
        recall=[float(r) for r in overall] if overall is not None else [None] * len(THRESHOLDS),
        categories=categories,
        counts={
            "gt_pairs": len(gt.person),
            "predictions": len(pred.person),
            "empty_answers": int((pred.counts == 0).sum()),
        },
        unmatched_samples=[],
        profile="",
        notes=notes,
    )


def eval_grounding(
    completions: Path | str,
    dataset: Path | str,
    *,
    coco: bool = False,
    profile: str | None = None,
    skip_missing: bool = False,
) -> GroundingReport:
    """Read completions (JSONL/Parquet ``{sample_id, completion}``) and score them against the
    grounding samples of an SFT dataset directory."""
    prof = resolve_profile(Path(dataset), profile)
    joined = join_completions(
        completions, dataset, [GROUNDING], ["pairs", "width", "height"], skip_missing=skip_missing
    )
    targets = Targets.from_arrow(joined.table)
    answers = parse_answers(prof, joined.texts, targets.width, targets.height)
    report = evaluate(answers, targets, method="coco" if coco else "pooled")
    empty = int(((answers.counts == 0) & joined.answered).sum())
    report.counts = joined.counts | report.counts | {"empty_answers": empty}
    report.unmatched_samples = joined.unmatched_samples
    report.profile = prof.name
    if joined.counts["without_completion"] and not skip_missing:
        report.notes.append(
            f"{joined.counts['without_completion']:,} samples without a completion count as answered "
            "with nothing (their pairs are misses)"
        )
    report.sources = {"completions": str(completions), "ground_truth": str(dataset)}
    return report
