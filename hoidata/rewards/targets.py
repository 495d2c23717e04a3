"""Ground truth for a batch of completions, flattened like :class:`~hoidata.profiles.answers.Answers`.

Built from the ``pairs`` column of an SFT/RL dataset (canonical pixels of the stored image), either
from Python rows (what TRL passes to a reward function) or straight from Arrow (scoring files).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.profiles.answers import Flat

VERB_TASKS = ("referring", "spatial", "cof", "box-answer")  # answers name verbs
GROUNDING = "grounding"  # answers are pairs of boxes
DETECTION = "detection"  # answers are labelled pairs; the default for other tasks


@dataclass(frozen=True)
class Targets(Flat):
    """Ground-truth pairs of a batch of completions, one row per pair."""

    offsets: np.ndarray  # int64 (C + 1,): completion i owns pairs offsets[i]:offsets[i+1]
    person: np.ndarray  # (N, 4) canonical pixels
    object: np.ndarray  # (N, 4), NaN where the interaction has no object
    verb: pa.StringArray  # taxonomy names, one per pair
    object_label: pa.StringArray  # null where the interaction has no object
    task: np.ndarray  # (C,) str
    width: np.ndarray  # (C,) the canonical frame of each completion's image
    height: np.ndarray

    @classmethod
    def from_rows(
        cls, pairs: Sequence[Sequence[dict[str, Any]]], task: Any, width: Any, height: Any
    ) -> Targets:
        """From per-completion lists of pair dicts (``person_bbox``, ``object_bbox``, ``verb``, ``object``)."""
        n = len(pairs)
        flat = [p for row in pairs for p in (row or ())]
        counts = [len(row or ()) for row in pairs]
        person = np.array([p["person_bbox"] for p in flat], np.float64).reshape(-1, 4)
        obj = np.array(
            [p["object_bbox"] if p.get("object_bbox") is not None else [np.nan] * 4 for p in flat], np.float64
        ).reshape(-1, 4)
        return cls(
            offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            person=person,
            object=obj,
            verb=pa.array([p["verb"] for p in flat], pa.string()),
            object_label=pa.array([p.get("object") for p in flat], pa.string()),
            task=_per_completion(task, n, str),
            width=_per_completion(width, n, np.float64),
            height=_per_completion(height, n, np.float64),
        )

    @classmethod
    def from_arrow(cls, table: pa.Table) -> Targets:
        """From a table with ``pairs``, ``task``, ``width`` and ``height`` columns, without a row loop."""
        pairs = table.column("pairs").combine_chunks()
        values = pairs.values
        return cls(
            offsets=pairs.offsets.to_numpy().astype(np.int64),
            person=_boxes(values.field("person_bbox")),
            object=_boxes(values.field("object_bbox")),
            verb=values.field("verb").cast(pa.string()),
            object_label=values.field("object").cast(pa.string()),
            task=np.asarray(table.column("task").to_pylist(), dtype=str),
            width=table.column("width").to_numpy().astype(np.float64),
            height=table.column("height").to_numpy().astype(np.float64),
        )


def _boxes(column: pa.Array) -> np.ndarray:
    """A list<float32>[4] column with nulls → (N, 4) float64 with NaN rows."""
    filled = pc.fill_null(column, pa.scalar([np.nan] * 4, column.type))
    return filled.flatten().to_numpy(zero_copy_only=False).astype(np.float64).reshape(-1, 4)


def _per_completion(value: Any, n: int, dtype: Any) -> np.ndarray:
    values = [value] * n if isinstance(value, str) or np.ndim(value) == 0 else list(value)
    arr = np.asarray(values, dtype=dtype)
    if len(arr) != n:
        raise ValueError(f"expected {n} values, got {len(arr)}")
    return arr


def take(t: Targets, indices: np.ndarray) -> Targets:
    """The targets of some completions, in the order given."""
    idx = np.asarray(indices, np.int64)
    counts = t.counts[idx]
    rows = np.repeat(t.offsets[idx] - np.cumsum(counts) + counts, counts) + np.arange(int(counts.sum()))
    return Targets(
        offsets=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        person=t.person[rows],
        object=t.object[rows],
        verb=t.verb.take(pa.array(rows)),
        object_label=t.object_label.take(pa.array(rows)),
        task=t.task[idx],
        width=t.width[idx],
        height=t.height[idx],
    )
