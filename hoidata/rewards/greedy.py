"""The greedy one-to-one matching behind accuracy, compiled: one pass over each completion's pairs.

Semantics are :func:`hoidata.rewards.reference.pair_f1_loop`'s: in answer order, each predicted
pair takes the free ground-truth pair it overlaps best (the first on ties), if that overlap (the
smaller of the person and object IoUs) reaches the threshold. Labels arrive as integer codes shared
by both sides (-1: not written). Boxes are finite canonical pixels; NaN object rows mean no object.
"""

from __future__ import annotations

import numpy as np
from numba import njit


def greedy_matches(
    pred_offsets: np.ndarray,
    pred_boxes: np.ndarray,
    pred_codes: np.ndarray,
    gt_offsets: np.ndarray,
    gt_boxes: np.ndarray,
    gt_codes: np.ndarray,
    *,
    labels: bool,
    iou_threshold: float,
    max_ranked: int,
) -> np.ndarray:
    """True positives per completion. Boxes are (N, 8) person then object; codes (N, 2) verb, object."""
    return _match(
        pred_offsets.astype(np.int64),
        np.ascontiguousarray(pred_boxes, np.float64),
        np.ascontiguousarray(pred_codes, np.int64),
        gt_offsets.astype(np.int64),
        np.ascontiguousarray(gt_boxes, np.float64),
        np.ascontiguousarray(gt_codes, np.int64),
        labels,
        float(iou_threshold),
        int(max_ranked),
    )


@njit(cache=True)
def _iou(a, b, at):
    """IoU of ``a[at:at+4]`` and ``b[at:at+4]``, with :func:`hoidata.schemas.boxes.iou`'s arithmetic."""
    iw = max(min(a[at + 2], b[at + 2]) - max(a[at], b[at]), 0.0)
    ih = max(min(a[at + 3], b[at + 3]) - max(a[at + 1], b[at + 1]), 0.0)
    inter = iw * ih
    area_a = max(a[at + 2] - a[at], 0.0) * max(a[at + 3] - a[at + 1], 0.0)
    area_b = max(b[at + 2] - b[at], 0.0) * max(b[at + 3] - b[at + 1], 0.0)
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


@njit(cache=True)
def _match(po, pb, pc, go, gb, gc, labels, threshold, max_ranked):
    n = len(go) - 1
    tp = np.zeros(n, np.int64)
    taken = np.zeros(len(gb), np.bool_)
    for i in range(n):
        for p in range(po[i], min(po[i + 1], po[i] + max_ranked)):
            has = not np.isnan(pb[p, 4])
            if labels and pc[p, 0] < 0:
                continue
            best, best_score = -1, -1.0
            for g in range(go[i], go[i + 1]):
                if taken[g] or has == np.isnan(gb[g, 4]):
                    continue
                if labels and (pc[p, 0] != gc[g, 0] or pc[p, 1] != gc[g, 1]):
                    continue
                score = _iou(pb[p], gb[g], 0)
                if has:
                    score = min(score, _iou(pb[p], gb[g], 4))
                if score >= threshold and score > best_score:
                    best, best_score = g, score
            if best >= 0:
                taken[best] = True
                tp[i] += 1
    return tp
