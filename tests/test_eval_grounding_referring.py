"""``hoidata eval grounding`` / ``eval referring``: AR and verb-set metrics on built SFT datasets,
hand-computed cases, a brute-force check of the vectorised greedy matching, and the light CLI."""

from __future__ import annotations

import importlib.machinery
import json
import sys
import types
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from light_cli import run_light

from hoidata.errors import HoidataError
from hoidata.eval import grounding, referring
from hoidata.io import read_table
from hoidata.pipelines.boxes import BoxesConfig, boxes
from hoidata.pipelines.build_sft import BuildSftConfig, build_sft
from hoidata.profiles.answers import Answers, parse_verbs
from hoidata.rewards.targets import Targets
from hoidata.schemas.boxes import iou

Box = list[float]
OBJ = [200.0, 0.0, 300.0, 100.0]  # the object box every hand-made pair shares unless said otherwise


# ---- datasets built from the demo ---------------------------------------------------------------
@pytest.fixture(scope="module")
def built(demo_canonical, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("eval-gr")
    boxes(demo_canonical(12), root / "boxes", BoxesConfig(profile="qwen3-vl"))
    out = {}
    for task in ("grounding", "referring"):
        build_sft(root / "boxes", root / task, BuildSftConfig(task=task))
        out[task] = root / task
    return out


def _answers(path: Path) -> list[tuple[str, str]]:
    """``(sample_id, answer)`` of each SFT sample, as a perfect model would answer."""
    rows = read_table(path, ["sample_id", "messages"]).to_pylist()
    return [(r["sample_id"], r["messages"][-1]["content"][0]["text"]) for r in rows]


def _jsonl(path: Path, rows: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _perfect(path: Path) -> list[dict[str, Any]]:
    return [
        {"sample_id": sid, "completion": f"<think>Look.</think><answer>{a}</answer>"}
        for sid, a in _answers(path)
    ]


def test_perfect_grounding_answers_score_ar_one(built: dict[str, Path], tmp_path: Path) -> None:
    rows = _perfect(built["grounding"])
    rows.append({"sample_id": "stranger", "completion": "[]"})
    rows.append({"sample_id": rows[0]["sample_id"], "completion": "garbage"})  # repeat: ignored
    path = _jsonl(tmp_path / "g.jsonl", rows)
    for coco in (False, True):
        report = grounding.eval_grounding(path, built["grounding"], coco=coco)
        assert report.method == ("coco" if coco else "pooled")
        assert report.summary["ar"] == 1.0 and report.summary["ar50"] == 1.0 and report.summary["ar75"] == 1.0
        assert report.recall == [1.0] * 10
        assert report.unmatched_samples == ["stranger"]
        n = len(rows) - 2
        assert report.counts["evaluated"] == report.counts["answered"] == n
        assert report.counts["duplicate_completions"] == 1 and report.counts["empty_answers"] == 0
        sizes = [report.summary[f"ar_{s}"] for s in grounding.SIZES]
        assert all(v in (1.0, None) for v in sizes) and any(v == 1.0 for v in sizes)
        assert sum(c["gt_pairs"] for c in report.categories) == report.counts["gt_pairs"]
    report.write_json(tmp_path / "r.json")
    saved = json.loads((tmp_path / "r.json").read_text())
    assert saved["method"] == "coco" and saved["summary"]["ar"] == 1.0 and "continuous" in saved["iou"]


def test_missing_answers_lower_recall_unless_skipped(built: dict[str, Path], tmp_path: Path) -> None:
    rows = _perfect(built["grounding"])
    gt = Targets.from_arrow(read_table(built["grounding"]))
    half = rows[::2]
    path = _jsonl(tmp_path / "half.jsonl", half)
    report = grounding.eval_grounding(path, built["grounding"])
    answered_pairs = int(gt.counts[::2].sum())
    assert report.summary["ar"] == pytest.approx(answered_pairs / len(gt.person))
    assert report.counts["without_completion"] == len(rows) - len(half)
    assert any("without a completion" in n for n in report.notes)
    skipped = grounding.eval_grounding(path, built["grounding"], skip_missing=True)
    assert skipped.summary["ar"] == 1.0 and skipped.counts["evaluated"] == len(half)


def test_message_list_completions_in_parquet(built: dict[str, Path], tmp_path: Path) -> None:
    rows = [
        {"sample_id": r["sample_id"], "completion": [{"role": "assistant", "content": r["completion"]}]}
        for r in _perfect(built["grounding"])
    ]
    rows[0]["completion"] = [{"role": "assistant", "content": "<answer>no idea</answer>"}]
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "g.parquet")
    report = grounding.eval_grounding(tmp_path / "g.parquet", built["grounding"])
    gt = Targets.from_arrow(read_table(built["grounding"]))
    assert report.counts["empty_answers"] == 1
    assert report.summary["ar"] == pytest.approx(1 - gt.counts[0] / len(gt.person))


def test_perfect_and_partial_referring_answers(built: dict[str, Path], tmp_path: Path) -> None:
    rows = _perfect(built["referring"])
    path = _jsonl(tmp_path / "r.jsonl", rows)
    report = referring.eval_referring(path, built["referring"])
    assert report.summary == {
        "exact_match": 1.0,
        "precision": 1.0,
        "recall": 1.0,
        "f1": 1.0,
        "mean_f1": 1.0,
        "macro_f1": 1.0,
    }
    assert report.bertscore is None and any("BERTScore not computed" in n for n in report.notes)
    # one answer adds a verb: precision and exact match drop, recall stays
    gt = Targets.from_arrow(read_table(built["referring"]))
    first = set(gt.verb.to_pylist()[gt.offsets[0] : gt.offsets[1]])
    extra = "ride" if "ride" not in first else "hold"
    rows[0]["completion"] = "<answer>" + ", ".join([*sorted(first), extra]) + "</answer>"
    report = referring.eval_referring(_jsonl(tmp_path / "r2.jsonl", rows), built["referring"])
    n = len(rows)
    assert report.summary["exact_match"] == pytest.approx((n - 1) / n)
    assert report.summary["recall"] == 1.0
    assert report.summary["mean_f1"] == pytest.approx((n - 1 + 2 * len(first) / (2 * len(first) + 1)) / n)


# ---- hand-computed grounding cases -------------------------------------------------------------
def _pred(rows: list[list[tuple[Box, Box | None]]]) -> Answers:
    flat = [e for r in rows for e in r]
    person = np.array([e[0] for e in flat], np.float64).reshape(-1, 4)
    obj = np.array([e[1] if e[1] is not None else [np.nan] * 4 for e in flat], np.float64).reshape(-1, 4)
    return Answers(
        offsets=np.concatenate([[0], np.cumsum([len(r) for r in rows])]).astype(np.int64),
        person=person,
        object=obj,
        verb=pa.nulls(len(flat), pa.string()),
        object_label=pa.nulls(len(flat), pa.string()),
    )


def _gt(rows: list[list[tuple[Box, Box | None]]], verb: str = "ride", obj: str = "horse") -> Targets:
    pairs = [
        [{"person_bbox": p, "object_bbox": o, "verb": verb, "object": obj if o else None} for p, o in r]
        for r in rows
    ]
    return Targets.from_rows(pairs, "grounding", 640, 480)


A: Box = [0.0, 0.0, 100.0, 100.0]


def test_box_at_iou_point_six_counts_for_three_thresholds() -> None:
    person = [0.0, 0.0, 60.0, 100.0]
    assert iou([person], [A])[0] == 0.6
    report = grounding.evaluate(_pred([[(person, OBJ)]]), _gt([[(A, OBJ)]]))
    assert report.recall == [1.0, 1.0, 1.0] + [0.0] * 7  # 0.50, 0.55, 0.60 — the exact decimal 0.6
    assert report.summary["ar"] == pytest.approx(0.3)
    assert (report.summary["ar50"], report.summary["ar75"]) == (1.0, 0.0)


def test_duplicates_false_positives_and_missing_answers() -> None:
    b: Box = [300.0, 0.0, 400.0, 100.0]
    gt = _gt([[(A, OBJ), (b, OBJ)], [(A, OBJ)]])
    dup = grounding.evaluate(_pred([[(A, OBJ), (A, OBJ)], [(A, OBJ)]]), gt)
    assert dup.summary["ar"] == pytest.approx(2 / 3)  # the repeat does not take the second pair
    missing = grounding.evaluate(_pred([[(A, OBJ), (b, OBJ)], []]), gt)
    assert missing.summary["ar"] == pytest.approx(2 / 3) and missing.counts["empty_answers"] == 1
    junk = [([500.0, 0.0, 510.0, 10.0], OBJ)] * 7
    full = grounding.evaluate(_pred([[*junk, (A, OBJ), (b, OBJ)], [(A, OBJ), *junk]]), gt)
    assert full.summary["ar"] == 1.0 and full.counts["predictions"] == 17  # false positives cost nothing
    # COCO-style keeps the first 100 predictions of an answer: a right answer after 100 wrong ones is lost
    late = _pred([[*([([500.0, 0.0, 510.0, 10.0], OBJ)] * 100), (A, OBJ), (b, OBJ)], [(A, OBJ)]])
    assert grounding.evaluate(late, gt).summary["ar"] == 1.0
    coco = grounding.evaluate(late, gt, method="coco")
    assert coco.summary["ar"] == pytest.approx(1 / 3)  # one category: 1 of its 3 pairs


def test_greedy_order_pooled_by_mean_iou_coco_by_answer_order() -> None:
    b: Box = [20.0, 0.0, 120.0, 100.0]
    p1: Box = [5.0, 0.0, 105.0, 100.0]  # IoU 95/105 with A, 85/115 with b
    gt, pred = _gt([[(A, OBJ), (b, OBJ)]]), _pred([[(p1, OBJ), (A, OBJ)]])
    # pooled: A–A (1.0) first, then p1 takes b (0.739) for t <= 0.70 → 5 × 1 + 5 × 1/2
    assert grounding.evaluate(pred, gt).summary["ar"] == pytest.approx(0.75)
    # COCO: p1 comes first and takes A; the second prediction reaches b only at 0.667 (t <= 0.65),
    # and at t = 0.95 p1 misses A so the second one takes it → 4 × 1 + 6 × 1/2
    assert grounding.evaluate(pred, gt, method="coco").summary["ar"] == pytest.approx(0.7)


def test_size_buckets_and_pairs_without_object() -> None:
    small: Box = [200.0, 0.0, 220.0, 20.0]  # 400 px²
    medium: Box = [200.0, 0.0, 250.0, 50.0]  # 2,500 px²
    large: Box = [200.0, 0.0, 300.0, 100.0]  # 10,000 px²
    lone: Box = [0.0, 0.0, 40.0, 40.0]  # no object: bucketed by this 1,600 px² person box (medium)
    gt = _gt([[(A, small), (A, medium), (A, large)], [(lone, None)]])
    assert grounding.size_bucket(gt).tolist() == [0, 1, 2, 1]
    report = grounding.evaluate(_pred([[(A, small)], [(lone, None)]]), gt)
    s = report.summary
    assert (s["ar_small"], s["ar_medium"], s["ar_large"], s["ar"]) == (1.0, 0.5, 0.0, 0.5)
    # an object box where the pair has none does not match it
    with_object = grounding.evaluate(_pred([[(A, small)], [(lone, OBJ)]]), gt)
    assert with_object.summary["ar_medium"] == 0.0


def _brute_force(pred: Answers, gt: Targets, t: float, method: str) -> np.ndarray:
    """The sequential definition, one sample and one edge at a time."""
    hit = np.zeros(len(gt.person), bool)
    for s in range(len(gt)):
        ps = range(pred.offsets[s], pred.offsets[s + 1])
        if method == "coco":
            ps = ps[: grounding.MAX_DETS]
        edges = []
        for p in ps:
            for g in range(gt.offsets[s], gt.offsets[s + 1]):
                ip = float(iou([pred.person[p]], [gt.person[g]])[0])
                io = float(iou([pred.object[p]], [gt.object[g]])[0])
                if min(ip, io) >= t:
                    edges.append(
                        ((-(ip + io) / 2, p, g) if method == "pooled" else (p, -(ip + io) / 2, g), p, g)
                    )
        used_p: set[int] = set()
        for _, p, g in sorted(edges):
            if p not in used_p and not hit[g]:
                used_p.add(p)
                hit[g] = True
    return hit


@pytest.mark.parametrize("method", grounding.METHODS)
def test_vectorised_matching_equals_the_sequential_greedy(method: str) -> None:
    rng = np.random.default_rng(7)

    def box() -> Box:
        x, y = rng.integers(0, 40, 2)
        return [float(x), float(y), float(x + rng.integers(30, 60)), float(y + rng.integers(30, 60))]

    gt_rows = [[(box(), box()) for _ in range(rng.integers(1, 6))] for _ in range(40)]
    pred_rows = [[(box(), box()) for _ in range(rng.integers(0, 9))] for _ in range(40)]
    gt, pred = _gt(gt_rows), _pred(pred_rows)
    tp = grounding.match(pred, gt, method=method)
    assert tp.any() and not tp.all()
    for k, t in enumerate(grounding.THRESHOLDS):
        assert tp[k].tolist() == _brute_force(pred, gt, float(t), method).tolist()


# ---- referring by hand ---------------------------------------------------------------------------
def test_referring_partial_answer_and_normalisation() -> None:
    gt_rows = [
        [{"person_bbox": A, "object_bbox": OBJ, "verb": "ride", "object": "horse"}],
        [
            {"person_bbox": A, "object_bbox": OBJ, "verb": "hold", "object": "sports_ball"},
            {"person_bbox": A, "object_bbox": OBJ, "verb": "throw", "object": "sports_ball"},
        ],
    ]
    gt = Targets.from_rows(gt_rows, "referring", 640, 480)
    offsets, verbs = parse_verbs(["<answer>ride, hold</answer>", "Throw and HOLD."])
    report = referring.evaluate(offsets, verbs, gt)
    s = report.summary
    assert s["exact_match"] == 0.5  # the second answer is the same set, in another order and case
    assert s["mean_f1"] == pytest.approx((2 / 3 + 1) / 2)
    assert (s["precision"], s["recall"]) == (pytest.approx(3 / 4), 1.0)
    assert s["f1"] == pytest.approx(6 / 7)
    by_verb = {v["verb"]: v for v in report.verbs}
    assert by_verb["hold"] == {
        "verb": "hold",
        "gt": 1,
        "predicted": 2,
        "tp": 1,
        "precision": 0.5,
        "recall": 1.0,
        "f1": pytest.approx(2 / 3),
        "in_ground_truth": True,
    }
    assert s["macro_f1"] == pytest.approx((1 + 2 / 3 + 1) / 3)
    ride_only = Targets.from_rows([gt_rows[0]], "referring", 640, 480)
    one = referring.evaluate(*parse_verbs(["ride, hold"]), ride_only)
    assert one.summary["mean_f1"] == pytest.approx(2 / 3) and one.summary["exact_match"] == 0.0


def test_bertscore_runs_only_with_the_package_and_a_local_model(
    built: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _jsonl(tmp_path / "r.jsonl", _perfect(built["referring"]))
    if "bert_score" not in sys.modules:
        missing = referring.eval_referring(path, built["referring"], bertscore_model=str(tmp_path))
        assert missing.bertscore is None and any("not installed" in n for n in missing.notes)
    calls: dict[str, Any] = {}

    def fake_score(cands: list[str], refs: list[str], **kw: Any) -> tuple[np.ndarray, ...]:
        calls.update(kw, cands=cands, refs=refs)
        return np.full(len(cands), 0.5), np.full(len(cands), 0.7), np.full(len(cands), 0.6)

    module = types.ModuleType("bert_score")
    module.__spec__ = importlib.machinery.ModuleSpec("bert_score", None)
    module.score = fake_score  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "bert_score", module)
    report = referring.eval_referring(
        path, built["referring"], bertscore_model=str(tmp_path), bertscore_layers=17
    )
    assert report.bertscore is not None
    assert (report.bertscore["model"], report.bertscore["num_layers"]) == (str(tmp_path), 17)
    scores = [report.bertscore[k] for k in ("precision", "recall", "f1")]
    assert scores == pytest.approx([0.5, 0.7, 0.6])
    assert calls["model_type"] == str(tmp_path) and calls["idf"] is False
    assert calls["cands"] == calls["refs"]  # perfect answers: the answer blocks are the references
    with pytest.raises(HoidataError, match="BERTScore model not found"):
        referring.eval_referring(path, built["referring"], bertscore_model=str(tmp_path / "nope"))


# ---- command line ------------------------------------------------------------------------------
def test_cli_reports_and_stays_light(built: dict[str, Path], tmp_path: Path) -> None:
    path = _jsonl(tmp_path / "g.jsonl", _perfect(built["grounding"]))
    done = run_light(
        "eval",
        "grounding",
        str(path),
        "--gt",
        str(built["grounding"]),
        "--coco",
        "--json",
        str(tmp_path / "g.json"),
    )
    assert done.returncode == 0, done.stderr
    assert "Grounding AR — coco" in done.stdout and "100.00" in done.stdout
    assert json.loads((tmp_path / "g.json").read_text())["summary"]["ar"] == 1.0
    path = _jsonl(tmp_path / "r.jsonl", _perfect(built["referring"]))
    done = run_light(
        "eval", "referring", str(path), "--gt", str(built["referring"]), "--json", str(tmp_path / "r.json")
    )
    assert done.returncode == 0, done.stderr
    assert (
        "exact match" in done.stdout and json.loads((tmp_path / "r.json").read_text())["summary"]["f1"] == 1.0
    )


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("no-file", "file not found"),
        ("wrong-task", "no grounding samples in this dataset"),
        ("no-match", "none of the 1 completions"),
        ("not-json", "not JSON"),
    ],
)
def test_cli_bad_input_is_one_line_exit_two(
    built: dict[str, Path], tmp_path: Path, case: str, needle: str
) -> None:
    gt = built["referring"] if case == "wrong-task" else built["grounding"]
    path = tmp_path / "c.jsonl"
    if case == "wrong-task":
        _jsonl(path, _perfect(built["referring"]))
    elif case == "no-match":
        _jsonl(path, [{"sample_id": "stranger", "completion": "[]"}])
    elif case == "not-json":
        path.write_text("{oops\n")
    done = run_light("eval", "grounding", str(path), "--gt", str(gt))
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], done.stderr
    assert "Traceback" not in done.stderr
