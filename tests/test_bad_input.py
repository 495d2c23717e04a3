"""Bad input through the real command line.

File-level faults: one line on stderr starting with ``error:`` that names the file (and the field),
exit code 2, no traceback (``--debug`` shows one). Record-level faults: the run goes on, the record
lands in ``rejects.parquet`` with its index, field, reason and original JSON, and
records in = records out + records rejected.

Most runs call :func:`hoidata.cli.main` in-process (fast); a few run the installed entry point in a
subprocess to check the real exit code and the traceback with ``--debug``.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from hoidata.cli import main
from hoidata.errors import HoidataError
from hoidata.schemas.taxonomy import hico_coco_ids, hico_det, swig_hoi

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
PPDM_REF = REFERENCE / "hico" / "ppdm_test_hico_first100.json"
UPT_REF = REFERENCE / "hico" / "upt_instances_test2015.json"
HOIDATA = Path(sys.executable).with_name("hoidata")


# --------------------------------------------------------------------------- helpers


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run ``hoidata ARGS`` in-process through :func:`main` (the console entry point), given its
    arguments: this process keeps Python's collector and pyarrow's defaults, as any caller's does."""
    monkeypatch.delenv("HOIDATA_DEBUG", raising=False)

    def run(*args: str | Path) -> Result:
        monkeypatch.setattr(sys, "argv", ["hoidata", *map(str, args)])
        capsys.readouterr()
        code: int | str | None = 0
        try:
            main(sys.argv[1:])
        except SystemExit as e:
            code = e.code
        captured = capsys.readouterr()
        return Result(
            code if isinstance(code, int) else (0 if code is None else 1), captured.out, captured.err
        )

    return run


def subprocess_cli(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "HOIDATA_DEBUG"}
    exe = [str(HOIDATA)] if HOIDATA.exists() else [sys.executable, "-m", "hoidata"]
    return subprocess.run(
        [*exe, *map(str, args)], cwd=cwd, capture_output=True, text=True, env=env, timeout=120
    )


def assert_file_error(res: Result, *needles: str) -> str:
    """Exit 2, exactly one line on stderr, starting with 'error:', naming each needle, no traceback."""
    assert res.code == 2, (res.code, res.out, res.err)
    lines = res.err.splitlines()
    assert len(lines) == 1, res.err
    line = lines[0]
    assert line.startswith("error: "), line
    assert "Traceback" not in res.err + res.out
    for needle in needles:
        assert needle in line, (needle, line)
    return line


def write_json(path: Path, obj: Any) -> Path:
    path.write_text(json.dumps(obj))
    return path


def load_out(out: Path, tmp_path: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
    """The kept rows (through `datasets`), the rejects and the manifest of a dataset directory."""
    import datasets

    manifest = json.loads((out / "manifest.json").read_text())
    if manifest["counts"]["out"]:
        ds = datasets.load_dataset("parquet", data_dir=str(out), cache_dir=str(tmp_path / "hf-cache"))
        (split,) = ds.keys()
        rows = ds[split].to_list()
    else:  # `datasets` refuses a split without rows
        rows = pq.read_table(out / "data").to_pylist()
    rejects = pq.read_table(out / "rejects.parquet").to_pylist()
    counts = manifest["counts"]
    assert counts["in"] == counts["out"] + counts["rejected"]
    assert counts["out"] == len(rows)
    assert counts["rejected"] == len(rejects)
    return rows, rejects, manifest


@cache
def ppdm_reference() -> list[dict[str, Any]]:
    return json.loads(PPDM_REF.read_text())


@cache
def upt_reference() -> dict[str, Any]:
    return json.loads(UPT_REF.read_text())


def ppdm_good(n: int) -> list[dict[str, Any]]:
    return copy.deepcopy(ppdm_reference()[:n])


COCO = [int(c) for c in hico_coco_ids()]
HICO = hico_det()
SWIG = swig_hoi()


def hico_invalid_verb(coco_id: int) -> int:
    """A one-based verb id that does not go with this object in HICO-DET."""
    obj = COCO.index(coco_id)
    return int(np.flatnonzero(HICO.hoi_lookup[:, obj] < 0)[0]) + 1


def hico_hoi(verb1: int, coco_id: int) -> int:
    """The one-based HOI id of a one-based verb and a COCO object id."""
    return int(HICO.hoi_lookup[verb1 - 1, COCO.index(coco_id)]) + 1


# The first reference record: 3 boxes (person, bench (COCO 15), person), 2 pairs (0→1, 2→1, verb 88);
# its image is 640x427.
REC0_SIZE = (640, 427)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], Any]:
    def f(rec: dict[str, Any]) -> dict[str, Any]:
        *parents, last = path.split(".")
        node: Any = rec
        for p in parents:
            node = node[int(p)] if p.isdigit() else node[p]
        if value is _DELETE:
            del node[last]
        else:
            node[int(last) if last.isdigit() else last] = value
        return rec

    return f


_DELETE = object()


@dataclass
class Case:
    name: str
    mutate: Callable[[dict[str, Any]], Any]
    field: str
    reason: str  # a substring of the reason


# Structural faults: they send the reader down its record-by-record path.
PPDM_STRUCTURAL = [
    Case("bbox_string", _set("annotations.0.bbox", "320,306,359,349"), "annotations[0].bbox", "4 numbers"),
    Case(
        "bbox_three_numbers", _set("annotations.2.bbox", [270, 303, 311]), "annotations[2].bbox", "4 numbers"
    ),
    Case("category_float", _set("annotations.1.category_id", 15.0), "annotations[1].category_id", "integer"),
    Case(
        "subject_missing",
        _set("hoi_annotation.1.subject_id", _DELETE),
        "hoi_annotation[1].subject_id",
        "integer",
    ),
    Case(
        "verb_string", _set("hoi_annotation.0.category_id", "88"), "hoi_annotation[0].category_id", "integer"
    ),
    Case(
        "not_an_object",
        lambda r: ["HICO_test2015_00000001.jpg", r["annotations"]],
        "<record>",
        "expected an object",
    ),
    Case("annotations_not_list", _set("annotations", {"bbox": [1, 2, 3, 4]}), "annotations", "not a list"),
    Case("annotations_empty_dict", _set("annotations", {}), "annotations", "not a list"),
    Case("pairs_not_list", _set("hoi_annotation", "none"), "hoi_annotation", "not a list"),
    Case("pair_not_object", _set("hoi_annotation.1", [2, 1, 88]), "hoi_annotation[1]", "expected an object"),
    Case("file_name_missing", _set("file_name", _DELETE), "file_name", "missing"),
    Case("file_name_number", _set("file_name", 17), "file_name", "string"),
    Case("width_string", lambda r: {**r, "width": "640", "height": 427}, "width", "positive integer"),
    Case(
        "hoi_id_string",
        _set("hoi_annotation.0.hoi_category_id", "246"),
        "hoi_annotation[0].hoi_category_id",
        "integer",
    ),
]

