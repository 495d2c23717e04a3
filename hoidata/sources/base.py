"""The flat, columnar form every reader produces, and the helpers readers share.

A reader keeps every input record (bad ones too, marked with an error), so that the convert
stage can account for each: records in = records out + records rejected.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.errors import HoidataError, RecordError
from hoidata.schemas.boxes import BoxOrigin


@dataclass(frozen=True, slots=True)
class QAItem:
    """One question/answer pair; boxes are in ``frame`` ("grid100" or "pixels") until converted."""

    task: str
    question: str
    answer: str
    question_boxes: list[list[float]] = field(default_factory=list)
    answer_boxes: list[list[float]] = field(default_factory=list)
    frame: str = "grid100"


@dataclass
class SourceBatch:
    """All records of one annotation file, as flat arrays with per-record offsets.

    Instances of record ``i`` are ``boxes[inst_offsets[i]:inst_offsets[i+1]]``; interactions likewise
    with ``pair_offsets``. Boxes are still in the file's pixel convention (``box_origin``).
    """

    source: str  # "hico-det" | "swig-hoi" | "hoi-qa"
    source_file: str
    layout: str
    box_origin: BoxOrigin
    file_names: list[str]
    keys: list[str]  # unique per record: becomes the sample id
    widths: np.ndarray  # int64, -1 where the annotation has no size
    heights: np.ndarray
    inst_offsets: np.ndarray
    boxes: np.ndarray  # (N, 4) float64
    labels: np.ndarray  # (N,) int64 taxonomy object ids
    pair_offsets: np.ndarray
    subjects: np.ndarray  # (M,) int64, index into the record's instances
    objects: np.ndarray  # (M,) int64, -1 for no object
    verbs: np.ndarray  # (M,) int64
    hois: np.ndarray  # (M,) int64, -1 where the file has none: derived from (verb, object)
    errors: list[RecordError | None]
    raw: Callable[[int], str]  # the original record i as JSON text, for rejects
    qa: list[list[QAItem]] | None = None
    label_names: list[str] | None = None  # free-text labels (HOI-QA), instead of taxonomy ids
    notes: list[str] = field(default_factory=list)  # told to the user in the summary
    instance_field: str = "instances"  # how the file names its instance list, for error messages
    pair_field: str = "interactions"
    # how the file names an item's fields in error messages: canonical name ("label", "verb", "hoi",
    # "subject", "object", "file_name") → the file's own (e.g. "category_id", "action_id")
    field_names: dict[str, str] = field(default_factory=dict)
    # for layouts whose instances or pairs are not one list per record (UPT): (kind "instance" or
    # "pair", global item index, canonical field) → the field's path in the record
    item_field: Callable[[str, int, str], str] | None = None
    verb_base: int = 0  # the file's first verb id (1 in PPDM), for error messages
    hoi_base: int = 0  # the file's first HOI id

    def field_name(self, name: str) -> str:
        return self.field_names.get(name, name)

    def __len__(self) -> int:
        return len(self.file_names)


def read_bytes(path: Path) -> bytes:
    """A JSON file's bytes without a byte order mark; a missing, unreadable or empty file is one line."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise HoidataError("file not found", file=str(path)) from None
    except IsADirectoryError:
        raise HoidataError("is a directory, expected a JSON file", file=str(path)) from None
    except OSError as e:
        raise HoidataError(f"cannot read: {e.strerror}", file=str(path)) from None
    if data.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark (Windows editors write one)
        data = data[3:]
    if not data.strip():
        raise HoidataError("the file is empty, expected JSON", file=str(path))
    return data


