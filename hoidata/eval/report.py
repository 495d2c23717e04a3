"""What every evaluation report shares: its JSON form, writing it, and its console rows."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from hoidata.io.files import write_json_atomic


class Report:
    """Mixin of the report dataclasses: the JSON form is ``describe()`` (fixed text on how the numbers
    were computed) followed by every field; a report with non-JSON fields overrides ``to_dict``."""

    def describe(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        own = {f.name: getattr(self, f.name) for f in fields(self)}  # type: ignore[arg-type]
        return self.describe() | own

    def write_json(self, path: Path | str) -> None:
        write_json_atomic(Path(path), self.to_dict())


def percent(value: float | None) -> str:
    """A fraction as a 10-wide percentage, as papers print it; a dash when there is none."""
    return f"{100 * value:10.2f}" if value is not None else f"{'—':>10}"


def summary_rows(summary: dict[str, float | None], labels: list[tuple[str, str]], width: int) -> list[str]:
    """One console row per ``(label, key)`` of a summary, in percent."""
    return [f"  {label:<{width}}{percent(summary.get(key))}" for label, key in labels]


def count_lines(c: dict[str, int], unmatched: list[str]) -> list[str]:
    """Console lines on what an answer evaluation read, evaluated and set aside."""
    lines = [
        f"  {c['evaluated']:,} samples evaluated ({c['answered']:,} answered) of {c['samples']:,}; "
        f"{c['completions']:,} completions read"
    ]
    if c.get("empty_answers"):
        lines.append(
            f"  {c['empty_answers']:,} answers yield nothing (unparseable or empty): zero predictions"
        )
    if c["without_completion"]:
        lines.append(f"  {c['without_completion']:,} samples have no completion")
    if c["duplicate_completions"]:
        lines.append(f"  set aside: {c['duplicate_completions']:,} repeated completions (first one counts)")
    if unmatched:
        lines.append(
            f"  set aside: {len(unmatched):,} completions whose sample_id the dataset lacks "
            f"(first: {unmatched[0]!r})"
        )
    return lines


@dataclass(kw_only=True)
class MapReport(Report):
    """Base of the mAP reports (HICO-DET, SWIG-HOI): per-class results, what was evaluated and set
    aside, and the JSON fields and console table both write."""

    map: dict[str, float | None]  # mAP of each class group, as fractions
    mean_recall: float | None
    ap: np.ndarray  # (classes,) per-class AP
    recall: np.ndarray  # (classes,) final recall per class (0 without detections)
    npos: np.ndarray  # (classes,) GT pairs per class
    num_detections: np.ndarray  # (classes,) detections evaluated per class
    num_tp: np.ndarray  # (classes,)
    protocol: Any  # the variant: its name and describe()
    ranking: str
    counts: dict[str, int]
    invalid: dict[str, int]
    dropped: dict[str, int]
    unmatched_samples: list[str]
    names: list[str]
    notes: list[str] = field(default_factory=list)
    sources: dict[str, str] = field(default_factory=dict)

    def class_row(self, i: int) -> dict[str, Any]:
        """The JSON entry of class ``i`` (the caller adds its own flags)."""
        return {
            "hoi_id": int(i),
            "name": self.names[i],
            "ap": float(self.ap[i]),
            "recall": float(self.recall[i]),
            "npos": int(self.npos[i]),
            "detections": int(self.num_detections[i]),
            "tp": int(self.num_tp[i]),
        }

    def map_fields(self) -> dict[str, Any]:
        """The JSON fields every mAP report writes (the caller adds its own and the classes)."""
        return {
            "map": self.map,
            "mean_recall": self.mean_recall,
            "variant": self.protocol.name,
            "protocol": self.protocol.describe(),
            "ranking": self.ranking,
            "counts": self.counts,
            "invalid_predictions": self.invalid,
            "dropped_detections": self.dropped,
            "unmatched_samples": self.unmatched_samples,
            "notes": self.notes,
            "sources": self.sources,
        }

    def map_table(self, title: str, groups: list[tuple[str, float | None, int]]) -> str:
        """The console summary: one row per class group (AP in percent), then what was evaluated and
        set aside, the ranking rule and the notes."""
        lines = [title, f"  {'group':<10}{'mAP %':>10}{'classes':>10}"]
        lines += [f"  {label:<10}{percent(value)}{size:>10}" for label, value, size in groups]
        c = self.counts
        lines.append(
            f"  {c['evaluated']:,} of {c['predictions']:,} predictions evaluated on {c['images']:,} images "
            f"({c['gt_pairs']:,} ground-truth pairs)"
        )
        for reason, n in {**self.invalid, **self.dropped}.items():
            lines.append(f"  set aside: {n:,} {reason}")
        if self.unmatched_samples:
            lines.append(f"  {len(self.unmatched_samples):,} predicted images are not in the ground truth")
        lines.append(f"  ranking: {self.ranking}")
        lines.extend(f"  note: {n}" for n in self.notes)
        return "\n".join(lines)
