"""Write small, faithful HICO-DET ``anno_bbox.mat`` files for tests.

An image is described as a plain dict::

    {"filename": "a.jpg", "size": (640, 480),
     "hois": [{"id": 153, "h": [[x1, y1, x2, y2], ...], "o": [...], "conn": [[1, 1], ...]},
              {"id": 7, "invis": 1}]}

and written the way MATLAB stores it (docs/formats.md §1a'): numpy structured arrays of object
fields with explicit 2-D shapes, because an object array of dicts would be saved as a cell array.
Boxes are stored with fields in the file's order x1, x2, y1, y2. A value that is already an
``np.ndarray`` is written as is, so tests can plant malformed fields.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import scipy.io

from hoidata.schemas.taxonomy import hico_det

IMAGE_FIELDS = ("filename", "size", "hoi")
HOI_FIELDS = ("id", "bboxhuman", "bboxobject", "connection", "invis")
BOX_FIELDS = ("x1", "x2", "y1", "y2")  # the official file's field order


def struct(fields: tuple[str, ...], rows: list[dict[str, Any]], shape: tuple[int, int]) -> np.ndarray:
    """A MATLAB struct array: a structured array of object fields with an explicit 2-D shape."""
    arr = np.empty(shape, dtype=[(f, object) for f in fields])
    flat = arr.reshape(-1, order="F")  # a view: MATLAB's column-major linear order
    for j, row in enumerate(rows):
        for f in fields:
            flat[j][f] = row[f]
    return arr


def scalar(v: float, dtype: type = np.float64) -> np.ndarray:
    """A MATLAB scalar: (1, 1)."""
    return np.array([[v]], dtype=dtype)


def empty() -> np.ndarray:
    """What an invisible hoi holds in place of boxes and connection: a (0, 0) double."""
    return np.zeros((0, 0), dtype=np.float64)


def boxes(rows: Any) -> np.ndarray:
    """[x1, y1, x2, y2] boxes as a (1, M) struct with fields stored x1, x2, y1, y2 (uint16, as MATLAB)."""
    if isinstance(rows, np.ndarray):
        return rows
    recs = [
        {
            "x1": scalar(b[0], np.uint16),
            "x2": scalar(b[2], np.uint16),
            "y1": scalar(b[1], np.uint16),
            "y2": scalar(b[3], np.uint16),
        }
        for b in rows
    ]
    return struct(BOX_FIELDS, recs, (1, len(recs)))


def hoi(spec: dict[str, Any]) -> dict[str, Any]:
    """One hoi entry; invisible ones get (0, 0) empties, as in the real file."""
    hid = spec["id"] if isinstance(spec["id"], np.ndarray) else scalar(spec["id"])
    if spec.get("invis", 0):
        return {
            "id": hid,
            "bboxhuman": empty(),
            "bboxobject": empty(),
            "connection": empty(),
            "invis": scalar(1, np.uint8),
        }
    conn = spec["conn"] if isinstance(spec["conn"], np.ndarray) else np.array(spec["conn"], np.float64)
    return {
        "id": hid,
        "bboxhuman": boxes(spec["h"]),
        "bboxobject": boxes(spec["o"]),
        "connection": np.atleast_2d(conn),
        "invis": scalar(0, np.uint8),
    }


def image(spec: dict[str, Any]) -> dict[str, Any]:
    w, h = spec["size"]
    size = struct(
        ("width", "height", "depth"), [{"width": scalar(w), "height": scalar(h), "depth": scalar(3)}], (1, 1)
    )
    hois = [hoi(s) for s in spec["hois"]]
    return {
        "filename": np.array([spec["filename"]]),
        "size": size,
        "hoi": struct(HOI_FIELDS, hois, (1, len(hois))),
    }


def images(specs: list[dict[str, Any]]) -> np.ndarray:
    """A bbox_train / bbox_test variable: (1, N)."""
    return struct(IMAGE_FIELDS, [image(s) for s in specs], (1, len(specs)))


def list_action(pairs: list[tuple[str, str]] | None = None) -> np.ndarray:
    """The (600, 1) action list with (vname, nname) taken from our taxonomy unless given."""
    tax = hico_det()
    if pairs is None:
        pairs = [(tax.verbs[v], tax.objects[o]) for v, o in zip(tax.hoi_verb, tax.hoi_object, strict=True)]
    rows = [
        {
            "nname": np.array([o]),
            "vname": np.array([v]),
            "vname_ing": np.array([v + "ing"]),
            "syn": np.zeros((0, 0)),
        }
        for v, o in pairs
    ]
    return struct(("nname", "vname", "vname_ing", "syn"), rows, (len(rows), 1))


def write_mat(
    path: Path,
    train: list[dict[str, Any]] | None = None,
    test: list[dict[str, Any]] | None = None,
    actions: np.ndarray | bool = True,
) -> Path:
    """Write an anno_bbox.mat with whichever splits are given; ``actions=False`` leaves out list_action."""
    out: dict[str, Any] = {}
    if train is not None:
        out["bbox_train"] = images(train)
    if test is not None:
        out["bbox_test"] = images(test)
    if actions is True:
        out["list_action"] = list_action()
    elif isinstance(actions, np.ndarray):
        out["list_action"] = actions
    scipy.io.savemat(str(path), out)
    return path


def hoi_id(verb: str, obj: str) -> int:
    """The 1-based id of a (verb, object) HOI, as the .mat stores it."""
    tax = hico_det()
    return int(tax.hoi_lookup[tax.verbs.index(verb), tax.objects.index(obj)]) + 1


def upt(specs: list[dict[str, Any]]) -> dict[str, Any]:
    """The same images in the UPT/pocket JSON layout: one entry per connection row, in file order."""
    tax = hico_det()
    anns = []
    for s in specs:
        a: dict[str, list[Any]] = {"boxes_h": [], "boxes_o": [], "hoi": [], "object": [], "verb": []}
        for h in s["hois"]:
            if h.get("invis", 0):
                continue
            for hi, oi in h["conn"]:
                a["boxes_h"].append(list(h["h"][hi - 1]))
                a["boxes_o"].append(list(h["o"][oi - 1]))
                a["hoi"].append(h["id"] - 1)
                a["object"].append(int(tax.hoi_object[h["id"] - 1]))
                a["verb"].append(int(tax.hoi_verb[h["id"] - 1]))
        anns.append(a)
    return {
        "annotation": anns,
        "filenames": [s["filename"] for s in specs],
        "size": [list(s["size"]) for s in specs],
    }
