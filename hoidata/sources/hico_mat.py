"""The official HICO-DET ``anno_bbox.mat``, read with ``scipy.io.loadmat`` (no squeeze).

The file is nested MATLAB structs (image → hoi → boxes), so records are walked in Python; the
result is flattened to per-pair arrays and handed to :func:`instances_from_pairs`, exactly as
the UPT reader does, so both layouts give the same :class:`SourceBatch` for the same content.

The file: ``bbox_train``/``bbox_test`` are (1, N) structs with fields (filename, size, hoi);
``hoi`` is a (1, K) struct (id, bboxhuman, bboxobject, connection, invis); boxes are (1, M)
structs whose fields are stored x1, x2, y1, y2 and are read by name; ``connection`` is (C, 2)
1-based [human, object] indices into that hoi's own box lists. Boxes stay 1-based inclusive
here; the convert stage applies ``box_origin``.

Record-level faults (bad id, connection out of range, malformed struct) mark the record with a
:class:`RecordError` naming e.g. ``hoi[3].connection`` (hoi index 0-based) and give it no pairs.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hoidata.errors import HoidataError, RecordError
from hoidata.schemas.boxes import BoxOrigin
from hoidata.schemas.taxonomy import hico_det
from hoidata.sources.base import SourceBatch, dumps, offsets_from_counts, sample_keys
from hoidata.sources.instances import instances_from_pairs

SPLIT_VARS = {"train": "bbox_train", "test": "bbox_test"}
IMAGE_FIELDS = ("filename", "size", "hoi")
HOI_FIELDS = ("id", "bboxhuman", "bboxobject", "connection")  # invis is optional: absent means visible
BOX_FIELDS = ("x1", "y1", "x2", "y2")  # output order; the file stores x1, x2, y1, y2
LIST_FIELDS = frozenset({"hoi", "bboxhuman", "bboxobject"})  # shown as lists in raw() even when 1 long


class _Fault(Exception):
    """A record-level fault found while walking one image; becomes a RecordError."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field, self.reason = field, reason


@dataclass(slots=True)
class _Image:
    """One image's parsed content: its size and its visible pairs, boxes as [x1, y1, x2, y2]."""

    filename: str
    width: int
    height: int
    boxes_h: list[list[float]]
    boxes_o: list[list[float]]
    hoi_ids: list[int]  # 0-based HOI class of each pair


def read_mat(path: Path, split: str, box_origin: BoxOrigin) -> SourceBatch:
    """Read the ``split`` ("train" or "test") images of an official ``anno_bbox.mat``."""
    path = Path(path)
    var = SPLIT_VARS.get(split)
    if var is None:
        raise HoidataError(
            f"anno_bbox.mat holds both splits: expected split 'train' (bbox_train) or 'test' (bbox_test), "
            f"got {split!r}",
            file=str(path),
        )
    mat = _load(path, var)
    if "list_action" in mat:
        check_list_action(path, mat["list_action"])
    images = _image_array(path, var, mat)
    n = len(images)
    n_hois = hico_det().num_hois

    errors: list[RecordError | None] = [None] * n
    parsed: list[_Image | None] = [None] * n
    for i in range(n):
        try:
            parsed[i] = _parse_image(images[i], n_hois)
        except _Fault as f:
            errors[i] = RecordError(f.field, f.reason)

    counts = [len(p.hoi_ids) if p is not None else 0 for p in parsed]
    good = [p for p in parsed if p is not None]
    boxes_h = _boxes([b for p in good for b in p.boxes_h])
    boxes_o = _boxes([b for p in good for b in p.boxes_o])
    hois = np.array([h for p in good for h in p.hoi_ids], dtype=np.int64)
    tax = hico_det()
    arrays = instances_from_pairs(
        offsets_from_counts(counts), boxes_h, boxes_o, tax.hoi_object[hois], tax.hoi_verb[hois], hois
    )
    names = [p.filename if p is not None else "" for p in parsed]
    widths = np.array([p.width if p is not None else -1 for p in parsed], dtype=np.int64)
    heights = np.array([p.height if p is not None else -1 for p in parsed], dtype=np.int64)

    def raw(i: int) -> str:
        return dumps(_plain(images[i]))

    return SourceBatch(
        source="hico-det",
        source_file=str(path),
        layout="mat",
        box_origin=BoxOrigin(box_origin),
        file_names=names,
        keys=sample_keys(names),
        widths=widths,
        heights=heights,
        errors=errors,
        raw=raw,
        **arrays,
    )