# Semantic faults: well-formed JSON whose values are wrong; the fast path reads them.
PPDM_SEMANTIC = [
    Case("inverted_box", _set("annotations.2.bbox", [311, 303, 270, 350]), "annotations[2].bbox", "inverted"),
    # one-based inclusive: x2 = x1 - 1 covers no pixel
    Case(
        "empty_box",
        _set("annotations.1.bbox", [148, 345, 147, 414]),
        "annotations[1].bbox",
        "inverted or empty",
    ),
    Case(
        "out_of_image_box",
        lambda r: r.update(width=640, height=427) or _set("annotations.1.bbox", [148, 345, 700, 414])(r),
        "annotations[1].bbox",
        "outside the 640x427 image",
    ),
    Case("coco_id_12", _set("annotations.1.category_id", 12), "annotations[1].category_id", "12"),
    Case("coco_id_negative", _set("annotations.1.category_id", -3), "annotations[1].category_id", "-3"),
    Case("verb_118", _set("hoi_annotation.0.category_id", 118), "hoi_annotation[0].category_id", "118"),
    Case("verb_0", _set("hoi_annotation.1.category_id", 0), "hoi_annotation[1].category_id", "verb id 0 "),
    Case(
        "not_a_hoi_class",
        _set("hoi_annotation.1.category_id", hico_invalid_verb(15)),
        "hoi_annotation[1].category_id",
        "not a hico-det HOI class",
    ),
    Case(
        "hoi_id_disagrees",
        _set("hoi_annotation.0.hoi_category_id", hico_hoi(88, 15) % 600 + 1),
        "hoi_annotation[0].hoi_category_id",
        f"→ {hico_hoi(88, 15)}",
    ),
    Case(
        "hoi_id_zero",
        _set("hoi_annotation.0.hoi_category_id", 0),
        "hoi_annotation[0].hoi_category_id",
        "HOI id 0 is below the first id",
    ),
    Case(
        "hoi_id_601",
        _set("hoi_annotation.1.hoi_category_id", 601),
        "hoi_annotation[1].hoi_category_id",
        "601",
    ),
    Case(
        "subject_out_of_range",
        _set("hoi_annotation.1.subject_id", 3),
        "hoi_annotation[1].subject_id",
        "out of range",
    ),
    Case(
        "object_out_of_range",
        _set("hoi_annotation.0.object_id", 7),
        "hoi_annotation[0].object_id",
        "out of range",
    ),
    Case(
        "subject_negative",
        _set("hoi_annotation.0.subject_id", -1),
        "hoi_annotation[0].subject_id",
        "out of range",
    ),
    Case(
        "subject_not_person",
        _set("hoi_annotation.1.subject_id", 1),
        "hoi_annotation[1].subject_id",
        "not a person",
    ),
    Case("escapes_dotdot", _set("file_name", "../x.jpg"), "file_name", "escapes the image root"),
    Case("escapes_nested", _set("file_name", "a/../../x.jpg"), "file_name", "escapes the image root"),
    Case("escapes_absolute", _set("file_name", "/etc/x.jpg"), "file_name", "escapes the image root"),
    Case(
        "zero_in_one_based",
        _set("annotations.1.bbox", [0, 345, 376, 414]),
        "annotations[1].bbox",
        "--box-origin",
    ),
]


def _ppdm_file_with(cases: list[Case], n_good: int = 6) -> tuple[list[Any], dict[int, Case], list[str]]:
    """Good reference records with one bad record per case between them; a duplicate at the end."""
    good = ppdm_good(n_good)
    records: list[Any] = []
    where: dict[int, Case] = {}
    kept: list[str] = []
    for k, case in enumerate(cases):
        g = good[k % n_good]
        if k < n_good:
            records.append(g)
            kept.append(g["file_name"])
        bad = copy.deepcopy(ppdm_reference()[0])
        bad["file_name"] = f"HICO_bad_{k:03d}_{case.name}.jpg"
        bad = case.mutate(bad)
        where[len(records)] = case
        records.append(bad)
    for g in good[len(cases) :]:
        records.append(g)
        kept.append(g["file_name"])
    # a duplicate of the first good record
    dup = copy.deepcopy(good[0])
    where[len(records)] = Case("duplicate", lambda r: r, "file_name", "duplicate of record 0")
    records.append(dup)
    return records, where, kept


def check_rejects(
    rejects: list[dict[str, Any]],
    records: list[Any],
    where: dict[int, Case],
    file: Path,
    raw_equal: bool = True,
) -> None:
    by_index = {r["record_index"]: r for r in rejects}
    assert sorted(by_index) == sorted(where), (sorted(by_index), sorted(where), rejects)
    for i, case in where.items():
        row = by_index[i]
        assert row["source_file"] == str(file)
        assert row["field"] == case.field, (case.name, row)
        assert case.reason in row["reason"], (case.name, row)
        if raw_equal:
            assert json.loads(row["raw"]) == records[i], case.name


def sample_ids(rows: list[dict[str, Any]]) -> list[str]:
    return [r["sample_id"] for r in rows]


def ppdm_ids(file_names: list[str], split: str = "test") -> list[str]:
    return [f"hico-det/{split}/{f.rsplit('.', 1)[0]}" for f in file_names]


# --------------------------------------------------------------------------- file-level faults


def _ppdm(tmp: Path) -> Path:
    return write_json(tmp / "test_hico.json", ppdm_good(3))


def _upt(tmp: Path, n: int = 6, **override: Any) -> dict[str, Any]:
    ref = upt_reference()
    d = {
        "annotation": copy.deepcopy(ref["annotation"][:n]),
        "filenames": list(ref["filenames"][:n]),
        "size": copy.deepcopy(ref["size"][:n]),
        "empty": [],
        "objects": ref["objects"],
        "verbs": ref["verbs"],
        "correspondence": ref["correspondence"],
        "rare": ref["rare"],
        "non_rare": ref["non_rare"],
    }
    d.update(override)
    return d


