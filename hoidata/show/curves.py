"""Precision-recall curves of chosen HICO-DET classes, recomputed from the files a report names.

A report stores per-class AP, recall and counts, not the curves; its ``sources`` name the
predictions and ground truth, so the curves come from the same matching (``hoidata.eval.hico``)
run again with the report's variant, setting and ranking.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from hoidata.errors import HoidataError
from hoidata.eval.groundtruth import load_ground_truth
from hoidata.eval.hico import match
from hoidata.eval.predictions import RANKING_RULES, read_predictions, to_detections
from hoidata.eval.protocol import get_protocol
from hoidata.schemas.taxonomy import hico_det

DEFAULT_COUNT = 6  # classes drawn when none are chosen: those with the most ground-truth pairs


def chosen_classes(classes: list[dict[str, Any]], wanted: list[str]) -> list[int]:
    """Class ids by name or id (``"ride bicycle"``, ``"ride_bicycle"``, ``"88"``), else the classes
    with the most ground-truth pairs that have detections."""
    if wanted:
        by_name = {c["name"].replace("_", " ").lower(): c["hoi_id"] for c in classes}
        ids = []
        for w in wanted:
            key = w.replace("_", " ").strip().lower()
            if key.isdigit():
                ids.append(int(key))
            elif key in by_name:
                ids.append(by_name[key])
            else:
                raise HoidataError(f"--pr-class {w!r}: no such class in the report")
        return ids
    ranked = sorted((c for c in classes if c.get("npos") and c.get("detections")), key=lambda c: -c["npos"])
    return [c["hoi_id"] for c in ranked[:DEFAULT_COUNT]]


def hico_curves(report: dict[str, Any], ids: list[int]) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """(recall, precision) after each detection of every class in ``ids``; raises HoidataError
    when the report's sources cannot be read again."""
    sources = report.get("sources") or {}
    if sources.get("format") != "hoidata":
        raise HoidataError(
            "curves are recomputed for hoidata predictions only (the report names another format)"
        )
    for key in ("predictions", "ground_truth"):
        if not sources.get(key) or not Path(sources[key]).exists():
            raise HoidataError(f"the report's {key} ({sources.get(key)}) is not here to recompute the curves")
    taxonomy = hico_det()
    protocol = get_protocol(report.get("variant") or "official")
    gt = load_ground_truth(sources["ground_truth"], taxonomy)
    ranking = str(report.get("ranking") or "score").split(":")[0]
    ranking = ranking if ranking in RANKING_RULES else "score"
    dets = to_detections(
        read_predictions(sources["predictions"]),
        gt.sample_index(),
        taxonomy,
        ranking,
        object_labels=protocol.label_aware,
    )
    m = match(gt, dets, protocol, taxonomy, report.get("setting") or "default")
    curves = {}
    for hoi in ids:
        tp = m.tp[m.hoi == hoi]
        if not len(tp) or not m.npos[hoi]:
            continue
        hits = np.cumsum(tp)
        curves[hoi] = (hits / m.npos[hoi], hits / np.arange(1, len(tp) + 1))
    return curves
