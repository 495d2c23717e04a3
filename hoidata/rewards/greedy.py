"""The greedy one-to-one matching behind accuracy.

Semantics are :func:`hoidata.rewards.reference.pair_f1_loop`'s: in answer order, each predicted
pair takes the free ground-truth pair it overlaps best (the first on ties), if that overlap (the
smaller of the person and object IoUs) reaches the threshold. Labels arrive as integer codes shared
by both sides (-1: not written). Boxes are finite canonical pixels; NaN object rows mean no object.

A batch of the size generation scores per shard or GRPO per step is matched with array passes
over its candidate edges; a batch of hundreds of thousands of pairs by a compiled pass
(:mod:`hoidata.rewards.greedy_compiled`), which is several times faster there but costs a process
about 0.4 s to start (numba).
"""

from __future__ import annotations

import sys
from typing import NamedTuple

import numpy as np

from hoidata.schemas.boxes import iou

# the compiled pass saves about 0.15 µs a ground-truth pair, against 0.4 s to start numba
COMPILED_MIN_PAIRS = 1_000_000


class PairArrays(NamedTuple):
    """One side's pairs, completion by completion: ``offsets`` (C+1), canonical ``person`` and
    ``object`` boxes (P, 4; NaN object rows: no object) and label ``codes`` (P, 2: verb, object)."""

    offsets: np.ndarray
    person: np.ndarray
    object: np.ndarray
    codes: np.ndarray


def greedy_matches(
    pred: PairArrays,
    gt: PairArrays,
    *,
    labels: bool,
    iou_threshold: float,
    max_ranked: int,
    compiled: bool | None = None,
) -> np.ndarray:
    """True positives per completion. ``compiled``: whether to use the compiled pass (default: when
    numba is running already, or the batch is big)."""
    if compiled is None:
        compiled = "numba" in sys.modules or len(gt.person) >= COMPILED_MIN_PAIRS
    if compiled:
        from hoidata.rewards.greedy_compiled import compiled_matches

        return compiled_matches(pred, gt, labels=labels, iou_threshold=iou_threshold, max_ranked=max_ranked)
    return _array_matches(pred, gt, labels=labels, iou_threshold=float(iou_threshold), max_ranked=max_ranked)


def _array_matches(
    pred: PairArrays, gt: PairArrays, *, labels: bool, iou_threshold: float, max_ranked: int
) -> np.ndarray:
    """The matching over every candidate edge (a ranked prediction and a ground-truth pair of the
    same completion that may match), taken in priority order by :func:`accept_in_order`."""
    pred_offsets, gt_offsets = np.asarray(pred.offsets, np.int64), np.asarray(gt.offsets, np.int64)
    n = len(gt_offsets) - 1
    counts = np.diff(pred_offsets)
    owner = np.repeat(np.arange(n), counts)  # the completion of each prediction
    rank = np.arange(len(owner)) - np.repeat(pred_offsets[:-1], counts)
    p = np.flatnonzero(rank < max_ranked)
    per_pred = np.diff(gt_offsets)[owner[p]]
    first_edge = np.repeat(np.cumsum(per_pred) - per_pred, per_pred)
    g = np.repeat(gt_offsets[owner[p]], per_pred) + np.arange(int(per_pred.sum())) - first_edge
    p = np.repeat(p, per_pred)
    pred_object = np.asarray(pred.object, np.float64).reshape(-1, 4)
    gt_object = np.asarray(gt.object, np.float64).reshape(-1, 4)
    has = ~np.isnan(gt_object[g, 0])
    ok = np.isnan(pred_object[p, 0]) != has  # object presence agrees
    if labels:
        pc, gc = np.asarray(pred.codes).reshape(-1, 2), np.asarray(gt.codes).reshape(-1, 2)
        ok &= (pc[p, 0] >= 0) & (pc[p, 0] == gc[g, 0]) & (pc[p, 1] == gc[g, 1])
    p, g, has = p[ok], g[ok], has[ok]
    overlap = iou(np.asarray(pred.person).reshape(-1, 4)[p], np.asarray(gt.person).reshape(-1, 4)[g])
    if has.any():
        overlap[has] = np.minimum(overlap[has], iou(pred_object[p[has]], gt_object[g[has]]))
    keep = overlap >= iou_threshold
    p, g, overlap = p[keep], g[keep], overlap[keep]
    order = np.lexsort((g, -overlap, p))  # answer order; each prediction's best pair first, then the first
    won = p[order][accept_in_order(p[order], g[order])]
    return np.bincount(owner[won], minlength=n).astype(np.int64)


def accept_in_order(pred_node: np.ndarray, gt_node: np.ndarray) -> np.ndarray:
    """Indices of the edges a greedy one-to-one matching accepts, edges given in priority order.

    Each round accepts every edge that comes first among the remaining edges of both its nodes;
    the best remaining edge always qualifies, and these are exactly the edges the sequential greedy
    would accept, so the result is the same.
    """
    accepted = []
    alive = np.arange(len(pred_node))
    taken_p = np.zeros(int(pred_node.max(initial=-1)) + 1, bool)
    taken_g = np.zeros(int(gt_node.max(initial=-1)) + 1, bool)
    while len(alive):
        ap, ag = pred_node[alive], gt_node[alive]
        first_p = np.zeros(len(alive), bool)
        first_p[np.unique(ap, return_index=True)[1]] = True
        first_g = np.zeros(len(alive), bool)
        first_g[np.unique(ag, return_index=True)[1]] = True
        win = first_p & first_g
        accepted.append(alive[win])
        taken_p[ap[win]] = True
        taken_g[ag[win]] = True
        alive = alive[~(taken_p[ap] | taken_g[ag])]
    return np.concatenate(accepted) if accepted else np.zeros(0, np.int64)