def _swig_records(n: int) -> list[dict[str, Any]]:
    """SWIG-HOI records as in docs/formats.md §2, with valid (action, object) pairs."""
    out = []
    for i in range(n):
        hoi = (i * 997) % SWIG.num_hois
        action, obj = int(SWIG.hoi_verb[hoi]), int(SWIG.hoi_object[hoi])
        obj_box = [300, 40, 420, 500] if obj == SWIG.human_object_id else [247, 134, 566, 512]
        out.append(
            {
                "file_name": f"swig_{i:04d}.jpg",
                "img_id": 745 + i,
                "height": 512,
                "width": 681,
                "box_annotations": [
                    {"bbox": obj_box, "category_id": obj, "aux_category_id": [167, 323]},
                    {"bbox": [282, 217, 441, 317], "category_id": 123, "aux_category_id": []},
                    {"bbox": [0, 0, 438, 509], "category_id": 0, "aux_category_id": []},
                ],
                "hoi_annotations": [{"subject_id": 2, "object_id": 0, "action_id": action}],
            }
        )
    return out


FileCase = tuple[str, Callable[[Path], tuple[list[str], list[str]]]]


def _args_hico(ann: Path, *extra: str) -> list[str]:
    return ["convert", "hico", "-a", str(ann), "-o", str(ann.parent / "out"), "--split", "test", *extra]


def _args_swig(ann: Path, *extra: str) -> list[str]:
    return ["convert", "swig", "-a", str(ann), "-o", str(ann.parent / "out"), "--split", "test", *extra]


def fc_missing_ppdm(tmp: Path) -> tuple[list[str], list[str]]:
    ann = tmp / "nope_test_hico.json"
    return _args_hico(ann, "--no-image-check"), [str(ann), "not found"]


def fc_missing_without_split(tmp: Path) -> tuple[list[str], list[str]]:
    """A missing file is the first thing to tell, before any question about the split."""
    ann = tmp / "nope.json"
    return ["convert", "hico", "-a", str(ann), "-o", str(tmp / "out"), "--no-image-check"], [
        str(ann),
        "not found",
    ]


def fc_missing_ppdm_forced(tmp: Path) -> tuple[list[str], list[str]]:
    ann = tmp / "nope.json"
    return _args_hico(ann, "--no-image-check", "--format", "ppdm"), [str(ann), "not found"]


def fc_missing_swig(tmp: Path) -> tuple[list[str], list[str]]:
    ann = tmp / "swig_test_1000.json"
    return _args_swig(ann, "--no-image-check"), [str(ann), "not found"]


def fc_directory(tmp: Path) -> tuple[list[str], list[str]]:
    ann = tmp / "dir.json"
    ann.mkdir()
    return _args_hico(ann, "--no-image-check"), [str(ann)]


def fc_unknown_dict(tmp: Path) -> tuple[list[str], list[str]]:
    ann = write_json(tmp / "x.json", {"images": [], "annotations": []})
    return _args_hico(ann, "--no-image-check"), [str(ann), "unknown"]


def fc_unknown_list_of_dicts(tmp: Path) -> tuple[list[str], list[str]]:
    ann = write_json(tmp / "x.json", [{"image_id": 1, "bbox": [1, 2, 3, 4]}])
    return _args_hico(ann, "--no-image-check"), [str(ann), "unknown"]


def fc_empty_list(tmp: Path) -> tuple[list[str], list[str]]:
    ann = write_json(tmp / "x.json", [])
    return _args_hico(ann, "--no-image-check"), [str(ann)]


def fc_csv(tmp: Path) -> tuple[list[str], list[str]]:
    ann = tmp / "test_hico.csv"
    ann.write_text("file_name,x1,y1,x2,y2\nHICO_test2015_00000001.jpg,1,2,3,4\n")
    return _args_hico(ann, "--no-image-check"), [str(ann)]


def fc_csv_swig(tmp: Path) -> tuple[list[str], list[str]]:
    ann = tmp / "swig.csv"
    ann.write_text("file_name,x1,y1,x2,y2\nswig_0.jpg,1,2,3,4\n")
    return _args_swig(ann, "--no-image-check"), [str(ann)]


def fc_empty_file(tmp: Path) -> tuple[list[str], list[str]]:
    ann = tmp / "test_hico.json"
    ann.write_bytes(b"")
    return _args_hico(ann, "--no-image-check"), [str(ann), "empty"]


def fc_truncated_ppdm(tmp: Path) -> tuple[list[str], list[str]]:
    ann = tmp / "test_hico.json"
    ann.write_text(json.dumps(ppdm_good(5))[:-40])
    return _args_hico(ann, "--no-image-check"), [str(ann), "truncated"]


def fc_truncated_upt(tmp: Path) -> tuple[list[str], list[str]]:
    ann = tmp / "instances_test2015.json"
    ann.write_text(json.dumps(_upt(tmp))[:1000])
    return _args_hico(ann, "--no-image-check"), [str(ann), "truncated"]


def fc_truncated_swig(tmp: Path) -> tuple[list[str], list[str]]:
    ann = tmp / "swig_test_1000.json"
    ann.write_text(json.dumps(_swig_records(4))[:-3])
    return _args_swig(ann, "--no-image-check"), [str(ann), "truncated"]


def fc_non_utf8_ppdm(tmp: Path) -> tuple[list[str], list[str]]:
    ann = tmp / "test_hico.json"
    recs = ppdm_good(3)
    recs[1]["file_name"] = "HICO_caf\u00e9.jpg"
    ann.write_bytes(json.dumps(recs, ensure_ascii=False).encode("latin-1"))
    return _args_hico(ann, "--no-image-check"), [str(ann), "UTF-8", "line 1"]


def fc_non_utf8_swig(tmp: Path) -> tuple[list[str], list[str]]:
    ann = tmp / "swig_test_1000.json"
    text = json.dumps(_swig_records(3), indent=1).replace("swig_0001", "swig_\u00ff01", 1)
    ann.write_bytes(text.encode("cp1252"))
    return _args_swig(ann, "--no-image-check"), [str(ann), "UTF-8"]


def fc_utf16(tmp: Path) -> tuple[list[str], list[str]]:
    ann = tmp / "test_hico.json"
    ann.write_bytes(json.dumps(ppdm_good(2)).encode("utf-16"))
    return _args_hico(ann, "--no-image-check"), [str(ann)]


def fc_top_level_number(tmp: Path) -> tuple[list[str], list[str]]:
    ann = write_json(tmp / "test_hico.json", 42)
    return _args_hico(ann, "--no-image-check"), [str(ann)]


