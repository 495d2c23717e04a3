"""The official anno_bbox.mat reader, on small files written the way MATLAB stores them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
import scipy.io
from mat_fixture import hoi_id, list_action, upt, write_mat
from source_batches import assert_same_arrays

from hoidata.errors import HoidataError, RecordError
from hoidata.schemas.boxes import BoxOrigin
from hoidata.schemas.taxonomy import hico_det
from hoidata.sources.base import SourceBatch
from hoidata.sources.hico import read_hico, read_upt
from hoidata.sources.hico_mat import _image_array, _parse_image, read_mat

ONE = BoxOrigin.ONE_BASED
H = [208, 33, 427, 300]  # one person, repeated in two hois of image 0
H2 = [10, 20, 110, 220]
O1 = [59, 98, 572, 405]
O2 = [300, 40, 350, 90]

RIDE_BIKE = hoi_id("ride", "bicycle")
HOLD_BIKE = hoi_id("hold", "bicycle")
EAT_PIZZA = hoi_id("eat", "pizza")

# image 0: C=1 and C=2 connections sharing H, plus an invisible hoi; image 1: invisible only;
# image 2: a single hoi (a (1, 1) hoi array) with a single box each.
CLEAN: list[dict[str, Any]] = [
    {
        "filename": "HICO_test2015_00000001.jpg",
        "size": (640, 480),
        "hois": [
            {"id": RIDE_BIKE, "h": [H], "o": [O1], "conn": [[1, 1]]},
            {"id": HOLD_BIKE, "h": [H2, H], "o": [O1, O2], "conn": [[2, 1], [1, 2]]},
            {"id": EAT_PIZZA, "invis": 1},
        ],
    },
    {
        "filename": "HICO_test2015_00000002.jpg",
        "size": (500, 375),
        "hois": [
            {"id": 1, "invis": 1},
            {"id": 2, "invis": 1},
        ],
    },
    {
        "filename": "HICO_test2015_00000003.jpg",
        "size": (800, 600),
        "hois": [
            {"id": EAT_PIZZA, "h": [[1, 2, 3, 4]], "o": [[5, 6, 7, 8]], "conn": [[1, 1]]},
        ],
    },
]
FAULTY: list[dict[str, Any]] = [
    {
        "filename": "bad_connection.jpg",
        "size": (640, 480),
        "hois": [
            {"id": RIDE_BIKE, "h": [H], "o": [O1], "conn": [[1, 1]]},
            {"id": HOLD_BIKE, "h": [H], "o": [O1], "conn": [[1, 1], [1, 2]]},  # object 2 does not exist
        ],
    },
    {
        "filename": "bad_id.jpg",
        "size": (640, 480),
        "hois": [
            {"id": 0, "h": [H], "o": [O1], "conn": [[1, 1]]},
        ],
    },
    {
        "filename": "bad_boxes.jpg",
        "size": (640, 480),
        "hois": [
            {"id": RIDE_BIKE, "h": np.array([[1.0, 2.0, 3.0, 4.0]]), "o": [O1], "conn": [[1, 1]]},
        ],
    },
    {
        "filename": "HICO_test2015_00000009.jpg",
        "size": (320, 240),
        "hois": [
            {"id": RIDE_BIKE, "h": [H2], "o": [O2], "conn": [[1, 1]]},
        ],
    },
]


def pairs_of(batch: SourceBatch, i: int) -> list[tuple[list[float], list[float], str, str, int]]:
    """Record i's pairs as (human box, object box, verb, object, hoi id), from the instance arrays."""
    tax = hico_det()
    a, b = batch.pair_offsets[i], batch.pair_offsets[i + 1]
    base = batch.inst_offsets[i]
    out = []
    for k in range(a, b):
        s, o = base + batch.subjects[k], base + batch.objects[k]
        assert batch.labels[s] == tax.human_object_id
        assert batch.labels[o] == tax.hoi_object[batch.hois[k]]
        assert batch.verbs[k] == tax.hoi_verb[batch.hois[k]]
        out.append(
            (
                batch.boxes[s].tolist(),
                batch.boxes[o].tolist(),
                tax.verbs[batch.verbs[k]],
                tax.objects[batch.labels[o]],
                int(batch.hois[k]),
            )
        )
    return out