def _load(path: Path, var: str) -> dict[str, Any]:
    """Load only the variables we use; every failure is one line naming the file."""
    import scipy.io  # a quarter second to import: only a .mat conversion pays for it

    try:
        with open(path, "rb") as fh:
            head = fh.read(128)
    except FileNotFoundError:
        raise HoidataError("file not found", file=str(path)) from None
    except IsADirectoryError:
        raise HoidataError("is a directory, expected anno_bbox.mat", file=str(path)) from None
    except OSError as e:
        raise HoidataError(f"cannot read: {e.strerror}", file=str(path)) from None
    if not head.startswith(b"MATLAB"):
        raise HoidataError("not a MATLAB .mat file (no 'MATLAB' header)", file=str(path))
    try:
        mat = scipy.io.loadmat(str(path), variable_names=[var, "list_action"])
    except NotImplementedError:  # scipy's answer to v7.3 files
        raise HoidataError(
            "MATLAB v7.3 (HDF5) files are not supported: re-save with save(..., '-v7')", file=str(path)
        ) from None
    except Exception as e:  # scipy raises many types (MatReadError, ValueError, OSError…) on bad files
        msg = " ".join(str(e).split()) or type(e).__name__
        raise HoidataError(f"cannot read as a MATLAB file: {msg}", file=str(path)) from None
    if var not in mat:
        try:
            present = [name for name, _, _ in scipy.io.whosmat(str(path))]
        except Exception:
            present = []
        has = f" (the file has: {', '.join(present)})" if present else ""
        raise HoidataError(f"no variable {var!r} in the file{has}", file=str(path), field=var)
    return mat


def _image_array(path: Path, var: str, mat: dict[str, Any]) -> np.ndarray:
    """The split's image structs as a 1-D array, in MATLAB's linear (column-major) order."""
    arr = mat[var]
    names = getattr(getattr(arr, "dtype", None), "names", None)
    if not isinstance(arr, np.ndarray) or names is None:
        raise HoidataError("expected a struct array of images", file=str(path), field=var)
    missing = [f for f in IMAGE_FIELDS if f not in names]
    if missing:
        raise HoidataError(
            f"the image struct lacks field(s) {', '.join(missing)}; it has {', '.join(names)}",
            file=str(path),
            field=var,
        )
    return arr.ravel(order="F")


def check_list_action(path: Path, la: Any) -> None:
    """Refuse a file whose 600 actions are not ours: its hoi ids would mean other classes."""
    tax = hico_det()
    names = getattr(getattr(la, "dtype", None), "names", None)
    if not isinstance(la, np.ndarray) or names is None or not {"vname", "nname"} <= set(names):
        raise HoidataError(
            "expected a struct array with fields vname and nname", file=str(path), field="list_action"
        )
    rows = la.ravel(order="F")
    if len(rows) != tax.num_hois:
        raise HoidataError(
            f"has {len(rows)} rows, expected {tax.num_hois}", file=str(path), field="list_action"
        )
    for k in range(len(rows)):
        want = (tax.verbs[tax.hoi_verb[k]], tax.objects[tax.hoi_object[k]])
        try:
            got = (_string(rows[k]["vname"]), _string(rows[k]["nname"]))
        except ValueError:
            got = None
        if got is None or tuple(_norm(s) for s in got) != tuple(_norm(s) for s in want):
            raise HoidataError(
                f"row {k + 1} is {got!r}, the HICO-DET taxonomy has {want!r} (verb, object): "
                "not the official action list",
                file=str(path),
                field="list_action",
            )


