"""HICO-DET mAP, vectorised, faithful to the official MATLAB protocol by default.

The official code (ho-rcnn ``eval_one.m`` + ``VOCevaldet_bboxpair.m``) loops over detections. Here
the same decisions are taken for all detections at once:

1. detections are sorted by (class, descending score, input order) — MATLAB's ``sort`` is stable;
2. each detection is paired with every GT pair of its image and class (one sorted search); the
   first pair reaching the highest ``min(IoU_h, IoU_o)`` is its candidate (MATLAB's ``if ov > ov_max``
   keeps the first maximum), whether that pair is already matched or not;
3. a candidate at or above 0.5 is a TP for the first detection (in sorted order) that names it and an
   FP for every later one — a duplicate never falls back to its second-best pair;
4. precision/recall come from per-class cumulative sums; the 11-point AP reads suffix maxima of
   precision at MATLAB's thresholds and sums ``p / 11`` in the same order as the MATLAB loop.

Boxes are canonical (0-based continuous); they are turned back into 1-based inclusive pixels with
:func:`hoidata.schemas.boxes.to_inclusive` and compared with the ``+1`` width rule, exactly the
arithmetic of the official code (``eval_one.m`` shifts 0-based detections by +1 the same way).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hoidata.errors import HoidataError
from hoidata.eval.groundtruth import GroundTruth, load_ground_truth
from hoidata.eval.hico_report import HicoReport, summarise
from hoidata.eval.predictions import Detections, detections, read_predictions, table_columns
from hoidata.eval.protocol import THRESHOLDS, HicoProtocol, get_protocol
from hoidata.eval.result_files import ppdm_predictions, read_ppdm_columns
from hoidata.schemas.boxes import BoxOrigin, to_inclusive
from hoidata.schemas.taxonomy import ZERO_SHOT_SPLITS, Taxonomy, hico_det

SETTINGS = ("default", "known-object")
PREDICTION_FORMATS = ("hoidata", "ppdm")  # a predict directory or Parquet file; a PPDM/QPIC result JSON


def pair_overlap(a: np.ndarray, b: np.ndarray, plus_one: bool = True) -> np.ndarray:
    """Row-wise IoU of two (N, 4) arrays of 1-based inclusive boxes, as ``VOCevaldet_bboxpair.m``
    computes it (``plus_one=False``: widths ``x2 - x1``, as the Python ports do on the same values)."""
    one = 1.0 if plus_one else 0.0
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]) + one
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]) + one
    ok = (iw > 0) & (ih > 0)
    area_a = (a[:, 2] - a[:, 0] + one) * (a[:, 3] - a[:, 1] + one)
    area_b = (b[:, 2] - b[:, 0] + one) * (b[:, 3] - b[:, 1] + one)
    with np.errstate(divide="ignore", invalid="ignore"):
        ov = (iw * ih) / (area_a + area_b - iw * ih)
    return np.where(ok, ov, 0.0)


def continuous_overlap(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise IoU of two (N, 4) arrays of canonical (continuous) boxes, as the SWIG-HOI evaluators
    compute it: no ``+1``, negative widths and heights clamped to 0, IoU 0 without intersection."""
    iw = np.maximum(np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0]), 0.0)
    ih = np.maximum(np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1]), 0.0)
    inter = iw * ih
    area_a = np.maximum(a[:, 2] - a[:, 0], 0.0) * np.maximum(a[:, 3] - a[:, 1], 0.0)
    area_b = np.maximum(b[:, 2] - b[:, 0], 0.0) * np.maximum(b[:, 3] - b[:, 1], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ov = inter / (area_a + area_b - inter)
    return np.where(inter > 0, ov, 0.0)


def _overlaps(a: np.ndarray, b: np.ndarray, protocol: HicoProtocol) -> np.ndarray:
    """IoU of canonical boxes in the protocol's frame: 1-based inclusive pixels, or continuous."""
    if protocol.iou_frame == "continuous":
        return continuous_overlap(a, b)
    return pair_overlap(to_inclusive(a), to_inclusive(b), protocol.plus_one)


def _object_overlap(a: np.ndarray, b: np.ndarray, protocol: HicoProtocol) -> np.ndarray:
    """Object IoU; an object-less detection matches an object-less GT pair (1) and nothing else (0)."""
    ov = _overlaps(a, b, protocol)
    none_a, none_b = np.isnan(a[:, 0]), np.isnan(b[:, 0])
    return np.where(none_a & none_b, 1.0, np.where(none_a | none_b, 0.0, ov))


@dataclass
class Matching:
    """Per-detection outcome, in evaluation order (class, descending score, input order)."""

    hoi: np.ndarray  # (D,) class of each evaluated detection
    tp: np.ndarray  # (D,) bool
    npos: np.ndarray  # (C,) GT pairs per class
    dropped: dict[str, int]  # detections the protocol/setting set aside, by reason


def match(
    gt: GroundTruth, dets: Detections, protocol: HicoProtocol, taxonomy: Taxonomy, setting: str = "default"
) -> Matching:
    """Decide TP/FP for every detection (steps 1–3 of the module docstring)."""
    if setting not in SETTINGS:
        raise HoidataError(f"unknown setting {setting!r}; expected {' or '.join(SETTINGS)}")
    n_cls = taxonomy.num_hois
    npos = np.bincount(gt.hoi, minlength=n_cls).astype(np.int64)
    idx = np.arange(len(dets))
    dropped: dict[str, int] = {}

    def drop(mask: np.ndarray, reason: str) -> None:
        nonlocal idx
        if (~mask).any():
            dropped[reason] = int((~mask).sum())
        idx = idx[mask]

    if protocol.top_k_per_image is not None and len(idx):
        order = np.lexsort((idx, -dets.score[idx], dets.image[idx]))
        img = dets.image[idx][order]
        rank = np.arange(len(order)) - np.searchsorted(img, img, side="left")
        keep = np.zeros(len(idx), dtype=bool)
        if protocol.top_k_keep_ties:  # every score at least the image's k-th best (torch.topk's cut)
            score = dets.score[idx][order]
            kth = np.full(gt.num_images, -np.inf)
            at_k = rank == protocol.top_k_per_image - 1
            kth[img[at_k]] = score[at_k]
            keep[order[score >= kth[img]]] = True
        else:
            keep[order[rank < protocol.top_k_per_image]] = True
        drop(keep, f"beyond the top {protocol.top_k_per_image} of their image")
    if protocol.skip_images_without_gt:
        has_gt = np.bincount(gt.image, minlength=gt.num_images) > 0
        drop(has_gt[dets.image[idx]], "in images without any ground-truth pair")
    if setting == "known-object":
        present = np.zeros((gt.num_images, len(taxonomy.objects)), dtype=bool)
        present[gt.image, taxonomy.hoi_object[gt.hoi]] = True
        drop(
            present[dets.image[idx], taxonomy.hoi_object[dets.hoi[idx]]],
            "known-object: the class's object has no ground-truth pair in the image",
        )
    # 1. evaluation order: class, descending score, input order (idx is increasing = input order);
    # reversed ties (SWIG-HOI's ``argsort(scores)[::-1]``): the same sorts on the reversed input
    if protocol.ties == "reversed":
        idx = idx[::-1]
    idx = idx[np.argsort(-dets.score[idx], kind="stable")]  # two stable sorts = one lexsort, faster
    idx = idx[np.argsort(dets.hoi[idx].astype(np.int16), kind="stable")]  # (radix sort)
    hoi = dets.hoi[idx]
    if protocol.max_per_class is not None and len(idx):
        rank = np.arange(len(idx)) - np.searchsorted(hoi, hoi, side="left")
        drop(rank < protocol.max_per_class, f"beyond the best {protocol.max_per_class} of their class")
        hoi = dets.hoi[idx]

    # 2. candidates: every GT pair of the same image and class
    gkey = gt.image * n_cls + gt.hoi
    gorder = np.argsort(gkey, kind="stable")
    dkey = dets.image[idx] * n_cls + hoi
    lo, cnt = _ranges(gkey[gorder], dkey, gt.num_images * n_cls)
    seg = np.cumsum(cnt) - cnt
    rep = np.repeat(np.arange(len(idx)), cnt)
    local = np.arange(int(cnt.sum())) - seg[rep]
    g = gorder[lo[rep] + local]
    d = idx[rep]
    # float32 boxes as stored, in float64 from here on: the overlaps are computed as the official code does
    ov_h = _overlaps(dets.human[d].astype(np.float64), gt.human[g], protocol)
    ov_o = _object_overlap(dets.obj[d].astype(np.float64), gt.obj[g], protocol)
    if protocol.label_aware:
        named = dets.object_label[d]
        ov_o = np.where((named >= 0) & (named != taxonomy.hoi_object[hoi[rep]]), 0.0, ov_o)
    ov = np.minimum(ov_h, ov_o)
    ov_max = np.full(len(idx), -np.inf)
    j_max = np.full(len(idx), -1, dtype=np.int64)
    has = np.flatnonzero(cnt > 0)
    if len(has):
        ov_max[has] = np.maximum.reduceat(ov, seg[has])
        first = np.minimum.reduceat(np.where(ov == ov_max[rep], local, np.iinfo(np.int64).max), seg[has])
        j_max[has] = gorder[lo[has] + first]

    # 3. the first detection naming a pair takes it; later ones are FPs (no fall-back)
    passed = ov_max > protocol.min_overlap if protocol.strict else ov_max >= protocol.min_overlap
    cand = np.flatnonzero(passed)
    tp = np.zeros(len(idx), dtype=bool)
    if len(cand):
        _, first_hit = np.unique(j_max[cand], return_index=True)
        tp[cand[first_hit]] = True
    return Matching(hoi=hoi, tp=tp, npos=npos, dropped=dropped)


def _ranges(sorted_keys: np.ndarray, queries: np.ndarray, key_space: int) -> tuple[np.ndarray, np.ndarray]:
    """Start and length of each query's run in ``sorted_keys``: a dense table when the key space is
    small (HICO-DET: 9,658 × 600), else a binary search."""
    if key_space <= 32_000_000:  # int32, written only where a key is: the largest table evaluation makes
        keys, starts, counts = np.unique(sorted_keys, return_index=True, return_counts=True)
        first, count = np.zeros(key_space, np.int32), np.zeros(key_space, np.int32)
        first[keys], count[keys] = starts, counts
        return first[queries].astype(np.int64), count[queries].astype(np.int64)
    lo = np.searchsorted(sorted_keys, queries, side="left")
    return lo, np.searchsorted(sorted_keys, queries, side="right") - lo


def average_precision(
    m: Matching, num_classes: int, thresholds: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-class 11-point AP, final recall and detection count (step 4 of the module docstring)."""
    nd = np.bincount(m.hoi, minlength=num_classes).astype(np.int64)
    start = np.concatenate([[0], np.cumsum(nd)[:-1]])
    tp_all = np.concatenate([[0], np.cumsum(m.tp, dtype=np.int64)])
    pos = np.arange(len(m.hoi))
    tp = (tp_all[1:] - tp_all[start[m.hoi]]).astype(np.float64)
    n_seen = (pos - start[m.hoi] + 1).astype(np.float64)  # tp + fp so far in the class
    fp = n_seen - tp
    with np.errstate(divide="ignore", invalid="ignore"):
        rec = tp / m.npos[m.hoi].astype(np.float64)  # npos 0: NaN, never >= t, so AP 0 as in MATLAB
    prec = tp / (fp + tp)
    ap = np.zeros(num_classes)
    final_rec = np.zeros(num_classes)
    cls = np.flatnonzero(nd > 0)
    if not len(cls):
        return ap, final_rec, nd
    end = start[cls] + nd[cls]
    final_rec[cls] = np.nan_to_num(rec[end - 1], nan=0.0)
    padded = np.concatenate([prec, [-np.inf]])
    p = np.zeros((len(cls), len(thresholds)))
    for k, t in enumerate(thresholds):
        below = np.add.reduceat((~(rec >= t)).astype(np.int64), start[cls])
        first = start[cls] + below  # rec is non-decreasing in a class: rec >= t is a suffix
        bounds = np.empty(2 * len(cls), dtype=np.int64)
        bounds[0::2], bounds[1::2] = first, end
        best = np.maximum.reduceat(padded, bounds)[0::2]
        p[:, k] = np.where(first < end, best, 0.0)
    ap[cls] = np.cumsum(p / 11, axis=1)[:, -1]  # ap = ap + p/11, in threshold order
    return ap, final_rec, nd


def outcome(
    gt: GroundTruth, dets: Detections, m: Matching, num_classes: int, thresholds: np.ndarray
) -> dict[str, Any]:
    """What an mAP report holds of one matching, as its keyword arguments: per-class AP, recall,
    npos, detections and true positives, the counts, and what was set aside."""
    ap, rec, nd = average_precision(m, num_classes, thresholds)
    return {
        "ap": ap,
        "recall": rec,
        "npos": m.npos,
        "num_detections": nd,
        "num_tp": np.bincount(m.hoi[m.tp], minlength=num_classes),
        "ranking": dets.ranking,
        "counts": {
            "images": gt.num_images,
            "gt_pairs": len(gt.hoi),
            "predictions": len(dets) + sum(dets.invalid.values()),
            "evaluated": len(m.hoi),
        },
        "invalid": dets.invalid,
        "dropped": m.dropped,
        "unmatched_samples": dets.unmatched_samples,
    }


def evaluate(
    gt: GroundTruth,
    dets: Detections,
    protocol: HicoProtocol | str = "official",
    setting: str = "default",
    zero_shot: str | None = None,
    taxonomy: Taxonomy | None = None,
) -> HicoReport:
    """HICO-DET mAP of detections against ground truth: the whole computation, no I/O."""
    tax = taxonomy or hico_det()
    proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    if zero_shot is not None and zero_shot not in ZERO_SHOT_SPLITS:
        raise HoidataError(f"unknown zero-shot split {zero_shot!r}; expected {', '.join(ZERO_SHOT_SPLITS)}")
    m = match(gt, dets, proto, tax, setting)
    return summarise(
        **outcome(gt, dets, m, tax.num_hois, THRESHOLDS[proto.thresholds]),
        protocol=proto,
        setting=setting,
        zero_shot=zero_shot,
        taxonomy=tax,
    )


def eval_hico(
    predictions: Path | str,
    gt_dir: Path | str,
    *,
    variant: str = "official",
    setting: str = "default",
    zero_shot: str | None = None,
    ranking: str = "score",
    format: str = "auto",
    box_origin: BoxOrigin | str = BoxOrigin.ONE_BASED,
    ids: str = "coco91",
) -> HicoReport:
    """Read predictions (hoidata Parquet / dataset directory, or PPDM/QPIC result JSON) and score
    them against a converted HICO-DET dataset directory. ``box_origin`` and ``ids`` concern the
    PPDM format only."""
    tax = hico_det()
    protocol = get_protocol(variant)
    path = Path(predictions)
    if format == "auto":
        format = "ppdm" if path.suffix.lower() == ".json" else "hoidata"
    gt = load_ground_truth(gt_dir, tax)
    if format == "ppdm":
        cols = read_ppdm_columns(path, box_origin)
        pred, _ = ppdm_predictions(cols, tax, gt.file_to_sample(), gt.sample_ids, ids, str(path))
        del cols  # the columns' memory goes before the matching's comes
        if not protocol.label_aware:
            pred.object_label[:] = -1
    elif format == "hoidata":
        pred = table_columns(read_predictions(path), tax, object_labels=protocol.label_aware)
    else:
        raise HoidataError(f"unknown predictions format {format!r}; expected auto, hoidata or ppdm")
    dets = detections(pred, gt.sample_index(), tax, ranking)
    n_rows = len(pred.sample_ids)
    del pred
    if n_rows and len(dets.unmatched_samples) == n_rows:
        raise HoidataError(
            f"none of the {n_rows} predicted images is in the ground truth "
            f"(first sample_id: {dets.unmatched_samples[0]!r}; ground truth has e.g. {gt.sample_ids[0]!r})",
            file=str(path),
        )
    report = evaluate(gt, dets, protocol, setting, zero_shot, tax)
    report.sources = {"predictions": str(path), "format": format, "ground_truth": str(gt_dir)}
    if format == "ppdm":
        report.sources |= {"box_origin": str(BoxOrigin(box_origin)), "ids": ids}
    return report