@pytest.fixture(scope="module")
def clean_mat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Written once: savemat of the 600-row list_action is the slow part of these tests."""
    return write_mat(tmp_path_factory.mktemp("mat") / "anno_bbox.mat", train=CLEAN[2:], test=CLEAN)


def test_fixture_is_faithful(clean_mat: Path) -> None:
    """The test file has the shapes and field order scipy shows for the real one."""
    mat = scipy.io.loadmat(str(clean_mat))
    bt = mat["bbox_test"]
    assert bt.shape == (1, 3) and bt.dtype.names == ("filename", "size", "hoi")
    assert bt[0, 0]["filename"].shape == (1,)
    assert bt[0, 0]["size"].shape == (1, 1)
    hois = bt[0, 0]["hoi"]
    assert hois.shape == (1, 3)
    assert hois.dtype.names == ("id", "bboxhuman", "bboxobject", "connection", "invis")
    assert hois[0, 0]["bboxhuman"].dtype.names == ("x1", "x2", "y1", "y2")
    assert hois[0, 0]["connection"].shape == (1, 2)
    assert hois[0, 1]["connection"].shape == (2, 2)
    assert hois[0, 2]["bboxhuman"].shape == (0, 0)
    assert bt[0, 2]["hoi"].shape == (1, 1)
    assert mat["list_action"].shape == (600, 1)


def test_read_clean_test_split(clean_mat: Path) -> None:
    batch = read_mat(clean_mat, "test", ONE)
    assert (batch.source, batch.layout, batch.box_origin) == ("hico-det", "mat", ONE)
    assert len(batch) == 3
    assert batch.errors == [None, None, None]
    assert batch.file_names == [s["filename"] for s in CLEAN]
    assert batch.keys == ["HICO_test2015_00000001", "HICO_test2015_00000002", "HICO_test2015_00000003"]
    assert batch.widths.tolist() == [640, 500, 800] and batch.heights.tolist() == [480, 375, 600]
    assert batch.pair_offsets.tolist() == [0, 3, 3, 4]  # invisible hois give no pairs; image 1 kept
    # image 0: H appears in both visible hois but is one instance; connection [2, 1] is H (2nd human) → O1
    assert batch.inst_offsets.tolist() == [0, 4, 4, 6]
    assert batch.boxes[:4].tolist() == [H, O1, H2, O2]
    person, bicycle = hico_det().human_object_id, hico_det().objects.index("bicycle")
    assert batch.labels[:4].tolist() == [person, bicycle, person, bicycle]
    assert batch.subjects[:3].tolist() == [0, 0, 2] and batch.objects[:3].tolist() == [1, 1, 3]
    assert pairs_of(batch, 0) == [
        (H, O1, "ride", "bicycle", RIDE_BIKE - 1),
        (H, O1, "hold", "bicycle", HOLD_BIKE - 1),
        (H2, O2, "hold", "bicycle", HOLD_BIKE - 1),
    ]
    assert pairs_of(batch, 1) == []
    # fields are stored x1, x2, y1, y2: read by name into [x1, y1, x2, y2]
    assert pairs_of(batch, 2) == [([1, 2, 3, 4], [5, 6, 7, 8], "eat", "pizza", EAT_PIZZA - 1)]
    assert batch.boxes.dtype == np.float64 and batch.boxes.shape == (6, 4)
    for arr in (batch.labels, batch.subjects, batch.objects, batch.verbs, batch.hois):
        assert arr.dtype == np.int64


def test_train_split_is_its_own_variable(clean_mat: Path) -> None:
    batch = read_mat(clean_mat, "train", BoxOrigin.ZERO_BASED)
    assert batch.file_names == ["HICO_test2015_00000003.jpg"] and batch.box_origin == BoxOrigin.ZERO_BASED
    assert batch.boxes.tolist() == [[1, 2, 3, 4], [5, 6, 7, 8]]  # passed through; convert applies the origin


def test_record_faults_are_marked_and_others_survive(tmp_path: Path) -> None:
    path = write_mat(tmp_path / "anno_bbox.mat", test=CLEAN + FAULTY)
    batch = read_mat(path, "test", ONE)
    assert len(batch) == 7
    assert batch.errors[:3] == [None, None, None] and batch.errors[6] is None
    conn, bad_id, boxes = batch.errors[3:6]
    assert isinstance(conn, RecordError) and conn.field == "hoi[1].connection"
    assert "object index 2" in conn.reason and "1..1" in conn.reason
    assert bad_id == RecordError("hoi[0].id", "0 is outside 1..600")
    assert isinstance(boxes, RecordError) and boxes.field == "hoi[0].bboxhuman"
    # rejected records keep no pairs or instances, and no name: their key is their position
    assert batch.pair_offsets.tolist() == [0, 3, 3, 4, 4, 4, 4, 5]
    assert batch.inst_offsets.tolist() == [0, 4, 4, 6, 6, 6, 6, 8]
    assert batch.file_names[3:6] == ["", "", ""] and batch.keys[3:6] == ["#3", "#4", "#5"]
    assert batch.widths.tolist()[3:] == [-1, -1, -1, 320]
    assert pairs_of(batch, 6) == [(H2, O2, "ride", "bicycle", RIDE_BIKE - 1)]
    # the raw record still shows what was in the file
    raw = orjson.loads(batch.raw(3))
    assert raw["filename"] == "bad_connection.jpg"
    assert raw["hoi"][1]["connection"] == [[1, 1], [1, 2]]
    assert raw["hoi"][1]["bboxobject"] == [{"x1": O1[0], "x2": O1[2], "y1": O1[1], "y2": O1[3]}]


def test_squeezed_shapes_read_the_same(clean_mat: Path) -> None:
    """Singletons collapsed (0-d hoi and boxes, (2,) connection, (0,) empties) parse to the same pairs."""
    plain = _image_array(clean_mat, "bbox_test", scipy.io.loadmat(str(clean_mat)))
    squeezed = _image_array(clean_mat, "bbox_test", scipy.io.loadmat(str(clean_mat), squeeze_me=True))
    assert squeezed[2]["hoi"].shape == () and squeezed[0]["hoi"][0]["connection"].shape == (2,)
    for a, b in zip(plain, squeezed, strict=True):
        assert _parse_image(a, 600) == _parse_image(b, 600)


def test_raw_is_readable_json(clean_mat: Path) -> None:
    batch = read_mat(clean_mat, "test", ONE)
    raw = orjson.loads(batch.raw(0))
    assert raw["filename"] == "HICO_test2015_00000001.jpg"
    assert raw["size"] == {"width": 640, "height": 480, "depth": 3}
    assert [h["id"] for h in raw["hoi"]] == [RIDE_BIKE, HOLD_BIKE, EAT_PIZZA]
    assert raw["hoi"][0]["connection"] == [[1, 1]] and raw["hoi"][0]["invis"] == 0
    assert raw["hoi"][2] == {"id": EAT_PIZZA, "bboxhuman": [], "bboxobject": [], "connection": [], "invis": 1}
    assert len(orjson.loads(batch.raw(2))["hoi"]) == 1


def test_matches_upt_reader(tmp_path: Path, clean_mat: Path) -> None:
    """The same content in the mat and UPT layouts gives the same arrays."""
    mat = read_mat(clean_mat, "test", ONE)
    ref = read_upt(tmp_path / "upt.json", upt(CLEAN), ONE)
    assert mat.file_names == ref.file_names and mat.keys == ref.keys and mat.errors == ref.errors
    assert_same_arrays(mat, ref)


def test_read_hico_detects_the_mat_layout(clean_mat: Path) -> None:
    batch = read_hico(clean_mat, split="test")
    assert batch.layout == "mat" and batch.box_origin == ONE and len(batch) == 3


@pytest.mark.parametrize("split", ["", "val", "Test", "bbox_test"])
def test_unknown_split(clean_mat: Path, split: str) -> None:
    with pytest.raises(HoidataError, match="expected split 'train'"):
        read_mat(clean_mat, split, ONE)


def test_missing_variable(tmp_path: Path) -> None:
    path = write_mat(tmp_path / "anno_bbox.mat", train=CLEAN, actions=False)
    with pytest.raises(HoidataError) as e:
        read_mat(path, "test", ONE)
    assert e.value.field == "bbox_test" and e.value.file == str(path)
    assert "bbox_train" in str(e.value)


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(HoidataError, match="file not found"):
        read_mat(tmp_path / "nope.mat", "test", ONE)
    with pytest.raises(HoidataError, match="directory"):
        read_mat(tmp_path, "test", ONE)
    junk = tmp_path / "junk.mat"
    junk.write_bytes(b"not a mat file at all")
    with pytest.raises(HoidataError, match="not a MATLAB"):
        read_mat(junk, "test", ONE)
    broken = tmp_path / "broken.mat"
    broken.write_bytes(write_mat(tmp_path / "ok.mat", test=CLEAN, actions=False).read_bytes()[:300])
    with pytest.raises(HoidataError) as e:
        read_mat(broken, "test", ONE)
    assert e.value.file == str(broken) and "\n" not in str(e.value)


def test_list_action_must_be_ours(tmp_path: Path) -> None:
    tax = hico_det()
    pairs = [(tax.verbs[v], tax.objects[o]) for v, o in zip(tax.hoi_verb, tax.hoi_object, strict=True)]
    swapped = pairs.copy()
    swapped[4], swapped[5] = pairs[5], pairs[4]
    path = write_mat(tmp_path / "swapped.mat", test=CLEAN, actions=list_action(swapped))
    with pytest.raises(HoidataError, match="row 5") as e:
        read_mat(path, "test", ONE)
    assert e.value.field == "list_action"
    short = write_mat(tmp_path / "short.mat", test=CLEAN, actions=list_action(pairs[:599]))
    with pytest.raises(HoidataError, match="599 rows"):
        read_mat(short, "test", ONE)
    # spaces for underscores are the same name; no list_action at all is accepted
    spaced = [(v.replace("_", " "), o.replace("_", " ")) for v, o in pairs]
    assert (
        len(
            read_mat(write_mat(tmp_path / "spaced.mat", test=CLEAN, actions=list_action(spaced)), "test", ONE)
        )
        == 3
    )
    assert len(read_mat(write_mat(tmp_path / "none.mat", test=CLEAN, actions=False), "test", ONE)) == 3


def test_empty_split(tmp_path: Path) -> None:
    batch = read_mat(write_mat(tmp_path / "anno_bbox.mat", test=[], actions=False), "test", ONE)
    assert len(batch) == 0 and batch.pair_offsets.tolist() == [0] and batch.boxes.shape == (0, 4)