def read_json(path: Path) -> Any:
    """Parse a JSON file, turning every failure into one line that names the file."""
    data = read_bytes(path)
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as e:
        msg = str(e)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError as u:
            line = data.count(b"\n", 0, u.start) + 1
            col = u.start - (data.rfind(b"\n", 0, u.start) + 1) + 1
            hint = " (UTF-16?)" if data[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
            raise HoidataError(
                f"not valid UTF-8{hint}: byte 0x{data[u.start]:02x} at line {line} column {col}; "
                "save the file as UTF-8",
                file=str(path),
            ) from None
        if e.pos >= len(data.rstrip()) - 1:
            raise HoidataError(
                f"truncated JSON: ends at line {e.lineno} column {e.colno}", file=str(path)
            ) from None
        raise HoidataError(f"not valid JSON: {msg}", file=str(path)) from None


def dumps(obj: Any) -> str:
    return orjson.dumps(obj, option=orjson.OPT_SERIALIZE_NUMPY).decode()


def offsets_from_counts(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    out = np.zeros(len(counts) + 1, dtype=np.int64)
    np.cumsum(np.asarray(counts, dtype=np.int64), out=out[1:])
    return out


def as_box_array(flat: list[Any], what: str) -> np.ndarray:
    """A list of 4-number boxes as an (N, 4) float64 array; raises ValueError/TypeError if ragged."""
    if not flat:
        return np.zeros((0, 4), dtype=np.float64)
    arr = np.array(flat)
    if arr.ndim != 2 or arr.shape[1] != 4 or arr.dtype.kind not in "iuf":
        raise ValueError(f"{what} are not lists of 4 numbers")
    return arr.astype(np.float64, copy=False)


def int_array(values: list[Any]) -> np.ndarray:
    """Integers as int64; raises TypeError on anything else (floats, strings, None, bools)."""
    if not values:
        return np.zeros(0, dtype=np.int64)
    arr = np.array(values)
    if arr.dtype.kind not in "iu":
        raise TypeError("expected integers")
    return arr.astype(np.int64, copy=False)


def is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and -(2**62) < v < 2**62


def is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def is_box(v: Any) -> bool:
    return isinstance(v, list) and len(v) == 4 and all(is_number(x) for x in v)


def sample_keys(file_names: list[str]) -> list[str]:
    """The stable part of each sample id: the file name without its last extension (``a.b/c`` has
    none); a record without a name gets ``#<index>``. One Arrow call, not a Python loop."""
    keys = pc.replace_substring_regex(string_array(file_names), r"\.[^./]*$", "").to_pylist()
    if "" not in file_names:
        return keys
    return [k if f else f"#{i}" for i, (k, f) in enumerate(zip(keys, file_names, strict=True))]


# ---- Arrow arrays without pandas ---------------------------------------------------------------------
# pyarrow imports pandas (0.2-0.4 s) the first time ``pa.array(...)`` or ``Array.to_numpy()`` runs
# wherever pandas is installed (``datasets`` installs it); arrays built from and read through their
# buffers never do, so a data stage starts without it.


def _validity(nulls: np.ndarray | None) -> pa.Buffer | None:
    return pa.py_buffer(np.packbits(~nulls, bitorder="little")) if nulls is not None and nulls.any() else None


def arrow_array(values: np.ndarray, nulls: np.ndarray | None = None) -> pa.Array:
    """A numpy array of numbers or booleans as an Arrow array (``nulls``: where it is null)."""
    values = np.ascontiguousarray(values)
    if values.dtype == np.bool_:
        data, dtype = np.packbits(values, bitorder="little"), pa.bool_()
    else:
        data, dtype = values, pa.from_numpy_dtype(values.dtype)
    return pa.Array.from_buffers(dtype, len(values), [_validity(nulls), pa.py_buffer(data)])


def string_array(values: Sequence[str | None]) -> pa.Array:
    """Python strings (None: null) as an Arrow string array."""
    return binary_array([None if v is None else v.encode() for v in values], text=True)


def binary_array(values: Sequence[bytes | None], text: bool = False) -> pa.Array:
    """Bytes (None: null) as an Arrow binary array, or a string array (``text``: UTF-8 bytes)."""
    values = list(values)
    nulls = np.array([v is None for v in values], dtype=bool) if None in values else None
    present = values if nulls is None else [v for v in values if v is not None]
    lengths = np.zeros(len(values), dtype=np.int64)
    lengths[slice(None) if nulls is None else ~nulls] = np.fromiter(map(len, present), np.int64, len(present))
    offsets = np.concatenate([[0], np.cumsum(lengths)])
    large = pa.large_string() if text else pa.large_binary()
    buffers = [_validity(nulls), pa.py_buffer(offsets), pa.py_buffer(b"".join(present))]
    return pa.Array.from_buffers(large, len(values), buffers).cast(pa.string() if text else pa.binary())


def numpy_values(arr: pa.Array) -> np.ndarray:
    """The values of an Arrow array of numbers, as numpy (no copy); null slots hold whatever the
    buffer holds, so look at :func:`numpy_nulls` where there may be some."""
    dtype = np.dtype(arr.type.to_pandas_dtype())
    data = arr.buffers()[1]
    if data is None:  # an array of nulls only
        return np.zeros(len(arr), dtype)
    return np.frombuffer(data, dtype, len(arr), arr.offset * dtype.itemsize)


def one_array(column: pa.Array | pa.ChunkedArray) -> pa.Array:
    """A column as one Array: a single chunk as it is (``combine_chunks`` copies even one)."""
    if not isinstance(column, pa.ChunkedArray):
        return column
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def numbers(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """A column of numbers or booleans as numpy, as ``to_numpy(zero_copy_only=False)`` gives it
    (integers with nulls become float64 with NaN there; floats keep their type), through the buffers."""
    arr = one_array(column)
    if pa.types.is_boolean(arr.type):
        if arr.null_count:
            raise ValueError("a boolean column with nulls has no numpy form without objects")
        return _bits(arr, 1)
    values = numpy_values(arr)
    if not arr.null_count:
        return values
    out = values.astype(values.dtype if values.dtype.kind == "f" else np.float64)
    out[numpy_nulls(arr)] = np.nan
    return out


def numpy_nulls(arr: pa.Array) -> np.ndarray:
    """Where an Arrow array is null, as a numpy bool array."""
    bitmap = arr.buffers()[0]
    if not arr.null_count:
        return np.zeros(len(arr), dtype=bool)
    if bitmap is None:  # nulls without a bitmap: every slot is null
        return np.ones(len(arr), dtype=bool)
    return ~_bits(arr, 0)


def _bits(arr: pa.Array, buffer: int) -> np.ndarray:
    """An array's bitmap buffer (0: validity, 1: boolean values) as numpy bools, one per slot."""
    bitmap = arr.buffers()[buffer]
    if bitmap is None:  # an empty array may have no buffer
        return np.zeros(len(arr), dtype=bool)
    bits = np.unpackbits(np.frombuffer(bitmap, np.uint8), bitorder="little")
    return bits[arr.offset : arr.offset + len(arr)].astype(bool)
