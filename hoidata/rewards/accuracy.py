"""Accuracy: how many ground-truth interactions an answer gets right, as an F1 score.

A predicted pair matches a ground-truth pair when the person boxes and the object boxes both reach
IoU >= 0.5 (pairs without an object match only pairs without an object) and, for detection, the
verb and the object label are the same. Each ground-truth pair is matched once, greedily in the
order the answer lists its pairs, to the free pair it overlaps best. F1 = 2·TP / (P + G): extra pairs
and missing pairs both cost, so listing every verb or repeating a pair does not pay. Verb answers
(referring, spatial, chain-of-focus) score the F1 of the distinct verbs named.

Labels become integer codes for the whole batch at once (Arrow dictionary encoding); the greedy
matching itself is one compiled pass (:mod:`hoidata.rewards.greedy`).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.profiles.answers import Answers
from hoidata.rewards.greedy import PairArrays, greedy_matches
from hoidata.rewards.targets import Targets

IOU_THRESHOLD = 0.5
Labels = pa.Array | pa.ChunkedArray | Sequence[str | None]
MAX_MATCHED_PER_ANSWER = 256  # further pairs still count as predictions, but are not matched


def pair_f1(
    pred: Answers, gt: Targets, *, labels: bool = True, iou_threshold: float = IOU_THRESHOLD
) -> np.ndarray:
    """Per completion, F1 of predicted pairs against ground-truth pairs (1.0 when both are empty)."""
    tp = matched_pairs(pred, gt, labels=labels, iou_threshold=iou_threshold)
    return f1(tp, pred.counts, gt.counts)


def matched_pairs(
    pred: Answers, gt: Targets, *, labels: bool = True, iou_threshold: float = IOU_THRESHOLD
) -> np.ndarray:
    """True positives per completion under one-to-one greedy matching."""
    n = len(gt)
    if len(pred) != n:
        raise ValueError(f"{len(pred)} answers for {n} targets")
    if labels:
        pv, gv = _codes(pred.verb, gt.verb)
        po, go = _codes(pred.object_label, gt.object_label)
    else:
        pv, po = np.zeros(len(pred.person), np.int64), np.zeros(len(pred.person), np.int64)
        gv, go = np.zeros(len(gt.person), np.int64), np.zeros(len(gt.person), np.int64)
    return greedy_matches(
        PairArrays(pred.offsets, pred.person, pred.object, np.stack([pv, po], axis=1)),
        PairArrays(gt.offsets, gt.person, gt.object, np.stack([gv, go], axis=1)),
        labels=labels,
        iou_threshold=iou_threshold,
        max_ranked=MAX_MATCHED_PER_ANSWER,
    )


def verb_f1(pred_offsets: np.ndarray, pred_verbs: Labels, gt: Targets) -> np.ndarray:
    """Per completion, F1 of the distinct verbs named against the distinct ground-truth verbs."""
    n = len(gt)
    pv, gv = _codes(pred_verbs, gt.verb)
    vocab = int(max(pv.max(initial=-1), gv.max(initial=-1))) + 1
    pred_keys = np.unique(np.repeat(np.arange(n), np.diff(pred_offsets)) * vocab + pv)
    gt_keys = np.unique(gt.owner * vocab + gv)
    both = np.intersect1d(pred_keys, gt_keys, assume_unique=True)
    tp = np.bincount(both // max(vocab, 1), minlength=n)
    return f1(
        tp,
        np.bincount(pred_keys // max(vocab, 1), minlength=n),
        np.bincount(gt_keys // max(vocab, 1), minlength=n),
    )


def f1(tp: np.ndarray, n_pred: np.ndarray, n_gt: np.ndarray) -> np.ndarray:
    total = n_pred + n_gt
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, 2.0 * tp / total, 1.0)


def _codes(pred: Labels, gt: Labels) -> tuple[np.ndarray, np.ndarray]:
    """Shared integer codes for two label columns; null → -1 (and -1 never equals a real label)."""
    both = pa.concat_arrays([_strings(pred), _strings(gt)]).dictionary_encode()
    codes = pc.fill_null(both.indices, -1).to_numpy(zero_copy_only=False).astype(np.int64)
    return codes[: len(pred)], codes[len(pred) :]


def _strings(labels: Labels) -> pa.Array:
    if isinstance(labels, pa.ChunkedArray):
        labels = labels.combine_chunks()
    return labels.cast(pa.string()) if isinstance(labels, pa.Array) else pa.array(labels, pa.string())
