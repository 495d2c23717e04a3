"""HOI-QA evaluation: perfect answers, hand-computed IoU and noun cases, groups and subsets, CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from light_cli import run_light

from hoidata.errors import HoidataError
from hoidata.eval.hoiqa import (
    classify,
    eval_hoiqa,
    grid_boxes,
    inclusive_iou,
    load_items,
    noun_correct,
    score_boxes,
)
from hoidata.pipelines.convert import ConvertConfig, convert

VISOR = [
    ("[refer] Where is the right hand of the person?", "{<10><10><29><29>}"),
    ("[refer] Where are the hands of the person?", "{<0><0><9><9>} {<50><50><59><59>}"),
    ("[refer] Locate the object being manipulated by the left hand", "{<30><40><60><80>}"),
    ("[refer] Which hand has the knife?", "{<5><5><25><35>}"),
    ("[vqa] What hand is holding the knife?", "right hand"),
    ("[vqa] What is the object in the left hand?", "cutting board"),
    ("[vqa] What hand is holding the sponge?", "left glove"),
]
TEST = {
    "a1": {"image_path": "P01/frame_0000000001.jpg", "noun": "knife", "bbox": [10, 20, 100, 120]},
    "a2": {"image_path": "P01/frame_0000000002.jpg", "noun": "right hand", "bbox": [0, 0, 50, 50]},
}


def _convert(root: Path, name: str, data: object, **kw: object) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    ann = root / name
    ann.write_text(json.dumps(data))
    cfg = ConvertConfig(source="hoiqa", annotations=str(ann), split="test", image_check=False, **kw)
    convert(cfg, root / "out", progress=False)
    return root / "out"


@pytest.fixture(scope="module")
def visor(tmp_path_factory: pytest.TempPathFactory) -> Path:
    records = [
        {"id": i, "question": q, "answer": a, "image_path": f"V/{i}.jpg"} for i, (q, a) in enumerate(VISOR)
    ]
    # 100x100 images: grid units are pixels, so the IoUs below are computed by hand
    return _convert(tmp_path_factory.mktemp("visor"), "epic-visor-test.json", records, image_size=(100, 100))


@pytest.fixture(scope="module")
def epic_test(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _convert(tmp_path_factory.mktemp("epic"), "epic-test.json", TEST)


def _write(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"sample_id": s, "completion": c}) + "\n" for s, c in rows))
    return path


def _visor_answers() -> list[tuple[str, str]]:
    """The dataset's own answers, keyed by the bare row id (one item per VISOR row)."""
    return [(f"hoi-qa/test/{i}", a) for i, (_, a) in enumerate(VISOR)]


def test_visor_perfect_answers_score_one(visor: Path, tmp_path: Path) -> None:
    report = eval_hoiqa(_write(tmp_path / "c.jsonl", _visor_answers()), visor)
    assert report.overall["noun_accuracy"] == 1.0 and report.overall["box_accuracy"] == 1.0
    assert report.overall["mean_iou"] == 1.0
    assert report.overall["box_total"] == 5 and report.overall["noun_total"] == 3  # the hands count twice
    assert report.groups["ho_ref"]["box_total"] == 3 and report.groups["i_ref"]["box_total"] == 2
    assert report.groups["i_ref"]["noun_total"] == 3 and report.groups["other"]["noun_total"] == 0
    totals = {k: v["total"] for k, v in report.subsets.items()}
    assert totals == {
        "handBB2handN": 0,
        "objBB2objN": 0,
        "objN2objBB": 0,
        "handN2handBB": 3,
        "handN2objBB": 1,
        "objN2handBB": 1,
        "objN2handN": 2,
        "handN2objN": 1,
        "actObjN2objBB": 0,  # hoidata qa's pair questions: none in HOI-QA
        "actObjN2personBB": 0,
        "actN2objN": 0,
    }
    assert all(v["accuracy"] == 1.0 for v in report.subsets.values() if v["total"])


def test_test_layout_needs_an_image_size_and_scores_one(epic_test: Path, tmp_path: Path) -> None:
    items = load_items(epic_test)
    assert [it.id for it in items] == [f"hoi-qa/test/a{k}#{j}" for k in (1, 2) for j in (0, 1)]
    # 200x200: grid = pixels / 2
    rows = [
        ("hoi-qa/test/a1#0", "{<5><10><50><60>}"),
        ("hoi-qa/test/a1#1", "It is a knife."),
        ("hoi-qa/test/a2#0", "{<0><0><25><25>}"),
        ("hoi-qa/test/a2#1", "the Right Hand"),
    ]
    path = _write(tmp_path / "c.jsonl", rows)
    with pytest.raises(HoidataError, match="image size unknown"):
        eval_hoiqa(path, epic_test)
    report = eval_hoiqa(path, epic_test, image_size=(200, 200))
    assert (
        report.overall["noun_accuracy"] == report.overall["box_accuracy"] == report.overall["mean_iou"] == 1.0
    )
    assert {k: v["total"] for k, v in report.subsets.items() if v["total"]} == {
        "handBB2handN": 1,
        "objBB2objN": 1,
        "objN2objBB": 1,
        "handN2handBB": 1,
    }
    assert report.groups["ho_ref"]["box_total"] == 2 and report.groups["ho_ref"]["noun_total"] == 2