def _norm(name: str) -> str:
    return "_".join(name.strip().lower().replace("_", " ").split())


def _parse_image(rec: Any, n_hois: int) -> _Image:
    """Validate one image struct and collect its visible pairs; raises _Fault on a record fault."""
    field = "filename"
    try:
        filename = _string(rec["filename"])
        if not filename:
            raise _Fault("filename", "empty")
        field = "size"
        size = _struct(rec["size"], ("width", "height"), "size")
        if len(size) != 1:
            raise _Fault("size", f"expected one (width, height, depth) struct, got {len(size)}")
        width, height = _int(size[0]["width"]), _int(size[0]["height"])
        if width <= 0 or height <= 0:
            raise _Fault("size", f"expected a positive width and height, got {width} × {height}")
        field = "hoi"
        boxes_h: list[list[float]] = []
        boxes_o: list[list[float]] = []
        hoi_ids: list[int] = []
        for k, hoi in _hois(rec["hoi"]):
            field = f"hoi[{k}].id"
            hid = _int(hoi["id"])
            if not 1 <= hid <= n_hois:
                raise _Fault(field, f"{hid} is outside 1..{n_hois}")
            field = f"hoi[{k}].invis"
            invis = _int(hoi["invis"]) if "invis" in hoi.dtype.names and np.size(hoi["invis"]) else 0
            if invis not in (0, 1):
                raise _Fault(field, f"expected 0 or 1, got {invis}")
            if invis:
                continue  # invisible: no boxes, no pairs
            field = f"hoi[{k}].bboxhuman"
            bh = _box_list(hoi["bboxhuman"], field)
            field = f"hoi[{k}].bboxobject"
            bo = _box_list(hoi["bboxobject"], field)
            field = f"hoi[{k}].connection"
            for r, (h, o) in enumerate(_connection(hoi["connection"])):
                for which, idx, boxes in (("human", h, bh), ("object", o, bo)):
                    if not 1 <= idx <= len(boxes):
                        rng = f"1..{len(boxes)}" if boxes else "none: no boxes"
                        raise _Fault(field, f"row {r + 1}: {which} index {idx} is out of range ({rng})")
                boxes_h.append(bh[h - 1])
                boxes_o.append(bo[o - 1])
                hoi_ids.append(hid - 1)
    except (ValueError, TypeError, IndexError, KeyError, OverflowError) as e:
        raise _Fault(field, str(e) or type(e).__name__) from None
    return _Image(filename, width, height, boxes_h, boxes_o, hoi_ids)


def _hois(value: Any) -> Iterator[tuple[int, Any]]:
    """The hoi entries of one image; an empty numeric array means none."""
    if isinstance(value, np.ndarray) and value.dtype.names is None and value.size == 0:
        return iter(())
    hois = _struct(value, HOI_FIELDS, "hoi")
    return enumerate(hois)


def _struct(value: Any, fields: tuple[str, ...], what: str) -> np.ndarray:
    """A struct array as 1-D (column-major), after checking it has ``fields``."""
    value = _unwrap(value)
    names = value.dtype.names if isinstance(value, np.ndarray | np.void) else None
    if names is None:
        raise _Fault(what, f"expected a struct with fields {', '.join(fields)}, got {_describe(value)}")
    missing = [f for f in fields if f not in names]
    if missing:
        raise _Fault(what, f"struct lacks field(s) {', '.join(missing)}")
    return np.atleast_1d(value).ravel(order="F")


def _box_list(value: Any, field: str) -> list[list[float]]:
    """A (1, M) box struct as M lists [x1, y1, x2, y2]; fields read by name (stored x1, x2, y1, y2)."""
    if isinstance(value, np.ndarray) and value.dtype.names is None and value.size == 0:
        return []
    out = []
    for j, b in enumerate(_struct(value, BOX_FIELDS, field)):
        box = []
        for c in BOX_FIELDS:
            x = _number(b[c])
            if not math.isfinite(x):
                raise _Fault(field, f"box {j + 1}: {c} is {x}")
            box.append(x)
        out.append(box)
    return out


