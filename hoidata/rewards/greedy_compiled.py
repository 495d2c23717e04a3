"""The greedy matching of :mod:`hoidata.rewards.greedy`, compiled: one pass over each completion's
pairs, for batches big enough to pay for starting numba."""

from __future__ import annotations

import numpy as np
from numba import njit

from hoidata.jit import start_numba
from hoidata.rewards.greedy import PairArrays


def compiled_matches(
    pred: PairArrays, gt: PairArrays, *, labels: bool, iou_threshold: float, max_ranked: int
) -> np.ndarray:
    """True positives per completion (:func:`hoidata.rewards.greedy.greedy_matches`)."""

    def boxes(b: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(b, np.float64).reshape(-1, 4)

    def side(s: PairArrays) -> tuple[np.ndarray, ...]:
        codes = np.ascontiguousarray(s.codes, np.int64)
        return np.asarray(s.offsets).astype(np.int64), boxes(s.person), boxes(s.object), codes

    start_numba()
    return _match(*side(pred), *side(gt), labels, float(iou_threshold), int(max_ranked))


@njit(cache=True)
def _iou(a, b):
    """IoU of two boxes, with :func:`hoidata.schemas.boxes.iou`'s arithmetic."""
    iw = max(min(a[2], b[2]) - max(a[0], b[0]), 0.0)
    ih = max(min(a[3], b[3]) - max(a[1], b[1]), 0.0)
    inter = iw * ih
    area_a = max(a[2] - a[0], 0.0) * max(a[3] - a[1], 0.0)
    area_b = max(b[2] - b[0], 0.0) * max(b[3] - b[1], 0.0)
    union = area_a + area_b - inter
    return inter / union if union > 0 else 0.0


@njit(cache=True)
def _match(po, pp, pob, pc, go, gp, gob, gc, labels, threshold, max_ranked):
    n = len(go) - 1
    tp = np.zeros(n, np.int64)
    taken = np.zeros(len(gp), np.bool_)
    for i in range(n):
        for p in range(po[i], min(po[i + 1], po[i] + max_ranked)):
            has = not np.isnan(pob[p, 0])
            if labels and pc[p, 0] < 0:
                continue
            best, best_score = -1, -1.0
            for g in range(go[i], go[i + 1]):
                if taken[g] or has == np.isnan(gob[g, 0]):
                    continue
                if labels and (pc[p, 0] != gc[g, 0] or pc[p, 1] != gc[g, 1]):
                    continue
                score = _iou(pp[p], gp[g])
                if has:
                    score = min(score, _iou(pob[p], gob[g]))
                if score >= threshold and score > best_score:
                    best, best_score = g, score
            if best >= 0:
                taken[best] = True
                tp[i] += 1
    return tp