def fc_ppdm_forced_on_dict(tmp: Path) -> tuple[list[str], list[str]]:
    ann = write_json(tmp / "test_hico.json", {"a": 1})
    return _args_hico(ann, "--no-image-check", "--format", "ppdm"), [str(ann), "list"]


def fc_upt_forced_on_list(tmp: Path) -> tuple[list[str], list[str]]:
    ann = write_json(tmp / "test_hico.json", ppdm_good(3))
    return _args_hico(ann, "--no-image-check", "--format", "upt"), [str(ann), "dict"]


def fc_swig_given_dict(tmp: Path) -> tuple[list[str], list[str]]:
    ann = write_json(tmp / "swig_test_1000.json", {"box_annotations": []})
    return _args_swig(ann, "--no-image-check"), [str(ann), "list"]


def fc_swig_unknown_records(tmp: Path) -> tuple[list[str], list[str]]:
    ann = write_json(tmp / "swig_test_1000.json", [{"image": "a.jpg", "boxes": []}] * 3)
    return _args_swig(ann, "--no-image-check"), [str(ann), "unknown"]


def fc_swig_given_ppdm(tmp: Path) -> tuple[list[str], list[str]]:
    ann = write_json(tmp / "swig_test_1000.json", ppdm_good(2))
    return _args_swig(ann, "--no-image-check"), [str(ann), "convert hico"]


def fc_hico_given_swig(tmp: Path) -> tuple[list[str], list[str]]:
    ann = write_json(tmp / "test_hico.json", _swig_records(2))
    return _args_hico(ann, "--no-image-check"), [str(ann), "convert swig"]


def fc_upt_annotation_not_list(tmp: Path) -> tuple[list[str], list[str]]:
    ann = write_json(tmp / "instances_test2015.json", _upt(tmp, annotation={"boxes_h": []}))
    return _args_hico(ann, "--no-image-check"), [str(ann), "field 'annotation'"]


def fc_upt_filenames_short(tmp: Path) -> tuple[list[str], list[str]]:
    d = _upt(tmp)
    d["filenames"] = d["filenames"][:-1]
    ann = write_json(tmp / "instances_test2015.json", d)
    return _args_hico(ann, "--no-image-check"), [str(ann), "field 'filenames'"]


def fc_upt_filenames_not_list(tmp: Path) -> tuple[list[str], list[str]]:
    ann = write_json(tmp / "instances_test2015.json", _upt(tmp, filenames="HICO_test2015_00000001.jpg"))
    return _args_hico(ann, "--no-image-check"), [str(ann), "field 'filenames'"]


def fc_upt_size_not_list(tmp: Path) -> tuple[list[str], list[str]]:
    ann = write_json(tmp / "instances_test2015.json", _upt(tmp, size={"w": 640}))
    return _args_hico(ann, "--no-image-check"), [str(ann), "field 'size'"]


def fc_image_root_is_file(tmp: Path) -> tuple[list[str], list[str]]:
    ann = _ppdm(tmp)
    root = tmp / "images.txt"
    root.write_text("not a directory")
    return _args_hico(ann, "--images", str(root)), [str(root), "not a directory"]


def fc_image_root_missing(tmp: Path) -> tuple[list[str], list[str]]:
    ann = _ppdm(tmp)
    root = tmp / "no-such-images"
    return _args_hico(ann, "--images", str(root)), [str(root), "not a directory"]


def fc_no_images_option(tmp: Path) -> tuple[list[str], list[str]]:
    ann = _ppdm(tmp)
    return _args_hico(ann), ["--images", "--no-image-check"]


def fc_embed_without_images(tmp: Path) -> tuple[list[str], list[str]]:
    ann = _ppdm(tmp)
    return _args_hico(ann, "--no-image-check", "--embed-images"), ["--embed-images", "--images"]


def fc_swig_no_images_option(tmp: Path) -> tuple[list[str], list[str]]:
    ann = write_json(tmp / "swig_test_1000.json", _swig_records(2))
    return _args_swig(ann), ["--images"]


def fc_out_is_file(tmp: Path) -> tuple[list[str], list[str]]:
    ann = _ppdm(tmp)
    (tmp / "out").write_text("a file")
    return _args_hico(ann, "--no-image-check"), [str(tmp / "out")]


def fc_split_unknown(tmp: Path) -> tuple[list[str], list[str]]:
    ann = write_json(tmp / "hico.json", ppdm_good(2))
    return ["convert", "hico", "-a", str(ann), "-o", str(tmp / "out"), "--no-image-check"], [
        str(ann),
        "--split",
    ]


def fc_shard_size_zero(tmp: Path) -> tuple[list[str], list[str]]:
    ann = _ppdm(tmp)
    return _args_hico(ann, "--no-image-check", "--shard-size", "0"), ["--shard-size"]


FILE_CASES: list[Callable[[Path], tuple[list[str], list[str]]]] = [
    fc_missing_ppdm,
    fc_missing_without_split,
    fc_missing_ppdm_forced,
    fc_missing_swig,
    fc_directory,
    fc_unknown_dict,
    fc_unknown_list_of_dicts,
    fc_empty_list,
    fc_csv,
    fc_csv_swig,
    fc_empty_file,
    fc_truncated_ppdm,
    fc_truncated_upt,
    fc_truncated_swig,
    fc_non_utf8_ppdm,
    fc_non_utf8_swig,
    fc_utf16,
    fc_top_level_number,
    fc_ppdm_forced_on_dict,
    fc_upt_forced_on_list,
    fc_swig_given_dict,
    fc_swig_unknown_records,
    fc_swig_given_ppdm,
    fc_hico_given_swig,
    fc_upt_annotation_not_list,
    fc_upt_filenames_short,
    fc_upt_filenames_not_list,
    fc_upt_size_not_list,
    fc_image_root_is_file,
    fc_image_root_missing,
    fc_no_images_option,
    fc_embed_without_images,
    fc_swig_no_images_option,
    fc_out_is_file,
    fc_split_unknown,
    fc_shard_size_zero,
]