def _connection(value: Any) -> list[tuple[int, int]]:
    """(C, 2) 1-based [human, object] rows; a lone pair in any shape is one row."""
    arr = np.asarray(_unwrap(value))
    if arr.size == 0:
        return []
    if arr.dtype.kind not in "iuf" and arr.dtype != np.bool_:
        raise ValueError(f"expected a numeric (C, 2) array, got {_describe(arr)}")
    if arr.size == 2:
        arr = arr.reshape(1, 2)
    arr = np.atleast_2d(arr)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"expected a (C, 2) array, got shape {arr.shape}")
    if arr.dtype.kind == "f" and not (np.isfinite(arr).all() and (arr == np.round(arr)).all()):
        raise ValueError("indices are not whole numbers")
    return [(int(h), int(o)) for h, o in arr.tolist()]


def _unwrap(value: Any) -> Any:
    """Strip the 1-element object arrays that loadmat wraps around cell and struct values."""
    while isinstance(value, np.ndarray) and value.dtype == object and value.size == 1:
        value = value.reshape(-1)[0]
    return value


def _scalar(value: Any) -> Any:
    """One number from a (1, 1) array (or any 1-element wrapping of it) as a Python scalar."""
    if type(value) is np.ndarray and value.size == 1 and value.dtype.kind in "iufb":
        return value.item()  # the common case, kept fast: a real file has ~10^6 of these
    value = _unwrap(value)
    if isinstance(value, np.ndarray):
        if value.size != 1:
            raise ValueError(f"expected one number, got {_describe(value)}")
        value = value.reshape(-1)[0]
    if isinstance(value, np.generic):
        value = value.item()
    return value


def _number(value: Any) -> float:
    v = _scalar(value)
    if isinstance(v, bool) or not isinstance(v, int | float):
        raise ValueError(f"expected a number, got {v!r}")
    return float(v)


def _int(value: Any) -> int:
    """One MATLAB number (any numeric class) as int; a double must be whole."""
    v = _scalar(value)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if not isinstance(v, int):  # bool (MATLAB logical) is accepted as 0/1
        raise ValueError(f"expected an integer, got {v!r}")
    return int(v)


def _string(value: Any) -> str:
    """A MATLAB char array as str ('' when empty)."""
    value = _unwrap(value)
    if isinstance(value, str):
        return value
    if isinstance(value, np.ndarray) and value.dtype.kind == "U":
        if value.size == 0:
            return ""
        if value.size == 1:
            return str(value.reshape(-1)[0])
    raise ValueError(f"expected a string, got {_describe(value)}")


def _describe(value: Any) -> str:
    if isinstance(value, np.ndarray):
        kind = "struct" if value.dtype.names else str(value.dtype)
        return f"{kind} array of shape {value.shape}"
    return type(value).__name__


def _boxes(rows: list[list[float]]) -> np.ndarray:
    return np.array(rows, dtype=np.float64).reshape(-1, 4)


def _plain(value: Any, name: str = "") -> Any:
    """A loadmat value as plain JSON-able data, for showing a rejected record to the user."""
    value = _unwrap(value) if name not in LIST_FIELDS else value
    if isinstance(value, np.void) and value.dtype.names:
        return {f: _plain(value[f], f) for f in value.dtype.names}
    if isinstance(value, np.ndarray):
        if value.dtype.names:
            items = [_plain(v) for v in value.ravel(order="F")]
            return items if name in LIST_FIELDS or len(items) != 1 else items[0]
        if value.dtype.kind == "U":
            return _string(value) if value.size <= 1 else value.tolist()
        if value.dtype == object:
            return [_plain(v) for v in value.ravel(order="F")]
        if value.dtype.kind == "f" and np.isfinite(value).all() and (value == np.round(value)).all():
            value = value.astype(np.int64)  # MATLAB doubles holding whole numbers: show 640, not 640.0
        if value.size == 1 and name != "connection":
            return value.reshape(-1)[0].item()
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value
