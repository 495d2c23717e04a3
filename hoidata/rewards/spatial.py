"""Spatial relevance: relations the reasoning states that the boxes confirm.

The reasoning (every assistant turn outside the answer) is read for claims about where the object
is relative to the person — left/right of, above/below, overlapping, inside, close to, apart from.
Each claim is checked against the relations computed from the ground-truth boxes
(:func:`hoidata.tools.spatial.geometry`); it holds when it is true of one of the completion's
person–object pairs. The reward is the share of claims that hold, so stating every direction at
once earns little, and saying nothing earns nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.rewards.completions import Rollout
from hoidata.rewards.targets import Targets
from hoidata.tools.spatial import geometry

_PERSON = r"(?:the |that |this )?(?:person|human|man|woman|people|him|her|them)\b"
CLAIMS = {  # RE2 patterns, matched case-insensitively
    "left": rf"\b(?:to the )?left of {_PERSON}",
    "right": rf"\b(?:to the )?right of {_PERSON}",
    "above": rf"\b(?:above|over) {_PERSON}",
    "below": rf"\b(?:below|under|beneath|underneath) {_PERSON}",
    "overlap": r"\b(?:overlap(?:s|ping)?|in contact|touch(?:es|ing)?)\b",
    "inside": r"\b(?:inside|within) (?:the )?(?:person|human)",
    "near": r"\b(?:close to|near|next to|beside)\b",
    "apart": r"\b(?:apart from|far from|away from)\b",
}
CENTRE = 0.15  # offsets under this many person sizes are "at the centre", neither side


def spatial_claims(rollouts: Sequence[Rollout]) -> tuple[np.ndarray, np.ndarray]:
    """``(owner, kind)`` of every claim made in the reasoning (each kind once per completion)."""
    reasoning = pa.array([_reasoning(r) for r in rollouts], pa.string())
    made = np.stack(
        [
            pc.match_substring_regex(reasoning, pattern, ignore_case=True).to_numpy(zero_copy_only=False)
            for pattern in CLAIMS.values()
        ],
        axis=1,
    ).reshape(len(rollouts), len(CLAIMS))
    owner, kind = np.nonzero(made)
    return owner.astype(np.int64), kind.astype(np.int64)


def _reasoning(r: Rollout) -> str:
    """Every assistant turn, up to the final answer."""
    text = " ".join(r.turns)
    cut = text.rfind("<answer>")
    return text if cut < 0 else text[:cut]


def spatial(rollouts: Sequence[Rollout], gt: Targets) -> np.ndarray:
    n = len(rollouts)
    owner, kind = spatial_claims(rollouts)
    # every claim against every pair with an object in its completion
    per_claim = gt.counts[owner]
    c = np.repeat(np.arange(len(owner)), per_claim)
    g = np.repeat(gt.offsets[owner] - np.cumsum(per_claim) + per_claim, per_claim) + np.arange(len(c))
    has = ~np.isnan(gt.object[g, 0])
    c, g = c[has], g[has]
    rel = geometry(gt.person[g], gt.object[g])
    truth = np.stack(
        [
            rel["dx"] < -CENTRE,
            rel["dx"] > CENTRE,
            rel["dy"] < -CENTRE,
            rel["dy"] > CENTRE,
            rel["iou"] > 0,
            rel["inside"] >= 0.5,
            (rel["iou"] > 0) | (rel["distance"] < 1.0),
            (rel["iou"] == 0) & (rel["distance"] >= 1.0),
        ],
        axis=1,
    )
    holds = truth[np.arange(len(c)), kind[c]] if len(c) else np.zeros(0, bool)
    true_claims = np.bincount(c[holds], minlength=len(owner)) > 0
    made = np.bincount(owner, minlength=n)
    right = np.bincount(owner[true_claims], minlength=n)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(made > 0, right / made, 0.0)
