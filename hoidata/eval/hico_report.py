"""The HICO-DET result: summary numbers, every per-class AP, and what produced them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from hoidata.eval.protocol import HicoProtocol
from hoidata.eval.report import MapReport
from hoidata.schemas.taxonomy import Taxonomy

KNOWN_OBJECT_NOTE = (
    "known-object setting derived from box annotations: an image counts as showing an object when it "
    "has a ground-truth pair with that object; the official setting reads image-level labels from "
    "HICO's anno.mat (which also count HOIs without boxes), so this is an approximation"
)


@dataclass(kw_only=True)
class HicoReport(MapReport):
    """mAP summaries (Full / Rare / Non-Rare, and Seen / Unseen with a zero-shot split), per-class AP,
    recall and npos of the 600 classes, and the protocol, setting and ranking rule that produced them."""

    protocol: HicoProtocol
    scored: np.ndarray  # (600,) bool: the class counts in the means
    setting: str
    zero_shot: str | None
    rare: np.ndarray
    unseen: np.ndarray | None

    def to_dict(self) -> dict[str, Any]:
        classes = [
            {
                **self.class_row(i),
                "rare": bool(self.rare[i]),
                "scored": bool(self.scored[i]),
                **({"unseen": bool(self.unseen[i])} if self.unseen is not None else {}),
            }
            for i in range(len(self.ap))
        ]
        return {**self.map_fields(), "setting": self.setting, "zero_shot": self.zero_shot, "classes": classes}

    def format_table(self) -> str:
        """The console summary: one row per class group, AP in percent as papers print it."""
        title = f"HICO-DET mAP — variant {self.protocol.name}, setting {self.setting}"
        if self.zero_shot:
            title += f", zero-shot {self.zero_shot}"
        groups = [("Full", "full"), ("Rare", "rare"), ("Non-Rare", "non_rare")]
        if self.zero_shot:
            groups += [("Seen", "seen"), ("Unseen", "unseen")]
        return self.map_table(
            title, [(label, self.map.get(key), self._group_size(key)) for label, key in groups]
        )

    def _group_size(self, key: str) -> int:
        return int(self._group(key).sum())

    def _group(self, key: str) -> np.ndarray:
        rare = self.rare.astype(bool)
        unseen = self.unseen.astype(bool) if self.unseen is not None else np.zeros_like(rare)
        mask = {"full": True, "rare": rare, "non_rare": ~rare, "seen": ~unseen, "unseen": unseen}[key]
        return self.scored & mask


def _mean(values: np.ndarray, mask: np.ndarray) -> float | None:
    return float(np.mean(values[mask])) if mask.any() else None


def summarise(
    *,
    ap: np.ndarray,
    recall: np.ndarray,
    npos: np.ndarray,
    num_detections: np.ndarray,
    num_tp: np.ndarray,
    protocol: HicoProtocol,
    setting: str,
    zero_shot: str | None,
    taxonomy: Taxonomy,
    ranking: str,
    counts: dict[str, int],
    invalid: dict[str, int],
    dropped: dict[str, int],
    unmatched_samples: list[str],
) -> HicoReport:
    """Class means as the protocol defines them (Full = all scored classes, Rare < 10 training pairs)."""
    scored = np.ones(len(ap), dtype=bool)
    if protocol.classes == "present":
        scored = npos > 0
    elif protocol.classes == "interactive":
        scored = np.array([taxonomy.verbs[v] != "no_interaction" for v in taxonomy.hoi_verb])
    rare = taxonomy.flags["rare"].astype(bool)
    unseen = taxonomy.flags[zero_shot].astype(bool) if zero_shot else None
    summary = {
        "full": _mean(ap, scored),
        "rare": _mean(ap, scored & rare),
        "non_rare": _mean(ap, scored & ~rare),
    }
    if unseen is not None:
        summary |= {"seen": _mean(ap, scored & ~unseen), "unseen": _mean(ap, scored & unseen)}
    notes = []
    if setting == "known-object":
        notes.append(KNOWN_OBJECT_NOTE)
    zero = int((scored & (npos == 0)).sum())
    if zero:
        notes.append(
            f"{zero} scored classes have no ground-truth pair: their AP is 0, as in the official code"
        )
    return HicoReport(
        map=summary,
        mean_recall=_mean(recall, scored),
        ap=ap,
        recall=recall,
        npos=npos,
        num_detections=num_detections,
        num_tp=num_tp,
        scored=scored,
        protocol=protocol,
        setting=setting,
        zero_shot=zero_shot,
        ranking=ranking,
        counts=counts,
        invalid=invalid,
        dropped=dropped,
        unmatched_samples=unmatched_samples,
        names=taxonomy.hoi_names(),
        rare=taxonomy.flags["rare"],
        unseen=taxonomy.flags[zero_shot] if zero_shot else None,
        notes=notes,
    )
