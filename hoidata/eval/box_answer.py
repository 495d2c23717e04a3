"""Box-then-answer evaluation: how well the model names the region its question needs, and answers.

Read from a ``gen-prefs`` run made greedy and single (``--boxes 1 --answers 1 --box-temperature 0
--answer-temperature 0``): the first box's IoU with the warm-up data's target region (the asked-about
pair's union), the share at IoU ≥ 0.5, and the answer's accuracy as the run's judge scored it. Run
it before and after DPO to measure the gain.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hoidata.errors import HoidataError
from hoidata.eval.report import Report, percent
from hoidata.io import read_manifest, read_table


@dataclass
class BoxAnswerReport(Report):
    questions: int
    mean_iou: float
    iou_50: float  # share of questions whose first box has IoU >= 0.5 with the target
    answer_accuracy: float
    unreadable_boxes: int  # first box turns that named no box (IoU 0, accuracy 0)
    sources: dict[str, str] = field(default_factory=dict)

    def describe(self) -> dict[str, Any]:
        return {"metric": "box-then-answer", "box": "first candidate vs the target region"}

    def format_table(self) -> str:
        return "\n".join(
            [
                "Box-then-answer — first box vs the target region, then the answer",
                f"  {'mean IoU %':<16}{percent(self.mean_iou)}",
                f"  {'IoU >= 0.5 %':<16}{percent(self.iou_50)}",
                f"  {'answer acc %':<16}{percent(self.answer_accuracy)}",
                f"  {self.questions:,} questions; {self.unreadable_boxes:,} box turns named no box",
            ]
        )


def eval_box_answer(run: Path | str) -> BoxAnswerReport:
    manifest = read_manifest(run)
    if manifest.stage != "gen-prefs":
        raise HoidataError("expected a gen-prefs run (--boxes 1 --answers 1, greedy)", file=str(run))
    if manifest.counts.get("failed"):
        raise HoidataError(
            f"{manifest.counts['failed']:,} questions failed in the engine: rerun the same gen-prefs "
            "command to retry them, then evaluate (a failed question is neither right nor wrong)",
            file=str(run),
        )
    rows = read_table(run, ["target", "candidates"]).to_pylist()
    ious, accuracy, unreadable = [], [], 0
    for r in rows:
        first = next((c for c in r["candidates"] if c["origin"] == "policy"), None)
        if first is None or first["box"] is None or r["target"] is None:
            unreadable += 1
            ious.append(0.0)
            accuracy.append(0.0)
            continue
        ious.append(_iou(np.array(first["box"]), np.array(r["target"])))
        accuracy.append(first["accuracy"][0] if first["accuracy"] else 0.0)
    n = len(rows)
    return BoxAnswerReport(
        questions=n,
        mean_iou=float(np.mean(ious)) if n else 0.0,
        iou_50=float(np.mean(np.array(ious) >= 0.5)) if n else 0.0,
        answer_accuracy=float(np.mean(accuracy)) if n else 0.0,
        unreadable_boxes=unreadable,
        sources={"run": str(run)},
    )


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    lt, rb = np.maximum(a[:2], b[:2]), np.minimum(a[2:], b[2:])
    inter = float(np.prod(np.clip(rb - lt, 0, None)))
    union = float(np.prod(a[2:] - a[:2]) + np.prod(b[2:] - b[:2])) - inter
    return inter / union if union > 0 else 0.0