def test_missing_wrong_and_unmatched_completions(visor: Path, tmp_path: Path) -> None:
    rows = [*_visor_answers()[:4], ("hoi-qa/test/0", "{<0><0><1><1>}"), ("nope", "x")]
    report = eval_hoiqa(_write(tmp_path / "c.jsonl", rows), visor)
    assert report.counts["duplicate_completions"] == 1 and report.unmatched_samples == ["nope"]
    assert report.counts["without_completion"] == 3 and report.overall["noun_accuracy"] == 0.0
    skipped = eval_hoiqa(_write(tmp_path / "c.jsonl", rows), visor, skip_missing=True)
    assert skipped.counts["evaluated"] == 4 and skipped.overall["noun_total"] == 0


# ---- hand-computed cases -----------------------------------------------------------------------
def test_inclusive_iou_of_exactly_one_half_is_not_a_hit() -> None:
    gt = np.array([[0.0, 0.0, 9.0, 9.0]])  # 10 x 10 pixels with +1
    half = np.array([[0.0, 0.0, 9.0, 4.0]])  # 10 x 5 = 50 / 100
    more = np.array([[0.0, 0.0, 9.0, 5.0]])  # 60 / 100
    assert inclusive_iou(half, gt)[0] == 0.5 and inclusive_iou(more, gt)[0] == 0.6
    assert score_boxes(half, gt) == (pytest.approx([0.5]), False)
    assert score_boxes(more, gt)[1] is True
    # touching boxes overlap by one pixel column under +1: 10 / 190
    assert inclusive_iou(np.array([[9.0, 0.0, 18.0, 9.0]]), gt)[0] == pytest.approx(10 / 190)
    assert inclusive_iou(np.array([[10.0, 0.0, 19.0, 9.0]]), gt)[0] == 0.0


def test_one_box_takes_the_best_prediction_two_boxes_need_exactly_two() -> None:
    a, b = [0.0, 0.0, 9.0, 9.0], [50.0, 50.0, 59.0, 59.0]
    far = [80.0, 80.0, 89.0, 89.0]
    best, ok = score_boxes(np.array([far, a]), np.array([a]))
    assert ok and best.tolist() == [1.0]
    two = np.array([a, b])
    assert score_boxes(np.array([b, a]), two) == (pytest.approx([1.0, 1.0]), True)  # any order
    assert score_boxes(np.array([a]), two)[0].tolist() == [0.0, 0.0]  # one box for two: wrong
    assert score_boxes(np.array([a, b, far]), two)[1] is False  # three boxes: wrong
    best, ok = score_boxes(np.array([a, far]), two)
    assert not ok and best.tolist() == [1.0, 0.0]  # one right, one wrong: both wrong


def test_grid_boxes_rescale_like_the_converter() -> None:
    px = grid_boxes("at {<10><20><30><40>} and {<0><0><100><100>}", 456, 256)
    np.testing.assert_allclose(px, [[45.6, 51.2, 136.8, 102.4], [0, 0, 456, 256]])
    assert grid_boxes("{<10><20><30><40>}", 456, 256, truncate=True).tolist() == [[45, 51, 136, 102]]
    assert grid_boxes("no box", 10, 10).shape == (0, 4)


def test_noun_rules() -> None:
    assert noun_correct("The right hand.", "right hand") and not noun_correct("right", "right hand")
    assert noun_correct("a blue glove", "left glove")
    assert noun_correct("It is a cutting board.", "cutting board")  # a run of words
    assert noun_correct("board", "board") and not noun_correct("knives", "knife")
    assert not noun_correct("", "knife")


def test_classify_templates() -> None:
    assert classify("Where is the knife", None, True) == ("ho_ref", "objN2objBB")
    assert classify("Where is the left hand", None, True) == ("ho_ref", "handN2handBB")
    assert classify("<box>", "knife", False) == ("ho_ref", "objBB2objN")
    assert classify("Which hand has the cup?", None, True) == ("i_ref", "objN2handBB")
    assert classify("What is in the bowl?", "rice", False) == ("other", None)


# ---- command line ------------------------------------------------------------------------------
def test_cli_eval_hoiqa_is_light_and_writes_json(visor: Path, tmp_path: Path) -> None:
    r = run_light("eval", "hoiqa", "--help")
    assert r.returncode == 0 and "Examples" in r.stdout
    path = _write(tmp_path / "c.jsonl", _visor_answers())
    r = run_light("eval", "hoiqa", str(path), "--gt", str(visor), "--json", str(tmp_path / "r.json"))
    assert r.returncode == 0, r.stderr
    assert "ho_ref" in r.stdout and "100.00" in r.stdout
    out = json.loads((tmp_path / "r.json").read_text())
    assert out["overall"]["box_accuracy"] == 1.0 and len(out["items"]) == len(VISOR)


def test_cli_bad_input_exits_2(visor: Path, epic_test: Path, tmp_path: Path) -> None:
    good = _write(tmp_path / "c.jsonl", _visor_answers())
    (tmp_path / "bad.jsonl").write_text("{not json\n")
    cases = [
        [str(tmp_path / "missing.jsonl"), "--gt", str(visor)],
        [str(tmp_path / "bad.jsonl"), "--gt", str(visor)],
        [str(_write(tmp_path / "x.jsonl", [("nope", "x")])), "--gt", str(visor)],
        [str(good), "--gt", str(tmp_path / "nowhere")],
        [str(_write(tmp_path / "e.jsonl", [("hoi-qa/test/a1#0", "{<1><1><2><2>}")])), "--gt", str(epic_test)],
        [str(good), "--gt", str(visor), "--image-size", "big"],
    ]
    for args in cases:
        r = run_light("eval", "hoiqa", *args)
        assert r.returncode == 2, (args, r.stdout, r.stderr)
        assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1
