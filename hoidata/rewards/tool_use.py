"""Tool use: valid, useful calls — not many calls.

A call is good when the tool answered without an error (or, for a completion stored without tool
results, when it names a known tool with an arguments object), it is not a repeat of an earlier
call, and a region it looks at (``zoom_in``, ``imagine``) overlaps a ground-truth person or object
and is not the whole image. The reward is the share of good calls, scaled down once the rollout
spends more than ``call_budget`` calls: ten good zooms earn less than two.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import orjson

from hoidata.profiles import Profile
from hoidata.rewards.completions import Rollout
from hoidata.rewards.targets import Targets
from hoidata.schemas.boxes import as_boxes
from hoidata.tools.names import TOOL_NAMES

REGION_TOOLS = frozenset({"zoom_in", "imagine"})
WHOLE_IMAGE = 0.9  # a region covering this share of the image is not looking at anything


def tool_use(
    rollouts: Sequence[Rollout], gt: Targets, profile: Profile, *, call_budget: int = 4
) -> np.ndarray:
    n = len(rollouts)
    good = np.zeros(n)
    total = np.zeros(n)
    regions: list[tuple[int, int, list[float]]] = []  # (completion, call slot, model-frame box)
    flags: list[list[bool]] = []
    for i, r in enumerate(rollouts):
        seen: set[bytes] = set()
        row: list[bool] = []
        for c in r.calls:
            key = orjson.dumps([c.name, c.arguments], option=orjson.OPT_SORT_KEYS, default=str)
            ok = c.name in TOOL_NAMES and isinstance(c.arguments, dict) and not c.failed and key not in seen
            seen.add(key)
            if ok and c.name in REGION_TOOLS:
                box = _region(c.arguments.get("bbox_2d"))
                ok = box is not None
                if ok:
                    regions.append((i, len(row), box))
            row.append(ok)
        flags.append(row)
        total[i] = len(r.calls)
    if regions:
        owner = np.array([r[0] for r in regions])
        canon = profile.from_model(np.array([r[2] for r in regions]), gt.width[owner], gt.height[owner])
        useful = _looks_at_something(canon, owner, gt)
        for (i, slot, _), u in zip(regions, useful, strict=True):
            flags[i][slot] = bool(u)
    for i, row in enumerate(flags):
        good[i] = sum(row)
    with np.errstate(divide="ignore", invalid="ignore"):
        share = np.where(total > 0, good / total, 0.0)
        spend = np.where(total > call_budget, call_budget / total, 1.0)
    return share * spend


def _region(value: object) -> list[float] | None:
    if isinstance(value, str):
        try:
            value = orjson.loads(value)
        except orjson.JSONDecodeError:
            return None
    if (
        isinstance(value, list)
        and len(value) == 4
        and all(isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v) for v in value)
    ):
        return [float(v) for v in value]
    return None


def _looks_at_something(boxes: np.ndarray, owner: np.ndarray, gt: Targets) -> np.ndarray:
    """Per region: overlaps a ground-truth box of its completion and is not (nearly) the whole image."""
    b = as_boxes(boxes)
    area = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    small = area < WHOLE_IMAGE * gt.width[owner] * gt.height[owner]
    per_region = gt.counts[owner]
    k = np.repeat(np.arange(len(b)), per_region)
    g = np.repeat(gt.offsets[owner] - np.cumsum(per_region) + per_region, per_region) + np.arange(len(k))
    hit = _intersects(b[k], gt.person[g]) | _intersects(b[k], gt.object[g])  # NaN boxes never intersect
    return small & (np.bincount(k[hit], minlength=len(b)) > 0)


def _intersects(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    iw = np.minimum(a[:, 2], b[:, 2]) - np.maximum(a[:, 0], b[:, 0])
    ih = np.minimum(a[:, 3], b[:, 3]) - np.maximum(a[:, 1], b[:, 1])
    return (iw > 0) & (ih > 0)
