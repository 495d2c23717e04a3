"""``hoidata score``: judge a file of completions against a dataset with the rewards RL uses.

Completions come as JSONL or Parquet, one per row: ``sample_id`` and ``completion`` (the text, or
the message list a tool-using rollout produced). The ground truth is an SFT dataset (its ``pairs``
and ``task``) or a canonical dataset (every interaction of the image, scored as detection).
Completions whose sample id the dataset lacks are counted and reported, never silently dropped.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hoidata.errors import HoidataError
from hoidata.eval.completions import read_completions
from hoidata.eval.report import Report
from hoidata.io import read_manifest, read_table
from hoidata.profiles import Profile, get_profile
from hoidata.rewards import COMPONENTS, RewardConfig, Scores, Targets, score
from hoidata.rewards.targets import DETECTION, take
from hoidata.sft.schema import PAIR


@dataclass
class ScoreReport(Report):
    """Mean reward parts over the scored completions, overall and per task, and what was not scored."""

    completions: int
    scored: int
    unmatched: list[str]  # sample ids the dataset does not hold (first few)
    profile: str
    means: dict[str, float]
    by_task: dict[str, dict[str, float]] = field(default_factory=dict)


def score_file(
    completions: Path | str,
    dataset: Path | str,
    *,
    profile: str | None = None,
    config: RewardConfig | None = None,
    out: Path | str | None = None,
) -> ScoreReport:
    """Score every completion in ``completions`` against ``dataset``; write per-row scores to ``out``."""
    ids, texts = read_completions(Path(completions))
    prof = resolve_profile(Path(dataset), profile)
    gt_ids, targets = dataset_targets(Path(dataset))
    index = {sid: i for i, sid in enumerate(gt_ids)}
    rows = np.array([index.get(s, -1) for s in ids], np.int64)
    matched = np.flatnonzero(rows >= 0)
    unmatched = [ids[i] for i in np.flatnonzero(rows < 0)]
    if len(ids) and not len(matched):
        raise HoidataError(
            f"none of the {len(ids):,} completions has a sample_id of this dataset "
            f"(first: {ids[0]!r}); score against the dataset the prompts came from",
            file=str(dataset),
        )
    sub = take(targets, rows[matched])
    scores = score([texts[i] for i in matched], sub, prof, config)
    if out is not None:
        _write(Path(out), [ids[i] for i in matched], sub.task, scores)
    return ScoreReport(
        completions=len(ids),
        scored=len(matched),
        unmatched=unmatched[:5] + ([f"… {len(unmatched) - 5:,} more"] if len(unmatched) > 5 else []),
        profile=prof.name,
        means=scores.means(),
        by_task={
            str(t): {c: float(getattr(scores, c)[sub.task == t].mean()) for c in (*COMPONENTS, "total")}
            for t in np.unique(sub.task)
        },
    )


def dataset_targets(path: Path) -> tuple[list[str], Targets]:
    """Sample ids and ground truth of an SFT dataset (``pairs``) or a canonical one (``interactions``)."""
    table = read_table(path)
    names = set(table.column_names)
    if {"pairs", "task"} <= names:
        return table.column("sample_id").to_pylist(), Targets.from_arrow(table)
    if {"instances", "interactions"} <= names:
        return table.column("sample_id").to_pylist(), Targets.from_arrow(_canonical_pairs(table))
    raise HoidataError("neither an SFT dataset (pairs) nor a canonical one (interactions)", file=str(path))


def _canonical_pairs(table: pa.Table) -> pa.Table:
    """Every interaction of each image as a detection target, boxes looked up from its instances."""
    instances = table.column("instances").combine_chunks()
    interactions = table.column("interactions").combine_chunks()
    inst_start = instances.offsets.to_numpy()[:-1]
    owner = pc.list_parent_indices(interactions).to_numpy()
    its = interactions.flatten()
    flat = instances.flatten()
    boxes = flat.field("bbox")
    subject = its.field("subject").to_numpy().astype(np.int64) + inst_start[owner]
    obj_local = its.field("object").to_numpy(zero_copy_only=False).astype(np.int64)
    has = obj_local >= 0
    obj = np.where(has, obj_local + inst_start[owner], 0)
    null_box = pa.scalar(None, boxes.type)
    pairs = pa.StructArray.from_arrays(
        [
            boxes.take(pa.array(subject)),
            pc.if_else(pa.array(has), boxes.take(pa.array(obj)), null_box),
            its.field("verb"),
            its.field("verb_id"),
            pc.if_else(pa.array(has), flat.field("label").take(pa.array(obj)), pa.scalar(None, pa.string())),
            pc.if_else(
                pa.array(has), flat.field("label_id").take(pa.array(obj)), pa.scalar(None, pa.int32())
            ),
            its.field("hoi_id"),
        ],
        fields=list(PAIR),
    )
    lists = pa.ListArray.from_arrays(interactions.offsets, pairs)
    return pa.table(
        {
            "pairs": lists,
            "task": pa.array([DETECTION] * len(table)),
            "width": table.column("width"),
            "height": table.column("height"),
        }
    )


def resolve_profile(dataset: Path, name: str | None) -> Profile:
    """The profile the dataset was built for (its manifest says), unless the user names one."""
    spec = read_manifest(dataset).config.get("profile_spec")
    if name is not None:
        if spec and spec["name"] == name:
            return get_profile(name, spec["min_pixels"], spec["max_pixels"])
        return get_profile(name)
    if not spec:
        raise HoidataError("this dataset names no model profile: pass --profile", file=str(dataset))
    return get_profile(spec["name"], spec["min_pixels"], spec["max_pixels"])


def _write(out: Path, ids: list[str], task: np.ndarray, scores: Scores) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    columns: dict[str, Any] = {"sample_id": pa.array(ids, pa.string()), "task": pa.array(task.tolist())}
    columns.update({c: pa.array(getattr(scores, c)) for c in (*COMPONENTS, "total")})
    tmp = out.with_name(out.name + ".tmp")
    pq.write_table(pa.table(columns), tmp)
    tmp.replace(out)