@pytest.mark.parametrize("case", FILE_CASES, ids=lambda f: f.__name__[3:])
def test_file_level_fault_is_one_line_exit_2(
    case: Callable[[Path], tuple[list[str], list[str]]], cli: Callable[..., Result], tmp_path: Path
) -> None:
    args, needles = case(tmp_path)
    assert_file_error(cli(*args), *needles)
    out = tmp_path / "out"
    assert not (out / "manifest.json").exists()


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_shows_the_traceback_in_process(where: str, cli: Callable[..., Result], tmp_path: Path) -> None:
    """``--debug`` re-raises, whether it comes before the subcommand or after its options."""
    ann = tmp_path / "test_hico.json"
    ann.write_text(json.dumps(ppdm_good(3))[:-10])
    args = _args_hico(ann, "--no-image-check")
    with pytest.raises(HoidataError, match="truncated"):
        cli(*(["--debug", *args] if where == "before" else [*args, "--debug"]))


def test_real_process_exit_code_and_debug_traceback(tmp_path: Path) -> None:
    ann = tmp_path / "test_hico.json"
    ann.write_text(json.dumps(ppdm_good(3))[:-10])
    plain = subprocess_cli(*_args_hico(ann, "--no-image-check"), cwd=tmp_path)
    assert plain.returncode == 2
    assert plain.stderr.count("\n") == 1 and plain.stderr.startswith("error: ")
    assert str(ann) in plain.stderr and "truncated" in plain.stderr
    assert "Traceback" not in plain.stderr + plain.stdout

    debug = subprocess_cli("--debug", *_args_hico(ann, "--no-image-check"), cwd=tmp_path)
    assert debug.returncode not in (0, 2)
    assert "Traceback" in debug.stderr and "HoidataError" in debug.stderr and "truncated" in debug.stderr


# --------------------------------------------------------------------------- record-level faults: PPDM


@pytest.mark.parametrize("which", ["structural_and_semantic", "semantic_only"])
def test_ppdm_record_faults_go_to_rejects(which: str, cli: Callable[..., Result], tmp_path: Path) -> None:
    cases = PPDM_STRUCTURAL + PPDM_SEMANTIC if which == "structural_and_semantic" else PPDM_SEMANTIC
    records, where, kept = _ppdm_file_with(cases)
    ann = write_json(tmp_path / "test_hico.json", records)
    out = tmp_path / "out"
    res = cli("convert", "hico", "-a", ann, "-o", out, "--no-image-check", "--shard-size", "7")
    assert res.code == 0, res.err
    assert f"{len(where)} rejected" in res.out
    rows, rejects, manifest = load_out(out, tmp_path)
    assert manifest["counts"] == {"in": len(records), "out": len(kept), "rejected": len(where)}
    assert sample_ids(rows) == ppdm_ids(kept)
    check_rejects(rejects, records, where, ann)
    # rejects know the sample id whenever the record had a usable file name
    by_index = {r["record_index"]: r for r in rejects}
    for i, case in where.items():
        if case.name in ("hoi_id_zero", "coco_id_12", "inverted_box"):
            assert by_index[i]["sample_id"] == f"hico-det/test/{records[i]['file_name'][:-4]}"


def test_ppdm_good_records_are_exact(cli: Callable[..., Result], tmp_path: Path) -> None:
    """The kept records are converted as if the bad ones were not there."""
    records, _, kept = _ppdm_file_with(PPDM_STRUCTURAL + PPDM_SEMANTIC)
    bad_out, clean_out = tmp_path / "bad", tmp_path / "clean"
    ann = write_json(tmp_path / "test_hico.json", records)
    clean = write_json(
        tmp_path / "clean_test_hico.json",
        [r for r in records if isinstance(r, dict) and r.get("file_name") in kept][: len(kept)],
    )
    assert cli("convert", "hico", "-a", ann, "-o", bad_out, "--no-image-check").code == 0
    assert cli("convert", "hico", "-a", clean, "-o", clean_out, "--no-image-check").code == 0
    a = pq.read_table(bad_out / "data").drop_columns(["split"]).to_pylist()
    b = pq.read_table(clean_out / "data").drop_columns(["split"]).to_pylist()
    assert a == b


def test_first_record_not_an_object_is_a_reject(cli: Callable[..., Result], tmp_path: Path) -> None:
    records: list[Any] = [17, *ppdm_good(3)]
    ann = write_json(tmp_path / "test_hico.json", records)
    res = cli("convert", "hico", "-a", ann, "-o", tmp_path / "out", "--no-image-check")
    assert res.code == 0, res.err
    rows, rejects, _ = load_out(tmp_path / "out", tmp_path)
    assert len(rows) == 3
    assert [(r["record_index"], r["field"], json.loads(r["raw"])) for r in rejects] == [(0, "<record>", 17)]


def test_box_origin_hint_and_fix(cli: Callable[..., Result], tmp_path: Path) -> None:
    """A 0 coordinate in a file read as one-based is rejected with a hint; zero-based accepts it."""
    records = ppdm_good(4)
    records[2]["annotations"][0]["bbox"] = [0, 0, 40, 60]
    ann = write_json(tmp_path / "trainval_hico.json", records)
    res = cli("convert", "hico", "-a", ann, "-o", tmp_path / "one", "--no-image-check")
    assert res.code == 0, res.err
    _, rejects, _ = load_out(tmp_path / "one", tmp_path)
    assert [(r["record_index"], r["field"]) for r in rejects] == [(2, "annotations[0].bbox")]
    assert "--box-origin" in rejects[0]["reason"] and "one-based" in rejects[0]["reason"]
    assert "--box-origin" in res.out or "rejected" in res.out

    res = cli(
        "convert",
        "hico",
        "-a",
        ann,
        "-o",
        tmp_path / "zero",
        "--no-image-check",
        "--box-origin",
        "zero-based",
    )
    assert res.code == 0, res.err
    rows, rejects, _ = load_out(tmp_path / "zero", tmp_path)
    assert rejects == [] and len(rows) == 4
    assert rows[2]["instances"][0]["bbox"] == [0.0, 0.0, 41.0, 61.0]


# --------------------------------------------------------------------------- images (PPDM and UPT)


def _write_images(root: Path, sizes: dict[str, tuple[int, int]]) -> None:
    root.mkdir(parents=True, exist_ok=True)
    for name, (w, h) in sizes.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        fmt = "PNG" if name.endswith(".png") else "JPEG"
        Image.new("RGB", (w, h), (120, 30, 200)).save(root / name, format=fmt)


