"""Atomic file writes: a crash leaves either the old file, the complete new one, or a temp file."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq


def _tmp(path: Path) -> Path:
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


@contextmanager
def _committed(path: Path, tmp: Path) -> Iterator[None]:
    """A failed write (disk full, file too large, read-only) leaves no temp file behind and names
    the file it was writing: pyarrow's errors name none."""
    try:
        yield
    except OSError as e:
        tmp.unlink(missing_ok=True)
        if e.filename:
            raise
        raise OSError(e.errno, str(e.strerror or e), str(path)) from e
    os.replace(tmp, path)


def write_bytes_atomic(path: Path, data: bytes) -> None:
    tmp = _tmp(path)
    with _committed(path, tmp), open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def write_json_atomic(path: Path, obj: Any) -> None:
    write_bytes_atomic(path, orjson.dumps(obj, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")


def write_parquet_atomic(path: Path, table: pa.Table, row_group_size: int | None = None) -> None:
    """Write Parquet under a temporary name, fsync, then rename: readers never see half a shard."""
    tmp = _tmp(path)
    with _committed(path, tmp):
        if table.num_rows:
            pq.write_table(table, tmp, compression="zstd", row_group_size=row_group_size)
        else:  # no row group at all: `datasets` cannot read a row group of 0 rows
            pq.ParquetWriter(tmp, table.schema, compression="zstd").close()
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())


def fingerprint(paths: Iterable[Path | str], extra: bytes = b"") -> str:
    """Content hash of input files (and directory trees), for the manifest and for resume checks."""
    h = hashlib.blake2b(digest_size=16)
    for p in sorted(Path(p) for p in paths):
        files = (
            sorted(q for q in p.rglob("*") if q.is_file() and ".work" not in q.parts) if p.is_dir() else [p]
        )
        for q in files:
            h.update(str(q.relative_to(p) if p.is_dir() else q.name).encode())
            with open(q, "rb") as f:
                while chunk := f.read(1 << 20):
                    h.update(chunk)
    h.update(extra)
    return h.hexdigest()


def read_parquet(path: Path | str, columns: list[str] | None = None) -> pa.Table:
    """One Parquet file as a table: as ``pq.read_table`` reads it, without its dataset layer (which
    imports pyarrow.dataset, and with it pandas: 0.3 s of a stage's start)."""
    with pq.ParquetFile(path) as f:
        return f.read(columns=columns)


def parquet_rows(files: Iterable[Path | str]) -> list[int]:
    """Rows of each Parquet file, from its footer (nothing else is read)."""
    return [pq.read_metadata(f).num_rows for f in files]
