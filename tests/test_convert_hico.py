"""Acceptance: the real HICO-DET test annotations convert exactly, in both JSON layouts."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import numpy as np
import pyarrow.parquet as pq
import pytest
from source_batches import assert_same_arrays

from hoidata.io import open_dataset, read_manifest, read_table
from hoidata.pipelines.convert import ConvertConfig, convert
from hoidata.schemas.boxes import from_inclusive


def _convert(ann: Path, out: Path, **kw: object) -> None:
    convert(ConvertConfig(source="hico", annotations=str(ann), split="test", image_check=False, **kw), out)


@pytest.fixture(scope="module")
def upt_dir(reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("upt") / "hico-test"
    _convert(reference / "hico" / "upt_instances_test2015.json", out)
    return out


def _pairs(rows: list[dict]) -> dict[str, list[tuple]]:
    """Per sample: sorted (subject box, object box, verb, object label, hoi) tuples."""
    out = {}
    for r in rows:
        inst = r["instances"]
        out[r["sample_id"]] = sorted(
            (
                tuple(inst[p["subject"]]["bbox"]),
                tuple(inst[p["object"]]["bbox"]),
                p["verb_id"],
                inst[p["object"]]["label_id"],
                p["hoi_id"],
            )
            for p in r["interactions"]
        )
    return out


def test_upt_counts(upt_dir: Path) -> None:
    m = read_manifest(upt_dir)
    assert m.counts == {"in": 9658, "out": 9658, "rejected": 0}
    t = read_table(upt_dir)
    n_pairs = [len(x) for x in t.column("interactions").to_pylist()]
    assert sum(n_pairs) == 33_405
    assert sum(1 for n in n_pairs if n == 0) == 112


def test_upt_boxes_equal_the_official_values(reference: Path, upt_dir: Path) -> None:
    raw = json.loads((reference / "hico" / "upt_instances_test2015.json").read_text())
    rows = read_table(upt_dir).to_pylist()
    assert [r["sample_id"].split("/")[-1] + ".jpg" for r in rows] == raw["filenames"]
    for r, ann, size in zip(rows, raw["annotation"], raw["size"], strict=True):
        assert [r["width"], r["height"]] == size
        inst, pairs = r["instances"], r["interactions"]
        assert len(pairs) == len(ann["hoi"])
        for p, bh, bo, hoi, obj, verb in zip(
            pairs, ann["boxes_h"], ann["boxes_o"], ann["hoi"], ann["object"], ann["verb"], strict=True
        ):
            assert inst[p["subject"]]["bbox"] == from_inclusive([bh]).astype(np.float32).tolist()[0]
            assert inst[p["object"]]["bbox"] == from_inclusive([bo]).astype(np.float32).tolist()[0]
            assert (p["hoi_id"], p["verb_id"], inst[p["object"]]["label_id"]) == (hoi, verb, obj)
            assert inst[p["subject"]]["is_human"]
        # instances are deduplicated: no two identical (label, box) in one image
        keys = [(a["label_id"], tuple(a["bbox"])) for a in inst]
        assert len(keys) == len(set(keys))


def test_ppdm_first100_equals_upt(reference: Path, upt_dir: Path, tmp_path: Path) -> None:
    _convert(reference / "hico" / "ppdm_test_hico_first100.json", tmp_path / "ppdm")
    ppdm = read_table(tmp_path / "ppdm").to_pylist()
    assert len(ppdm) == 100
    assert sum(len(r["interactions"]) for r in ppdm) == 310
    upt = read_table(upt_dir).slice(0, 100).to_pylist()
    assert [r["sample_id"] for r in ppdm] == [r["sample_id"] for r in upt]
    assert _pairs(ppdm) == _pairs(upt)


def test_outputs_load_with_datasets_features(upt_dir: Path) -> None:
    ds = datasets.load_dataset("parquet", data_dir=str(upt_dir))
    assert list(ds) == ["test"]
    test = ds["test"]
    assert test.num_rows == 9658
    assert isinstance(test.features["image"], datasets.Image)
    assert isinstance(test.features["instances"], datasets.List)
    assert test.features["instances"].feature["bbox"] == datasets.List(datasets.Value("float32"), length=4)
    row = test[0]
    assert row["sample_id"] == "hico-det/test/HICO_test2015_00000001"
    assert row["image"] == {"bytes": None, "path": "HICO_test2015_00000001.jpg"}
    rejects = pq.read_table(upt_dir / "rejects.parquet")
    assert rejects.num_rows == 0 and "reason" in rejects.column_names


def test_features_metadata_matches_datasets(upt_dir: Path) -> None:
    from hoidata.schemas.canonical import SCHEMA, features

    for decode in (True, False):
        feats = datasets.Features.from_dict(features(decode))
        assert feats.to_dict() == features(decode)
        assert feats.arrow_schema.remove_metadata() == SCHEMA
    schema = pq.read_schema(next((upt_dir / "data").glob("*.parquet")))
    assert json.loads(schema.metadata[b"huggingface"])["info"]["features"] == features(False)


def test_open_dataset_resolves_image_root(tmp_path: Path) -> None:
    from PIL import Image

    from hoidata.demo import make_raw

    files = make_raw(tmp_path / "raw", n_train=2, n_test=3)
    out = tmp_path / "test"
    convert(
        ConvertConfig(
            source="hico",
            annotations=str(files["test"]),
            split="test",
            images=str(tmp_path / "raw" / "images" / "test"),
        ),
        out,
    )
    ds = open_dataset(out)
    assert isinstance(ds[0]["image"], Image.Image)
    assert ds[0]["image"].size == (ds[0]["width"], ds[0]["height"])


def _upt_doc() -> dict:
    box = [1.0, 2, 30, 40]
    return {
        "annotation": [
            {
                "boxes_h": [box, [5, 5, 50, 50]],
                "boxes_o": [[3, 3, 9, 9], box],
                "hoi": [245, 245],
                "object": [8, 8],
                "verb": [87, 87],
            },
            {"boxes_h": [], "boxes_o": [], "hoi": [], "object": [], "verb": []},
        ],
        "filenames": ["a.jpg", "sub.dir/b"],
        "size": [[100, 100], [64, 48]],
    }


def _edit(path: list, value: object) -> str:
    doc = _upt_doc()
    *parents, last = path
    target = doc
    for key in parents:
        target = target[key]
    if value is _DROP:
        del target[last]
    else:
        target[last] = value
    return json.dumps(doc)


_DROP = object()
UPT_VARIANTS = {
    "well formed": json.dumps(_upt_doc()),
    "pretty printed": json.dumps(_upt_doc(), indent=2),
    "no size": _edit(["size"], _DROP),
    "string in a box": _edit(["annotation", 0, "boxes_h", 0, 0], "1"),
    "boolean in a box": _edit(["annotation", 0, "boxes_o", 1, 0], True),
    "box of 3": _edit(["annotation", 0, "boxes_o", 1], [1, 2, 3]),
    "NaN in a box": json.dumps(_upt_doc()).replace("1.0", "NaN", 1),
    "float HOI id": _edit(["annotation", 0, "hoi", 0], 245.0),
    "string verb": _edit(["annotation", 0, "verb", 1], "87"),
    "HOI id beyond int64": json.dumps(_upt_doc()).replace("245", "1180591620717411303424", 1),
    "HOI id outside 600": _edit(["annotation", 0, "hoi", 0], 600),
    "null file name": _edit(["filenames", 0], None),
    "empty file name": _edit(["filenames", 1], ""),
    "float size": _edit(["size", 1], [64.0, 48]),
    "size of 3": _edit(["size", 1], [64, 48, 3]),
    "zero size": _edit(["size", 0], [0, 100]),
    "unequal lists": _edit(["annotation", 0, "verb"], [87]),
    "record not an object": _edit(["annotation", 1], [1]),
    "file names not a list": _edit(["filenames"], "a.jpg"),
}


@pytest.mark.parametrize("variant", UPT_VARIANTS)
def test_upt_arrow_reader_agrees_with_the_record_reader(variant: str, tmp_path: Path) -> None:
    """The Arrow fast path either declines a file or reads exactly what the record-by-record reader reads."""
    from hoidata.schemas.boxes import BoxOrigin
    from hoidata.sources.base import read_json
    from hoidata.sources.hico import read_upt, read_upt_arrow

    path = tmp_path / "upt.json"
    path.write_text(UPT_VARIANTS[variant])
    fast = read_upt_arrow(path, BoxOrigin.ONE_BASED)
    regular = variant in {"well formed", "pretty printed", "no size", "HOI id outside 600"}
    assert (fast is not None) == regular
    if fast is None:
        return
    slow = read_upt(path, read_json(path), BoxOrigin.ONE_BASED)
    for name in ("file_names", "keys", "errors"):
        assert [str(x) for x in getattr(fast, name)] == [str(x) for x in getattr(slow, name)], name
    assert_same_arrays(fast, slow)
    # the rejected record's text: the same values (Arrow writes the boxes' integers as floats)
    assert [json.loads(fast.raw(i)) for i in range(len(fast))] == [
        json.loads(slow.raw(i)) for i in range(len(slow))
    ]


def test_unique_rows_numbers_instances_in_order_of_first_appearance() -> None:
    from hoidata.sources.instances import unique_rows

    rng = np.random.default_rng(0)
    rows = rng.integers(0, 4, (500, 3)).astype(np.float64)  # many repeats
    rows[7] = -0.0  # equal to 0.0
    first, inverse = unique_rows(rows)
    assert np.array_equal(rows[first[inverse]], rows)  # every row is its group's first row
    assert np.all(np.diff(first) > 0) and first[0] == 0  # groups numbered as they first appear
    _, np_first, np_inverse = np.unique(rows, axis=0, return_index=True, return_inverse=True)
    assert sorted(first.tolist()) == sorted(np_first.tolist())  # the groups numpy finds
    assert np.array_equal(first[inverse], np_first[np_inverse.reshape(-1)])