def _image_case(tmp: Path) -> tuple[Path, Path, list[Any], dict[int, Case], list[str]]:
    """PPDM records with 64x48 images, and faults that only the images reveal."""
    root = tmp / "images"
    good = ppdm_good(6)
    names = [f"img_{i}.jpg" for i in range(6)]
    _write_images(root, {n: (64, 48) for n in [*names, "img_size.jpg", "img_outside.png"]})
    (root / "garbage.jpg").write_bytes(b"this is not a jpeg\x00\x01\x02" * 10)
    (root / "sub" / "dir.jpg").mkdir(parents=True)
    records: list[Any] = []
    for i, (r, n) in enumerate(zip(good, names, strict=True)):
        r["file_name"] = n
        for a in r["annotations"]:
            a["bbox"] = [1 + i, 2, 30, 40]
        records.append(r)
    where: dict[int, Case] = {}
    for case in [
        Case("missing_image", _set("file_name", "img_missing.jpg"), "file_name", "image not found"),
        Case("garbage_image", _set("file_name", "garbage.jpg"), "file_name", "unreadable image"),
        Case("directory_image", _set("file_name", "sub/dir.jpg"), "file_name", "sub/dir.jpg"),
        Case("escape", _set("file_name", "../images/img_0.jpg"), "file_name", "escapes the image root"),
        Case(
            "size_disagrees",
            lambda r: r.update(file_name="img_size.jpg", width=640, height=427) or r,
            "size",
            "annotation says 640x427, the image is 64x48",
        ),
        # the image header gives the size: one-based x2 = 65 is past the 64th pixel
        Case(
            "out_of_image",
            lambda r: _set("annotations.1.bbox", [1, 2, 65, 40])(_set("file_name", "img_outside.png")(r)),
            "annotations[1].bbox",
            "outside the 64x48 image",
        ),
    ]:
        where[len(records)] = case
        records.append(case.mutate(copy.deepcopy(records[0])))
    ann = write_json(tmp / "test_hico.json", records)
    return ann, root, records, where, names


def test_ppdm_image_faults(cli: Callable[..., Result], tmp_path: Path) -> None:
    ann, root, records, where, names = _image_case(tmp_path)
    out = tmp_path / "out"
    res = cli("convert", "hico", "-a", ann, "-o", out, "--images", root, "--shard-size", "4")
    assert res.code == 0, res.err
    rows, rejects, manifest = load_out(out, tmp_path)
    assert sample_ids(rows) == ppdm_ids(names)
    assert [r["width"] for r in rows] == [64] * 6 and [r["height"] for r in rows] == [48] * 6
    assert [r["image"]["path"] for r in rows] == names
    check_rejects(rejects, records, where, ann)
    assert manifest["counts"]["rejected"] == len(where)


def test_ppdm_image_faults_embedded(cli: Callable[..., Result], tmp_path: Path) -> None:
    ann, root, records, where, names = _image_case(tmp_path)
    out = tmp_path / "out"
    res = cli("convert", "hico", "-a", ann, "-o", out, "--images", root, "--embed-images")
    assert res.code == 0, res.err
    table = pq.read_table(out / "data")
    assert table.column("sample_id").to_pylist() == ppdm_ids(names)
    assert [im["bytes"] for im in table.column("image").to_pylist()] == [
        (root / n).read_bytes() for n in names
    ]
    _, rejects, _ = load_out(out, tmp_path)
    check_rejects(rejects, records, where, ann)


def test_clip_boxes_clamps_instead_of_rejecting(cli: Callable[..., Result], tmp_path: Path) -> None:
    root = tmp_path / "images"
    _write_images(root, {"a.png": (64, 48), "b.png": (64, 48)})
    records = ppdm_good(2)
    for r, n in zip(records, ["a.png", "b.png"], strict=True):
        r["file_name"] = n
        for a in r["annotations"]:
            a["bbox"] = [5, 5, 30, 40]
    records[1]["annotations"][1]["bbox"] = [10, 20, 100, 60]  # one-based; past the right and bottom edges
    ann = write_json(tmp_path / "test_hico.json", records)

    res = cli("convert", "hico", "-a", ann, "-o", tmp_path / "strict", "-i", root)
    assert res.code == 0, res.err
    rows, rejects, _ = load_out(tmp_path / "strict", tmp_path)
    assert len(rows) == 1 and [(r["record_index"], r["field"]) for r in rejects] == [
        (1, "annotations[1].bbox")
    ]

    res = cli("convert", "hico", "-a", ann, "-o", tmp_path / "clip", "-i", root, "--clip-boxes")
    assert res.code == 0, res.err
    rows, rejects, _ = load_out(tmp_path / "clip", tmp_path)
    assert rejects == [] and len(rows) == 2
    assert rows[1]["instances"][1]["bbox"] == [9.0, 19.0, 64.0, 48.0]
    assert rows[1]["instances"][0]["bbox"] == [4.0, 4.0, 30.0, 40.0]


def test_clip_boxes_with_size_from_annotation(cli: Callable[..., Result], tmp_path: Path) -> None:
    """Without image checks the annotation's width/height bound the boxes."""
    records = ppdm_good(2)
    records[0].update(width=640, height=427)
    records[0]["annotations"][1]["bbox"] = [148, 345, 700, 500]
    ann = write_json(tmp_path / "test_hico.json", records)
    res = cli("convert", "hico", "-a", ann, "-o", tmp_path / "clip", "--no-image-check", "--clip-boxes")
    assert res.code == 0, res.err
    rows, rejects, _ = load_out(tmp_path / "clip", tmp_path)
    assert rejects == []
    assert rows[0]["instances"][1]["bbox"] == [147.0, 344.0, 640.0, 427.0]


# --------------------------------------------------------------------------- record-level faults: UPT


def _upt_mut(fn: Callable[[dict[str, Any]], Any]) -> Callable[[dict[str, Any]], dict[str, Any]]:
    def f(a: dict[str, Any]) -> dict[str, Any]:
        fn(a)
        return a

    return f


