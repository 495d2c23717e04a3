"""Image bytes embedded into the published rows: read from files under the image root, original
bytes (never re-encoded), with a failure naming the shard, record and field."""

from __future__ import annotations

import io
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

from hoidata.errors import HoidataError
from hoidata.io.images import safe_relative_path
from hoidata.publish.source import is_image_list, is_image_struct


class Embedder:
    """Fills in image bytes from files under the image root, reading them on a thread pool."""

    def __init__(self, pool: ThreadPoolExecutor) -> None:
        self.pool = pool

    def batch(
        self, batch: pa.RecordBatch, schema: pa.Schema, root: Path | None, file: Path, row0: int
    ) -> pa.RecordBatch:
        columns = []
        for i, f in enumerate(schema):
            col = batch.column(i)
            if is_image_struct(f.type):
                rows = np.arange(row0, row0 + len(col))
                col = self._struct(col, root, file, rows, f.name)
            elif is_image_list(f.type):
                col = self._list(col, root, file, row0, f.name)
            columns.append(col)
        return pa.RecordBatch.from_arrays(columns, schema=schema)

    def _list(self, lst: pa.Array, root: Path | None, file: Path, row0: int, name: str) -> pa.Array:
        lengths = pc.fill_null(pc.list_value_length(lst), 0).to_numpy(zero_copy_only=False)
        values = lst.flatten()  # honours the slice offset and skips null lists
        rows = np.repeat(np.arange(row0, row0 + len(lst)), lengths)
        values = self._struct(values, root, file, rows, name)
        large = pa.types.is_large_list(lst.type)
        offsets = np.zeros(len(lst) + 1, dtype=np.int64 if large else np.int32)
        np.cumsum(lengths, out=offsets[1:])
        cls = pa.LargeListArray if large else pa.ListArray
        return cls.from_arrays(pa.array(offsets), values, type=lst.type, mask=lst.is_null())

    def _struct(self, arr: pa.Array, root: Path | None, file: Path, rows: np.ndarray, name: str) -> pa.Array:
        data = pc.struct_field(arr, "bytes")
        paths = pc.struct_field(arr, "path")
        has_bytes = pc.fill_null(pc.greater(pc.binary_length(data), 0), False)
        need = pc.and_(pc.is_valid(paths), pc.invert(has_bytes))
        idx = np.flatnonzero(need.to_numpy(zero_copy_only=False))
        if len(idx):
            names = paths.take(pa.array(idx)).to_pylist()
            blobs = list(self.pool.map(lambda p: _read_image(p, root), names))
            for k, (_, error) in enumerate(blobs):
                if error:
                    raise HoidataError(error, file=str(file), record=int(rows[idx[k]]), field=name)
            data = pc.replace_with_mask(data, need, pa.array([b for b, _ in blobs], data.type))
        absolute = pc.fill_null(pc.starts_with(paths, "/"), False)
        if pc.any(absolute).as_py():  # publish a file name, never a local directory
            paths = pc.if_else(absolute, pc.replace_substring_regex(paths, r"^.*/", ""), paths)
        return pa.StructArray.from_arrays(
            [data, paths], fields=[arr.type.field("bytes"), arr.type.field("path")], mask=arr.is_null()
        )


def _read_image(name: str, root: Path | None) -> tuple[bytes, str | None]:
    """The file's bytes, after a header check (a file PIL cannot open would not decode on the Hub)."""
    if name.startswith("/"):
        path = Path(name)
    else:
        rel = safe_relative_path(name)
        if rel is None:
            return b"", f"image path {name!r} escapes the image root"
        if root is None:
            return b"", (
                f"image {name!r} is not embedded and the manifest records no image root: pass --images DIR"
            )
        path = root / rel
    try:
        data = path.read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            im.size  # noqa: B018 - parses the header only
    except FileNotFoundError:
        hint = (
            "" if root is None or root.is_dir() else f" (the image root {root} does not exist: pass --images)"
        )
        return b"", f"image not found: {path}{hint}"
    except OSError as e:
        return b"", f"unreadable image {path}: {e}"
    return data, None
