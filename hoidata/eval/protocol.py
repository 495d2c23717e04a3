"""The HICO-DET evaluation protocol and its named variants (docs/metrics.md, "HICO-DET mAP").

``official`` reproduces ho-rcnn's ``eval_one.m`` / ``VOCevaldet_bboxpair.m``. Every other variant
changes named fields of :class:`HicoProtocol`, so a report says exactly what it computed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np

from hoidata.errors import HoidataError

# MATLAB's colon operator builds ``0:0.1:1`` as a + k*d for the first half and b - (n-k)*d for the
# second, so its 0.3 is 3*0.1 = 0.30000000000000004 while 0.6 and 0.7 are the plain doubles.
THRESHOLDS: dict[str, np.ndarray] = {
    "matlab": np.array(
        [0.0, 0.1, 0.2, 3 * 0.1, 0.4, 0.5, 1 - 4 * 0.1, 1 - 3 * 0.1, 1 - 2 * 0.1, 1 - 0.1, 1.0]
    ),
    "numpy-arange": np.arange(0.0, 1.1, 0.1),  # the Python ports and GNU Octave: 0.6000000000000001, …
    "decimal": np.array([k / 10 for k in range(11)]),  # 0.3 exactly
}

CLASS_SETS = ("all", "present", "interactive")
TIE_ORDERS = ("input", "reversed")  # equal scores: input order (MATLAB's stable sort) or reversed
IOU_FRAMES = ("inclusive", "continuous")


@dataclass(frozen=True)
class HicoProtocol:
    """What decides a HICO-DET mAP number; ``official`` is every default."""

    name: str = "official"
    thresholds: str = "matlab"  # 11 recall points: matlab | numpy-arange | decimal
    plus_one: bool = True  # inclusive-pixel IoU (w = x2 - x1 + 1 on 1-based boxes); False: w = x2 - x1
    strict: bool = False  # TP needs IoU > 0.5 (UPT) instead of >= 0.5
    label_aware: bool = False  # object IoU is 0 when the predicted object label is not the class's
    top_k_per_image: int | None = None  # keep the k best-scored predictions of each image (QPIC: 100)
    max_per_class: int | None = None  # keep the best n detections of each class (exporters: 19,999)
    classes: str = "all"  # all | present (npos > 0, QPIC) | interactive (no no_interaction, THID)
    skip_images_without_gt: bool = False  # predictions in images without any GT pair are ignored
    min_overlap: float = 0.5
    # SWIG-HOI evaluators (hoidata.eval.swig); the defaults leave HICO-DET unchanged
    ties: str = "input"  # equal scores: input order | reversed (``argsort(scores)[::-1]``)
    iou_frame: str = "inclusive"  # inclusive: 1-based pixels (plus_one applies) | continuous: canonical
    top_k_keep_ties: bool = False  # top_k_per_image keeps every score >= the k-th best (torch.topk cut)

    def __post_init__(self) -> None:
        if self.thresholds not in THRESHOLDS:
            raise HoidataError(f"unknown thresholds {self.thresholds!r}; expected {', '.join(THRESHOLDS)}")
        if self.classes not in CLASS_SETS:
            raise HoidataError(f"unknown class set {self.classes!r}; expected {', '.join(CLASS_SETS)}")
        if self.ties not in TIE_ORDERS:
            raise HoidataError(f"unknown tie order {self.ties!r}; expected {', '.join(TIE_ORDERS)}")
        if self.iou_frame not in IOU_FRAMES:
            raise HoidataError(f"unknown IoU frame {self.iou_frame!r}; expected {', '.join(IOU_FRAMES)}")

    def describe(self) -> dict[str, Any]:
        return asdict(self) | {"threshold_values": [float(t) for t in THRESHOLDS[self.thresholds]]}


_OFFICIAL = HicoProtocol()
VARIANTS: dict[str, HicoProtocol] = {
    "official": _OFFICIAL,
    "numpy-arange": replace(_OFFICIAL, name="numpy-arange", thresholds="numpy-arange"),
    "decimal": replace(_OFFICIAL, name="decimal", thresholds="decimal"),
    # QPIC / CDN datasets/hico_eval.py (tie order there comes from numpy's unstable argsort: not copied)
    "qpic": replace(
        _OFFICIAL,
        name="qpic",
        thresholds="numpy-arange",
        label_aware=True,
        top_k_per_image=100,
        classes="present",
        skip_images_without_gt=True,
    ),
    # UPT / pocket: strict > 0.5, IoU without +1 on the file's pixel values, the 112 empty images dropped
    "upt": replace(_OFFICIAL, name="upt", plus_one=False, strict=True, skip_images_without_gt=True),
    # THID: IoU without +1, 19,999 detections per class, the 80 no_interaction classes not scored
    "thid": replace(_OFFICIAL, name="thid", plus_one=False, max_per_class=19_999, classes="interactive"),
}


def get_protocol(name: str) -> HicoProtocol:
    try:
        return VARIANTS[name]
    except KeyError:
        raise HoidataError(f"unknown variant {name!r}; expected one of {', '.join(VARIANTS)}") from None