UPT_CASES: list[tuple[str, Callable[[dict[str, Any]], Any], str, str]] = [
    (
        "box_string",
        lambda a: a["boxes_h"].__setitem__(0, "320 306 359 349"),
        "annotation.boxes_h[0]",
        "4 numbers",
    ),
    ("verb_float", lambda a: a["verb"].__setitem__(1, 87.0), "annotation.verb[1]", "integer"),
    ("lengths_differ", lambda a: a["object"].append(8), "annotation.object", "entries"),
    ("object_80", lambda a: a["object"].__setitem__(1, 80), "annotation.object[1]", "80"),
    ("verb_117", lambda a: a["verb"].__setitem__(0, 117), "annotation.verb[0]", "117"),
    ("hoi_disagrees", lambda a: a["hoi"].__setitem__(1, 246), "annotation.hoi[1]", "disagrees"),
    ("hoi_600", lambda a: a["hoi"].__setitem__(0, 600), "annotation.hoi[0]", "600"),
    (
        "inverted",
        lambda a: a["boxes_o"].__setitem__(0, [376.0, 345.0, 148.0, 414.0]),
        "annotation.boxes_o[0]",
        "inverted",
    ),
    (
        "out_of_image",
        lambda a: a["boxes_h"].__setitem__(1, [270.0, 303.0, 641.0, 350.0]),
        "annotation.boxes_h[1]",
        "outside the 640x427 image",
    ),
    (
        "zero_coordinate",
        lambda a: a["boxes_h"].__setitem__(0, [0.0, 306.0, 359.0, 349.0]),
        "annotation.boxes_h[0]",
        "--box-origin",
    ),
]


def test_upt_record_faults_go_to_rejects(cli: Callable[..., Result], tmp_path: Path) -> None:
    d = _upt(tmp_path, n=8)
    good_names = list(d["filenames"])
    where: dict[int, tuple[str, str, str]] = {}
    for name, mutate, field, reason in UPT_CASES:
        ann = copy.deepcopy(upt_reference()["annotation"][0])
        mutate(ann)
        where[len(d["annotation"])] = (name, field, reason)
        d["annotation"].append(ann)
        d["filenames"].append(f"HICO_bad_{name}.jpg")
        d["size"].append(list(REC0_SIZE))
    extra: list[tuple[str, Any, Any, str, str]] = [
        ("not_an_object", "boxes", list(REC0_SIZE), "annotation", "expected an object"),
        ("size_string", None, ["640", 427], "size", "positive integers"),
        ("size_zero", None, [0, 427], "size", "positive integers"),
    ]
    for name, ann_value, size, field, reason in extra:
        where[len(d["annotation"])] = (name, field, reason)
        d["annotation"].append(
            ann_value if ann_value is not None else copy.deepcopy(upt_reference()["annotation"][0])
        )
        d["filenames"].append(f"HICO_bad_{name}.jpg")
        d["size"].append(size)
    for name, fname, field, reason in [
        ("escape", "../HICO_x.jpg", "filenames", "escapes the image root"),
        ("absolute", "/HICO_x.jpg", "filenames", "escapes the image root"),
        ("filename_number", 12, "filenames", "string"),
        ("duplicate", good_names[3], "filenames", "duplicate of record 3"),
    ]:
        where[len(d["annotation"])] = (name, field, reason)
        d["annotation"].append(copy.deepcopy(upt_reference()["annotation"][0]))
        d["filenames"].append(fname)
        d["size"].append(list(REC0_SIZE))
    file = write_json(tmp_path / "instances_test2015.json", d)
    out = tmp_path / "out"
    res = cli("convert", "hico", "-a", file, "-o", out, "--no-image-check", "--shard-size", "5")
    assert res.code == 0, res.err
    rows, rejects, manifest = load_out(out, tmp_path)
    assert manifest["config"]["layout"] == "upt"
    assert sample_ids(rows) == ppdm_ids(good_names)
    by_index = {r["record_index"]: r for r in rejects}
    assert sorted(by_index) == sorted(where)
    for i, (name, field, reason) in where.items():
        row = by_index[i]
        assert row["field"] == field, (name, row)
        assert reason in row["reason"], (name, row)
        raw = json.loads(row["raw"])
        assert raw["annotation"] == d["annotation"][i], name
        assert raw["filename"] == d["filenames"][i] and raw["size"] == d["size"][i], name


def test_upt_size_disagrees_with_image(cli: Callable[..., Result], tmp_path: Path) -> None:
    d = _upt(tmp_path, n=3)
    root = tmp_path / "images"
    _write_images(root, {n: tuple(s) for n, s in zip(d["filenames"], d["size"], strict=True)})
    d["size"][1] = [d["size"][1][0] + 1, d["size"][1][1]]
    file = write_json(tmp_path / "instances_test2015.json", d)
    res = cli("convert", "hico", "-a", file, "-o", tmp_path / "out", "-i", root)
    assert res.code == 0, res.err
    rows, rejects, _ = load_out(tmp_path / "out", tmp_path)
    assert len(rows) == 2
    assert [(r["record_index"], r["field"]) for r in rejects] == [(1, "size")]
    assert "641x461" in rejects[0]["reason"] and "640x461" in rejects[0]["reason"]


# --------------------------------------------------------------------------- record-level faults: SWIG


SWIG_CASES = [
    Case(
        "category_5000", _set("box_annotations.1.category_id", 5000), "box_annotations[1].category_id", "5000"
    ),
    Case(
        "category_negative", _set("box_annotations.0.category_id", -1), "box_annotations[0].category_id", "-1"
    ),
    Case("action_407", _set("hoi_annotations.0.action_id", 407), "hoi_annotations[0].action_id", "407"),
    Case(
        "not_a_hoi_class",
        _set("hoi_annotations.0.object_id", 1),
        "hoi_annotations[0].action_id",
        "not a swig-hoi HOI class",
    ),
    Case(
        "subject_not_person",
        _set("hoi_annotations.0.subject_id", 1),
        "hoi_annotations[0].subject_id",
        "not a person",
    ),
    Case(
        "object_out_of_range",
        _set("hoi_annotations.0.object_id", 3),
        "hoi_annotations[0].object_id",
        "out of range",
    ),
    Case(
        "inverted",
        _set("box_annotations.1.bbox", [441, 217, 282, 317]),
        "box_annotations[1].bbox",
        "inverted",
    ),
    Case(
        "out_of_image",
        _set("box_annotations.2.bbox", [0, 0, 682, 509]),
        "box_annotations[2].bbox",
        "outside the 681x512 image",
    ),
    Case(
        "bbox_string", _set("box_annotations.2.bbox", "0 0 438 509"), "box_annotations[2].bbox", "4 numbers"
    ),
    Case("action_float", _set("hoi_annotations.0.action_id", 3.5), "hoi_annotations[0].action_id", "integer"),
    Case(
        "object_missing",
        _set("hoi_annotations.0.object_id", _DELETE),
        "hoi_annotations[0].object_id",
        "integer",
    ),
    Case("not_an_object", lambda r: "swig_x.jpg", "<record>", "expected an object"),
    Case("boxes_not_list", _set("box_annotations", None), "box_annotations", "not a list"),
    Case("file_name_missing", _set("file_name", _DELETE), "file_name", "missing"),
    Case("width_negative", _set("width", -681), "width", "positive integer"),
    Case("escape", _set("file_name", "../../etc/passwd"), "file_name", "escapes the image root"),
]


