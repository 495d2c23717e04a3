"""The rows a site shows, read from Parquet a batch at a time: the filter's columns for the whole
table, then the shown rows only, turned into Python objects one page at a time."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hoidata.show.filters import Condition, matching_rows, resolve_path

BATCH = 512  # rows decoded at a time while streaming a shard


class Rows:
    """Parquet files read as one sequence of rows (a dataset's shards, or its rejects file)."""

    def __init__(self, files: list[Path]) -> None:
        self.files = [f for f in files if f.is_file()]
        self.counts = [pq.ParquetFile(f).metadata.num_rows for f in self.files]
        self.schema = pq.read_schema(self.files[0]) if self.files else pa.schema([])

    @property
    def total(self) -> int:
        return sum(self.counts)

    def select(self, conditions: list[Condition], limit: int | None) -> np.ndarray:
        """Row numbers (over all files) meeting every condition, the first ``limit`` of them."""
        if not conditions:
            n = self.total if limit is None else min(limit, self.total)
            return np.arange(n, dtype=np.int64)
        paths = [(resolve_path(self.schema, c.field), c) for c in conditions]
        columns = sorted({p[0] for p, _ in paths})
        keep = [matching_rows(pq.read_table(f, columns=columns), paths) for f in self.files]
        rows = np.flatnonzero(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
        return rows if limit is None else rows[:limit]

    def pages(
        self, rows: np.ndarray, size: int, columns: list[str] | None = None
    ) -> Iterator[list[dict[str, Any]]]:
        """The rows numbered ``rows`` (increasing), ``size`` at a time, as Python dicts."""
        columns = [c for c in columns if c in self.schema.names] if columns is not None else None
        page: list[dict[str, Any]] = []
        start = 0
        for file, count in zip(self.files, self.counts, strict=True):
            local = rows[(rows >= start) & (rows < start + count)] - start
            start += count
            if not len(local):
                continue
            offset = 0
            for batch in pq.ParquetFile(file).iter_batches(batch_size=BATCH, columns=columns):
                inside = local[(local >= offset) & (local < offset + batch.num_rows)] - offset
                offset += batch.num_rows
                if len(inside):
                    page.extend(batch.take(pa.array(inside)).to_pylist())
                while len(page) >= size:
                    yield page[:size]
                    page = page[size:]
                if offset > local[-1]:
                    break
        if page:
            yield page
