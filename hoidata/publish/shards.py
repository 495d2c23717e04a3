"""The repository tree's Parquet shards: each split's rows, images embedded, re-cut by a maximum size.

Shards are written in row batches (bounded memory), one row group per flush, with per-column options
that keep the bytes deterministic, so a re-run of an interrupted push produces the same files."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from hoidata.errors import HoidataError
from hoidata.publish.embed import Embedder
from hoidata.publish.source import Source, is_image_list, is_image_struct

ROW_GROUP_BYTES = 100 * 10**6  # uncompressed row-group cap: what `datasets` aims for (random access)
READ_ROWS = 64  # rows read per batch: with embedded images, a batch is a few tens of MB at most


@dataclass
class SplitStats:
    name: str
    rows: int = 0
    num_bytes: int = 0  # Arrow (in-memory) size, as `datasets` records num_bytes
    files: list[Path] = field(default_factory=list)


class ShardWriter:
    """Writes one split's rows into shards of at most ``max_size`` bytes (one row group per flush).

    Shards go to temporary names, because the ``-of-0000n`` total is only known at the end."""

    def __init__(self, data_dir: Path, split: str, schema: pa.Schema, leaves: list[str], max_size: int):
        self.dir, self.split, self.schema, self.max_size = data_dir, split, schema, max_size
        self.stats = SplitStats(split)
        image_leaves = {
            leaf
            for f in schema
            if is_image_struct(f.type) or is_image_list(f.type)
            for leaf in leaves
            if leaf.split(".")[0] == f.name and leaf.endswith(".bytes")
        }
        # image bytes are compressed already: store them plain (fast, and chunk-dedup friendly on the Hub)
        self.options: dict[str, Any] = {
            "compression": {leaf: "none" if leaf in image_leaves else "zstd" for leaf in leaves},
            "use_dictionary": [leaf for leaf in leaves if leaf not in image_leaves],
            "column_encoding": dict.fromkeys(image_leaves, "PLAIN"),
            "use_content_defined_chunking": True,
            "write_page_index": True,
        }
        self.pending: list[pa.RecordBatch] = []
        self.pending_bytes = 0
        self.parts: list[Path] = []
        self.fh: Any = None
        self.writer: pq.ParquetWriter | None = None
        self.shard_rows = 0
        self.limit = min(ROW_GROUP_BYTES, max_size)

    def add(self, batch: pa.RecordBatch) -> None:
        self.pending.append(batch)
        self.pending_bytes += batch.nbytes
        self.stats.rows += batch.num_rows
        self.stats.num_bytes += batch.nbytes
        if self.pending_bytes >= self.limit:
            self._flush()

    def _open(self) -> None:
        self._close()
        part = self.dir / f".{self.split}-{len(self.parts):05d}.partial"
        self.parts.append(part)
        self.fh = open(part, "wb")  # noqa: SIM115 - closed in _close
        self.writer = pq.ParquetWriter(self.fh, self.schema, **self.options)
        self.shard_rows = 0

    def _close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.fh.close()
            self.writer = self.fh = None

    def _flush(self) -> None:
        if not self.pending:
            return
        table = pa.Table.from_batches(self.pending, self.schema)
        if self.writer is None or (self.shard_rows and self.fh.tell() + table.nbytes > self.max_size):
            self._open()
        assert self.writer is not None
        self.writer.write_table(table, row_group_size=table.num_rows)
        self.shard_rows += table.num_rows
        self.pending, self.pending_bytes = [], 0

    def finish(self) -> SplitStats:
        self._flush()
        if self.writer is None:  # no rows at all: one shard without row groups
            self._open()
        self._close()
        n = len(self.parts)
        for i, part in enumerate(self.parts):
            final = self.dir / f"{self.split}-{i:05d}-of-{n:05d}.parquet"
            os.replace(part, final)
            self.stats.files.append(final)
        return self.stats


def embedded_batches(
    src: Source, files: list[Path], schema: pa.Schema, embed: Embedder
) -> Iterator[pa.RecordBatch]:
    """The rows of one split's input shards, in order, with their images embedded."""
    for file in files:
        try:
            pfile = pq.ParquetFile(file)
        except (pa.ArrowInvalid, OSError) as e:
            raise HoidataError(f"unreadable Parquet shard: {e}", file=str(file)) from e
        if not pfile.schema_arrow.remove_metadata().equals(schema.remove_metadata()):
            raise HoidataError("its columns differ from the dataset's first shard", file=str(file))
        row = 0
        for batch in pfile.iter_batches(batch_size=READ_ROWS, use_threads=False):
            yield embed.batch(batch, schema, src.image_root, file, row)
            row += batch.num_rows
