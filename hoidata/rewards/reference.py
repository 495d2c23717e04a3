"""Accuracy written the obvious way: one completion at a time, one pair at a time.

Kept as the oracle that the vectorised :mod:`hoidata.rewards.accuracy` is tested against, and as
the baseline its benchmark measures. Not used on any hot path.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hoidata.profiles import Profile
from hoidata.profiles.answers import parse_verbs
from hoidata.rewards.accuracy import IOU_THRESHOLD, MAX_MATCHED_PER_ANSWER


def box_iou(a: Sequence[float], b: Sequence[float]) -> float:
    iw = min(a[2], b[2]) - max(a[0], b[0])
    ih = min(a[3], b[3]) - max(a[1], b[1])
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    union = (
        max(0.0, a[2] - a[0]) * max(0.0, a[3] - a[1]) + max(0.0, b[2] - b[0]) * max(0.0, b[3] - b[1]) - inter
    )
    return inter / union if union > 0 else 0.0


def pair_f1_loop(
    profile: Profile,
    text: str,
    pairs: Sequence[dict[str, Any]],
    width: float,
    height: float,
    *,
    labels: bool = True,
    iou_threshold: float = IOU_THRESHOLD,
) -> float:
    predicted = profile.parse_pairs(text, width, height)
    taken = [False] * len(pairs)
    tp = 0
    for pred in predicted[:MAX_MATCHED_PER_ANSWER]:
        best, best_score = -1, -1.0
        for j, gt in enumerate(pairs):
            if taken[j] or (pred.object_box is None) != (gt["object_bbox"] is None):
                continue
            if labels and (pred.verb is None or pred.verb != gt["verb"] or pred.object != gt["object"]):
                continue
            s = box_iou(pred.person_box, gt["person_bbox"])
            if gt["object_bbox"] is not None:
                s = min(s, box_iou(pred.object_box, gt["object_bbox"]))
            if s >= iou_threshold and s > best_score:
                best, best_score = j, s
        if best >= 0:
            taken[best] = True
            tp += 1
    total = len(predicted) + len(pairs)
    return 2 * tp / total if total else 1.0


def verb_f1_loop(text: str, pairs: Sequence[dict[str, Any]]) -> float:
    _, verbs = parse_verbs([text])
    named, truth = set(verbs), {p["verb"] for p in pairs}
    total = len(named) + len(truth)
    return 2 * len(named & truth) / total if total else 1.0
