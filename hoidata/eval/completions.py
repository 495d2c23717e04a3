"""Completions files (JSONL or Parquet, one ``{sample_id, completion}`` per row) and the answers
they give to a dataset's samples.

``hoidata score`` scores every completion; the answer evaluators (grounding, referring, HOI-QA) take
the first completion of each sample, so no ground truth counts twice, and report the repeats.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hoidata.errors import HoidataError
from hoidata.io import read_table
from hoidata.rewards.completions import rollout
from hoidata.schemas.text import valid_text


def read_completions(path: Path) -> tuple[list[str], list[Any]]:
    """``(sample_ids, completions)`` from JSONL (one object per line), Parquet, or a dataset directory
    (``predict``'s); a completion is the text, or the message list a tool-using rollout produced."""
    if path.is_dir() and (path / "manifest.json").is_file():
        table = read_table(path, ["sample_id", "completion"])
        return [str(s) for s in table.column("sample_id").to_pylist()], table.column("completion").to_pylist()
    if not path.is_file():
        raise HoidataError("file not found", file=str(path))
    if path.suffix == ".parquet":
        table = pq.read_table(path)
        for name in ("sample_id", "completion"):
            if name not in table.column_names:
                raise HoidataError(f"missing column {name!r}", file=str(path), field=name)
        return [str(s) for s in table.column("sample_id").to_pylist()], table.column("completion").to_pylist()
    ids, texts = [], []
    with path.open("rb") as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = orjson.loads(line)
            except orjson.JSONDecodeError as e:
                row = _lenient_json(line)
                if row is None:
                    raise HoidataError(f"not JSON: {e}", file=str(path), record=f"line {line_no}") from None
            for name in ("sample_id", "completion"):
                if not isinstance(row, dict) or name not in row:
                    raise HoidataError("missing", file=str(path), record=f"line {line_no}", field=name)
            if not isinstance(row["completion"], str | list):
                raise HoidataError(
                    "must be a string or a list of messages",
                    file=str(path),
                    record=f"line {line_no}",
                    field="completion",
                )
            ids.append(str(row["sample_id"]))
            texts.append(row["completion"])
    return ids, texts


@dataclass
class FirstAnswers:
    """The final answer text each target gets from the first completion that names it."""

    texts: list[str]  # per target; "" without a completion
    answered: np.ndarray  # (targets,) bool: a completion was given
    completions: int  # completions read
    duplicates: int  # later completions of an answered target, ignored
    unmatched: list[str]  # sample ids of completions that name no target

    @property
    def matched_none(self) -> bool:
        """Completions were read and none names a target (the wrong dataset, most likely)."""
        return self.completions > 0 and len(self.unmatched) == self.completions

    def counts(self) -> dict[str, int]:
        return {
            "completions": self.completions,
            "answered": int(self.answered.sum()),
            "without_completion": int((~self.answered).sum()),
            "duplicate_completions": self.duplicates,
            "unmatched_completions": len(self.unmatched),
        }


def first_answers(ids: list[str], raw: list[Any], index: Mapping[str, int], targets: int) -> FirstAnswers:
    """Give each of ``targets`` (found by sample id through ``index``) its first completion's answer."""
    texts = [""] * targets
    answered = np.zeros(targets, bool)
    unmatched: list[str] = []
    duplicates = 0
    for sid, completion in zip(ids, raw, strict=True):
        k = index.get(sid, -1)
        if k < 0:
            unmatched.append(sid)
        elif answered[k]:
            duplicates += 1
        else:
            answered[k] = True
            texts[k] = rollout(completion).final
    return FirstAnswers(texts, answered, len(ids), duplicates, unmatched)


@dataclass
class Joined:
    """The dataset rows of one task and the completion text each of them gets."""

    table: pa.Table  # the task's dataset rows that are evaluated
    texts: list[str]  # final answer text per row ("" when the row has no completion)
    answered: np.ndarray  # (rows,) bool: a completion was given
    counts: dict[str, int]
    unmatched_samples: list[str]  # completion sample ids the task's rows lack


def join_completions(
    completions: Path | str,
    dataset: Path | str,
    tasks: Sequence[str],
    columns: Sequence[str],
    *,
    skip_missing: bool = False,
) -> Joined:
    """Read completions and keep the dataset rows of ``tasks`` they answer.

    A sample id the rows lack is reported, never dropped silently; an error when none matches. A
    second completion for the same sample is ignored (the first counts), so no ground truth is
    counted twice. Rows without a completion score as empty answers unless ``skip_missing``.
    """
    path = Path(completions)
    ids, raw = read_completions(path)
    table = read_table(dataset, ["sample_id", "task", *columns])
    present = sorted(set(table.column("task").to_pylist()))
    table = table.filter(pc.is_in(table.column("task"), pa.array(list(tasks), pa.string())))
    if not table.num_rows:
        raise HoidataError(
            f"no {' or '.join(tasks)} samples in this dataset (its tasks: {', '.join(present) or 'none'})",
            file=str(dataset),
        )
    index = {sid: i for i, sid in enumerate(table.column("sample_id").to_pylist())}
    got = first_answers(ids, raw, index, table.num_rows)
    if got.matched_none:
        raise HoidataError(
            f"none of the {len(ids):,} completions has a sample_id of this dataset's "
            f"{' or '.join(tasks)} samples (first: {ids[0]!r}; the dataset has e.g. "
            f"{table.column('sample_id')[0].as_py()!r})",
            file=str(path),
        )
    texts, answered = got.texts, got.answered
    if skip_missing:
        keep = np.flatnonzero(answered)
        table = table.take(pa.array(keep))
        texts = [texts[i] for i in keep]
        answered = answered[keep]
    counts = {"samples": len(index), "evaluated": table.num_rows, **got.counts()}
    return Joined(table, texts, answered, counts, got.unmatched)


def _lenient_json(line: bytes) -> Any:
    """A line orjson refuses only for a lone surrogate escape (``"\\ud800"``, which a model's server
    may write), read by the standard library with every string made valid; None if it is no JSON."""
    try:
        return _valid_strings(json.loads(line, parse_constant=_refuse))
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both
        return None


def _valid_strings(value: Any) -> Any:
    if isinstance(value, str):
        return valid_text(value)
    if isinstance(value, list):
        return [_valid_strings(v) for v in value]
    if isinstance(value, dict):
        return {valid_text(k): _valid_strings(v) for k, v in value.items()}
    return value


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is no JSON")  # NaN and Infinity: orjson refuses them, so do we