@pytest.mark.parametrize("which", ["all", "semantic_only"])
def test_swig_record_faults_go_to_rejects(which: str, cli: Callable[..., Result], tmp_path: Path) -> None:
    structural = {
        "bbox_string",
        "action_float",
        "object_missing",
        "not_an_object",
        "boxes_not_list",
        "file_name_missing",
        "width_negative",
    }
    cases = [c for c in SWIG_CASES if which == "all" or c.name not in structural]
    good = _swig_records(5)
    records: list[Any] = list(copy.deepcopy(good))
    where: dict[int, Case] = {}
    for k, case in enumerate(cases):
        r = copy.deepcopy(good[k % 5])
        r["file_name"] = f"bad_{k}.jpg"
        where[len(records)] = case
        records.append(case.mutate(r))
    where[len(records)] = Case("duplicate", lambda r: r, "file_name", "duplicate of record 2")
    records.append(copy.deepcopy(good[2]))
    ann = write_json(tmp_path / "swig_test_1000.json", records)
    out = tmp_path / "out"
    res = cli("convert", "swig", "-a", ann, "-o", out, "--no-image-check", "--shard-size", "6")
    assert res.code == 0, res.err
    rows, rejects, manifest = load_out(out, tmp_path)
    assert sample_ids(rows) == [f"swig-hoi/test/swig_{i:04d}" for i in range(5)]
    check_rejects(rejects, records, where, ann)
    assert manifest["counts"] == {"in": len(records), "out": 5, "rejected": len(where)}
    # aux_category_id is not kept, but it survives in raw for rejected records
    assert all(json.loads(r["raw"]) == records[r["record_index"]] for r in rejects)


def test_swig_box_origin_hint(cli: Callable[..., Result], tmp_path: Path) -> None:
    records = _swig_records(3)
    ann = write_json(tmp_path / "swig_test_1000.json", records)
    res = cli(
        "convert", "swig", "-a", ann, "-o", tmp_path / "out", "--no-image-check", "--box-origin", "one-based"
    )
    assert res.code == 0, res.err
    rows, rejects, _ = load_out(tmp_path / "out", tmp_path)
    assert rows == [] and len(rejects) == 3
    assert all(r["field"] == "box_annotations[2].bbox" and "--box-origin" in r["reason"] for r in rejects)


def test_swig_images_size_and_missing(cli: Callable[..., Result], tmp_path: Path) -> None:
    records = _swig_records(4)
    root = tmp_path / "images_512"
    _write_images(
        root, {"swig_0000.jpg": (681, 512), "swig_0001.jpg": (680, 512), "swig_0003.jpg": (681, 512)}
    )
    ann = write_json(tmp_path / "swig_test_1000.json", records)
    res = cli("convert", "swig", "-a", ann, "-o", tmp_path / "out", "-i", root)
    assert res.code == 0, res.err
    rows, rejects, _ = load_out(tmp_path / "out", tmp_path)
    assert sample_ids(rows) == ["swig-hoi/test/swig_0000", "swig-hoi/test/swig_0003"]
    got = {r["record_index"]: (r["field"], r["reason"]) for r in rejects}
    assert got[1][0] == "size" and "681x512" in got[1][1] and "680x512" in got[1][1]
    assert got[2][0] == "file_name" and "not found" in got[2][1]


# --------------------------------------------------------------------------- output directories


def test_output_directory_of_another_job(cli: Callable[..., Result], tmp_path: Path) -> None:
    a = write_json(tmp_path / "a_test_hico.json", ppdm_good(3))
    b = write_json(tmp_path / "b_test_hico.json", ppdm_good(5))
    out = tmp_path / "out"
    assert cli("convert", "hico", "-a", a, "-o", out, "--no-image-check").code == 0
    before = (out / "manifest.json").read_bytes()

    line = assert_file_error(
        cli("convert", "hico", "-a", b, "-o", out, "--no-image-check"), str(out), "--overwrite"
    )
    assert "another job" in line
    assert (out / "manifest.json").read_bytes() == before

    # same input, different options: also another job
    assert_file_error(
        cli("convert", "hico", "-a", a, "-o", out, "--no-image-check", "--clip-boxes"), str(out)
    )

    res = cli("convert", "hico", "-a", b, "-o", out, "--no-image-check", "--overwrite")
    assert res.code == 0, res.err
    rows, _, manifest = load_out(out, tmp_path)
    assert len(rows) == 5 and manifest["config"]["annotations"] == str(b)


def test_complete_output_directory_same_job(cli: Callable[..., Result], tmp_path: Path) -> None:
    """A rerun of a finished job (a Makefile's second run) says so in one line and exits 0."""
    a = write_json(tmp_path / "test_hico.json", ppdm_good(3))
    out = tmp_path / "out"
    assert cli("convert", "hico", "-a", a, "-o", out, "--no-image-check").code == 0
    before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
    res = cli("convert", "hico", "-a", a, "-o", out, "--no-image-check")
    assert res.code == 0 and res.err == ""
    assert res.out.strip() == f"convert: {out} already complete, nothing to do"
    assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    other = cli("convert", "hico", "-a", a, "-o", out, "--no-image-check", "--shard-size", "2")
    assert "holds another job" in assert_file_error(other, str(out))
    assert cli("convert", "hico", "-a", a, "-o", out, "--no-image-check", "--overwrite").code == 0


def test_overwrite_refuses_a_directory_that_is_not_a_dataset(
    cli: Callable[..., Result], tmp_path: Path
) -> None:
    a = write_json(tmp_path / "test_hico.json", ppdm_good(3))
    out = tmp_path / "precious"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    line = assert_file_error(cli("convert", "hico", "-a", a, "-o", out, "--no-image-check"), str(out))
    assert "not empty" in line
    assert_file_error(cli("convert", "hico", "-a", a, "-o", out, "--no-image-check", "--overwrite"), str(out))
    assert (out / "notes.txt").read_text() == "keep me"


def test_empty_output_directory_is_fine(cli: Callable[..., Result], tmp_path: Path) -> None:
    a = write_json(tmp_path / "test_hico.json", ppdm_good(3))
    out = tmp_path / "out"
    out.mkdir()
    assert cli("convert", "hico", "-a", a, "-o", out, "--no-image-check").code == 0
    assert not (out / ".work").exists()
