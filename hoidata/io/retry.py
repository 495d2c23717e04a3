"""Rows an engine failed on, made again by a rerun.

A generating stage (gen-cot, predict) records a sample the engine failed on (a server that died,
answered 500 or 429 past its retries, timed out or sent malformed JSON) as a row with its error,
never drops it and never fills it with a made-up answer. The manifest counts those rows
(``counts["failed"]``); rerunning the same command on the complete directory makes exactly those
rows again, in place, and leaves every other row byte for byte as it was. Seeds come from the
sample's identity, so a retried row is the row an uninterrupted run would have written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.io.files import read_parquet, write_parquet_atomic
from hoidata.io.manifest import Manifest

ROW_ID = "sample_id"  # a generated row's own id: a failed row is replaced by the new row of that id


@dataclass(frozen=True)
class Retry:
    """How a stage's failed rows are found and made again.

    ``column == value`` marks a failed row (``value`` None: any value in ``column``, an error
    column); ``records`` maps failed rows to the ids of the input records that made them;
    ``redo(k, ids)`` makes shard ``k``'s rows for only those records; ``row_key`` names each row,
    so that a failed row is replaced by the new row of the same name (default: its ``sample_id``).
    """

    column: str
    value: str | None
    records: Callable[[pa.Table], list[str]]
    redo: Callable[[int, set[str]], tuple[pa.Table, ...]] | None = None
    row_key: Callable[[pa.Table], list[Any]] | None = None

    def mask(self, table: pa.Table) -> np.ndarray:
        column = table[self.column]
        failed = pc.is_valid(column) if self.value is None else pc.equal(column, self.value)
        return np.asarray(pc.fill_null(failed, False))

    def keys(self, table: pa.Table) -> list[Any]:
        return table[ROW_ID].to_pylist() if self.row_key is None else self.row_key(table)

    def count(self, files: list[Path]) -> int:
        """Failed rows in these shards (one column read)."""
        return sum(int(self.mask(read_parquet(f, columns=[self.column])).sum()) for f in files)


def by_column(name: str) -> Callable[[pa.Table], list[str]]:
    """``records`` for rows that name their input record in a column."""
    return lambda rows: rows[name].to_pylist()


def retry_failed(
    directory: Path,
    manifest: Manifest,
    retry: Retry,
    schema: pa.Schema,
    *,
    row_group_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> Manifest:
    """Make every failed row of a complete directory again and write its shard back (atomically,
    shard by shard: a stop in between leaves finished shards repaired and the rest for the next
    rerun). Returns the rewritten manifest, whose ``retry`` entry says what changed."""
    assert retry.redo is not None
    started = time.perf_counter()
    tried = fixed = 0
    for k, path in enumerate(manifest.shard_files(directory)):
        table = read_parquet(path)
        failed = retry.mask(table)
        if not failed.any():
            continue
        ids = set(retry.records(table.filter(pa.array(failed))))
        fresh = retry.redo(k, ids)[0].cast(table.schema)
        made = {key: i for i, key in enumerate(retry.keys(fresh))}
        old_ids = retry.keys(table)
        take = np.arange(table.num_rows)
        for i in np.flatnonzero(
            failed
        ):  # a row the rerun did not make again (its image now unreadable) stays
            if old_ids[i] in made:
                take[i] = table.num_rows + made[old_ids[i]]
        merged = pa.concat_tables([table, fresh]).take(pa.array(take))
        tried += int(failed.sum())
        fixed += int(failed.sum()) - int(retry.mask(merged).sum())
        write_parquet_atomic(path, merged.cast(schema), row_group_size)
        if progress is not None:
            progress(len(ids))
    left = retry.count(manifest.shard_files(directory))
    previous = manifest.extra.get("retries", [])
    extra = manifest.extra | {
        "retries": [*previous, {"tried": tried, "made": fixed, "failed": left}],
    }
    timings = manifest.timings | {"retry_s": round(time.perf_counter() - started, 4)}
    updated = replace(
        manifest,
        counts=manifest.counts | {"failed": left},
        timings=timings,
        created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        extra=extra,
    )
    updated.write(directory)
    return replace(updated, retried=extra["retries"][-1])
