"""``hoidata boxes``: union, refer and model-frame boxes computed from the canonical boxes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pytest

from hoidata.io import read_manifest, read_table
from hoidata.pipelines.boxes import BoxesConfig, add_boxes, boxes
from hoidata.profiles import get_profile
from hoidata.schemas.canonical import SCHEMA
from hoidata.sources.base import numbers


@pytest.fixture(scope="module")
def canonical(demo_canonical) -> Path:
    return demo_canonical(12)


@pytest.mark.parametrize("profile", ["qwen2-vl", "qwen2.5-vl", "qwen3-vl"])
def test_boxes_equal_their_definitions(canonical: Path, tmp_path: Path, profile: str) -> None:
    m = boxes(canonical, tmp_path / "b", BoxesConfig(profile=profile, union_pad=4, union_pad_ratio=0.1))
    assert m.counts == {"in": 11, "out": 11, "rejected": 0}
    p = get_profile(profile)
    for row in read_table(tmp_path / "b").to_pylist():
        w, h = row["width"], row["height"]
        rw, rh = p.resized([w], [h])
        assert (row["resized_width"], row["resized_height"]) == (int(rw[0]), int(rh[0]))
        for inst in row["instances"]:
            assert inst["model_bbox"] == p.to_model([inst["bbox"]], w, h)[0].tolist()
        for it in row["interactions"]:
            a = np.array(row["instances"][it["subject"]]["bbox"])
            b = np.array(row["instances"][it["object"]]["bbox"])
            u = np.concatenate([np.minimum(a[:2], b[:2]), np.maximum(a[2:], b[2:])])
            size = np.tile(u[2:] - u[:2], 2)
            expect = np.clip(u + (4 + 0.1 * size) * np.array([-1, -1, 1, 1]), 0, [w, h, w, h])
            np.testing.assert_allclose(it["union_bbox"], expect, atol=1e-3)
            np.testing.assert_allclose(it["refer_boxes"], [a, b, it["union_bbox"]], atol=1e-4)
            model_union = p.to_model([it["union_bbox"]], w, h)[0].tolist()
            assert abs(np.array(it["model_union_bbox"]) - model_union).max() <= 1  # float32 storage
            assert it["model_refer_boxes"][:2] == [
                row["instances"][it["subject"]]["model_bbox"],
                row["instances"][it["object"]]["model_bbox"],
            ]


def test_output_loads_with_datasets(canonical: Path, tmp_path: Path) -> None:
    boxes(canonical, tmp_path / "b", BoxesConfig())
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / "b" / "data"), split="train")
    feature = ds.features["interactions"].feature
    assert feature["refer_boxes"].feature.length == 4
    assert len(ds) == 11 and ds[0]["interactions"][0]["model_refer_boxes"]


def _table(rows: list[dict]) -> pa.Table:
    base = {"source": "hico-det", "split": "train", "image": {"bytes": None, "path": "x.jpg"}, "qa": []}
    return pa.Table.from_pylist([base | r for r in rows], schema=SCHEMA)


def _inst(box: list[float], label: str = "person") -> dict:
    return {"bbox": box, "label": label, "label_id": 0, "is_human": label == "person"}


def test_no_object_and_bad_rows() -> None:
    rows = [
        {  # an interaction without an object
            "sample_id": "a",
            "width": 100,
            "height": 50,
            "instances": [_inst([10, 10, 20, 40])],
            "interactions": [{"subject": 0, "object": -1, "verb": "run", "verb_id": 1, "hoi_id": 3}],
        },
        {  # size unknown
            "sample_id": "b",
            "width": None,
            "height": None,
            "instances": [_inst([1, 1, 2, 2])],
            "interactions": [],
        },
        {  # an interaction pointing at a missing instance
            "sample_id": "c",
            "width": 100,
            "height": 100,
            "instances": [_inst([1, 1, 2, 2])],
            "interactions": [{"subject": 0, "object": 5, "verb": "hold", "verb_id": 2, "hoi_id": 4}],
        },
        {  # aspect ratio beyond what the processors accept
            "sample_id": "d",
            "width": 30000,
            "height": 10,
            "instances": [],
            "interactions": [],
        },
    ]
    p = get_profile("qwen3-vl")
    out, rejects = add_boxes(_table(rows), p, BoxesConfig(profile="qwen3-vl"))
    assert out.num_rows + rejects.num_rows == len(rows)
    assert out["sample_id"].to_pylist() == ["a"]
    got = {r["sample_id"]: r["field"] for r in rejects.to_pylist()}
    assert got == {"b": "width", "c": "interactions.object", "d": "width"}
    it = out["interactions"][0][0].as_py()
    assert it["union_bbox"] == [10, 10, 20, 40]
    assert it["refer_boxes"] == [[10, 10, 20, 40]] * 3
    out, _ = add_boxes(_table(rows[:1]), p, BoxesConfig(profile="qwen3-vl", no_object="null"))
    it = out["interactions"][0][0].as_py()
    assert it["union_bbox"] is None and it["refer_boxes"] is None and it["model_refer_boxes"] is None


def test_cli_refuses_what_is_not_canonical(canonical: Path, tmp_path: Path) -> None:
    boxes(canonical, tmp_path / "b", BoxesConfig())
    assert read_manifest(tmp_path / "b").stage == "boxes"
    run = subprocess.run(
        [sys.executable, "-m", "hoidata", "boxes", str(tmp_path / "b"), "-o", str(tmp_path / "bb")],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "Traceback" not in run.stderr
    assert len(run.stderr.strip().splitlines()) == 1 and "canonical" in run.stderr
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "hoidata",
            "boxes",
            str(canonical),
            "-o",
            str(tmp_path / "x"),
            "--profile",
            "x",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2


@pytest.mark.parametrize(
    "column",
    [
        pa.array([1, 2, None], pa.int32()),
        pa.array([1.5, None], pa.float32()),
        pa.array([True, False, True]),
        pa.array([True, False, True, True, False, False, True, True, False, True]).slice(3, 6),
        pa.array([1, None, 3, None, 5, 6, 7, 8, 9, None]).slice(1, 8),
        pa.array([None, None], pa.int32()),
        pa.array([], pa.bool_()),
        pa.chunked_array([pa.array([1, 2]), pa.array([3])]),
        pa.chunked_array([], pa.int64()),
    ],
)
def test_numbers_read_through_the_buffers_equal_to_numpy(column: pa.Array | pa.ChunkedArray) -> None:
    """boxes reads its columns through Arrow's buffers (pyarrow's own ``to_numpy`` loads pandas);
    they must come out as ``to_numpy`` gives them: dtype, values, NaN at nulls, slices honoured."""
    got = numbers(column)
    want = column.to_numpy(zero_copy_only=False) if isinstance(column, pa.Array) else column.to_numpy()
    assert got.dtype == want.dtype
    assert np.array_equal(got, want, equal_nan=True)
