"""SWIG-HOI mAP: every evaluation class scored perfectly, hand-computed cases, CHOIR vs THID, CLI."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from light_cli import run_light

from hoidata.eval import PREDICTIONS_SCHEMA, GroundTruth, load_ground_truth, to_detections, write_predictions
from hoidata.eval.hico import continuous_overlap
from hoidata.eval.swig import VARIANTS, eval_swig, evaluate, get_protocol
from hoidata.io import read_table
from hoidata.pipelines.convert import ConvertConfig, convert
from hoidata.schemas.taxonomy import swig_hoi

TAX = swig_hoi()
EVAL = np.flatnonzero(TAX.flags["evaluation"] == 1)


def ap11(precisions: list[float]) -> float:
    """The reference sum: ``ap += max(prec[rec >= i / 10]) / 11`` for i = 0..10, in order."""
    ap = 0.0
    for p in precisions:
        ap += p / 11.0
    return ap


PERFECT = ap11([1.0] * 11)

HUMAN, OBJ = [0, 0, 438, 509], [247, 134, 566, 512]


def _records(classes: np.ndarray, repeat_first: bool = False) -> list[dict[str, Any]]:
    """One image per class, in the SWIG-HOI JSON layout (docs/formats.md §2); ``repeat_first``: the
    first image lists its annotation twice (CHOIR merges it, THID keeps both)."""
    out = []
    for i, hoi in enumerate(classes):
        action, obj = int(TAX.hoi_verb[hoi]), int(TAX.hoi_object[hoi])
        pairs = [{"subject_id": 0, "object_id": 1, "action_id": action}]
        out.append(
            {
                "file_name": f"swig_{i:05d}.jpg",
                "img_id": i,
                "height": 512,
                "width": 681,
                "box_annotations": [
                    {"bbox": HUMAN, "category_id": 0, "aux_category_id": []},
                    {"bbox": OBJ, "category_id": obj, "aux_category_id": []},
                ],
                "hoi_annotations": pairs * (2 if i == 0 and repeat_first else 1),
            }
        )
    return out


def _convert(root: Path, records: list[dict[str, Any]]) -> Path:
    ann = root / "swig_test_1000.json"
    ann.write_text(json.dumps(records))
    cfg = ConvertConfig(source="swig", annotations=str(ann), split="test", image_check=False)
    convert(cfg, root / "gt", progress=False)
    return root / "gt"


@pytest.fixture(scope="module")
def swig_test(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _convert(tmp_path_factory.mktemp("swig"), _records(EVAL))


@pytest.fixture(scope="module")
def swig_repeated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _convert(tmp_path_factory.mktemp("swig-repeated"), _records(EVAL[:3], repeat_first=True))


def _norm(name: str) -> str:
    return name.lower().replace(" ", "_")


# (verb, object name) pairs that fit two classes: SWIG-HOI object names such as "ball" are not unique
_KEYS = Counter((int(v), _norm(TAX.objects[o])) for v, o in zip(TAX.hoi_verb, TAX.hoi_object, strict=True))
AMBIGUOUS = np.array(
    [_KEYS[(int(v), _norm(TAX.objects[o]))] > 1 for v, o in zip(TAX.hoi_verb, TAX.hoi_object, strict=True)]
)


def _gt_as_predictions(gt_dir: Path, by_name: str | None = None) -> pa.Table:
    """Every GT pair as a prediction; ``by_name``: hoi_id null (derived from the names) for the
    ``unambiguous`` classes or for ``all``."""
    rows = []
    for r in read_table(gt_dir).to_pylist():
        inst = r["instances"]
        preds = [
            {
                "person_bbox": inst[p["subject"]]["bbox"],
                "object_bbox": inst[p["object"]]["bbox"],
                "object": inst[p["object"]]["label"],
                "verb": p["verb"],
                "hoi_id": None
                if by_name == "all" or (by_name and not AMBIGUOUS[p["hoi_id"]])
                else p["hoi_id"],
                "score": 1.0,
            }
            for p in r["interactions"]
        ]
        rows.append({"sample_id": r["sample_id"], "predictions": preds})
    return pa.Table.from_pylist(rows, schema=PREDICTIONS_SCHEMA)


# ---- every evaluation class ---------------------------------------------------------------------
@pytest.mark.parametrize("variant", ["choir", "thid"])
def test_ground_truth_as_predictions_scores_one(swig_test: Path, tmp_path: Path, variant: str) -> None:
    write_predictions(_gt_as_predictions(swig_test, by_name="unambiguous"), tmp_path / "p.parquet")
    report = eval_swig(tmp_path / "p.parquet", swig_test, variant=variant)
    assert report.invalid == {}  # every (verb, object) name resolved, "vacuum cleaner" included
    assert (report.ap[EVAL] == PERFECT).all()
    for key in ("full", "rare", "non_rare", "novel"):
        assert report.map[key] == pytest.approx(1.0, abs=1e-15), key
    groups = report.to_dict()["groups"]
    assert groups == {
        "full": 4_148 if variant == "choir" else 5_539,
        "rare": 2_841,
        "non_rare": 1_307,
        "novel": 1_391,
    }
    assert report.counts["gt_pairs"] == 5_539 and report.counts["evaluated"] == 5_539


def test_names_shared_by_two_classes_need_an_hoi_id(swig_test: Path, tmp_path: Path) -> None:
    write_predictions(_gt_as_predictions(swig_test, by_name="all"), tmp_path / "p.parquet")
    report = eval_swig(tmp_path / "p.parquet", swig_test)
    n_amb = int(AMBIGUOUS[EVAL].sum())
    assert 0 < n_amb < 100 and sum(report.invalid.values()) == n_amb
    assert any("give hoi_id" in n for n in report.notes)
    assert (report.ap[EVAL[~AMBIGUOUS[EVAL]]] == PERFECT).all() and (
        report.ap[EVAL[AMBIGUOUS[EVAL]]] == 0
    ).all()


def test_thid_keeps_a_repeated_annotation_that_no_detection_can_match(swig_repeated: Path) -> None:
    gt = load_ground_truth(swig_repeated, TAX, source="swig-hoi")
    assert len(gt.hoi) == 4  # the converter keeps the repeated annotation
    table = _gt_as_predictions(swig_repeated)
    dets = to_detections(table, gt.sample_index(), TAX)
    hoi = int(EVAL[0])
    thid, choir = evaluate(gt, dets, "thid"), evaluate(gt, dets, "choir")
    # THID: npos 2, two identical detections; both take the first copy (first maximum): TP, FP
    assert thid.npos[hoi] == 2 and thid.num_tp[hoi] == 1
    assert thid.ap[hoi] == ap11([1.0] * 6 + [0.0] * 5)
    assert choir.npos[hoi] == 1 and choir.ap[hoi] == PERFECT
    assert any("repeated" in n for n in choir.notes)


# ---- hand-computed cases -------------------------------------------------------------------------
C = int(EVAL[0])  # an evaluation class
HB, OB, FAR = [0.0, 0.0, 10.0, 10.0], [20.0, 0.0, 30.0, 10.0], [100.0, 100.0, 110.0, 110.0]


def make_gt(pairs: list[tuple[int, int, int, int, list[float], list[float]]], n_images: int) -> GroundTruth:
    """pairs: (image, hoi, subject index, object index, human box, object box), in annotation order."""
    return GroundTruth(
        sample_ids=[f"img{i}" for i in range(n_images)],
        file_names=[f"img{i}.jpg" for i in range(n_images)],
        image=np.array([p[0] for p in pairs], dtype=np.int64),
        hoi=np.array([p[1] for p in pairs], dtype=np.int64),
        human=np.array([p[4] for p in pairs], dtype=np.float64).reshape(-1, 4),
        obj=np.array([p[5] for p in pairs], dtype=np.float64).reshape(-1, 4),
        subject=np.array([p[2] for p in pairs], dtype=np.int64),
        object_index=np.array([p[3] for p in pairs], dtype=np.int64),
    )


def make_dets(gt: GroundTruth, preds: list[tuple[int, int, list[float], list[float], float | None]]) -> Any:
    """preds: (image, hoi, human, object, score) in answer order per image."""
    rows: dict[int, list[dict[str, Any]]] = {}
    for image, hoi, h, o, score in preds:
        rows.setdefault(image, []).append({"person_bbox": h, "object_bbox": o, "hoi_id": hoi, "score": score})
    table = pa.Table.from_pylist(
        [{"sample_id": f"img{i}", "predictions": p} for i, p in sorted(rows.items())],
        schema=PREDICTIONS_SCHEMA,
    )
    return to_detections(table, gt.sample_index(), TAX)


@pytest.mark.parametrize("variant", ["choir", "thid"])
def test_equal_scores_rank_in_reversed_input_order(variant: str) -> None:
    gt = make_gt([(0, C, 0, 1, HB, OB)], 1)
    tp_first = make_dets(gt, [(0, C, HB, OB, 0.5), (0, C, FAR, OB, 0.5)])
    fp_first = make_dets(gt, [(0, C, FAR, OB, 0.5), (0, C, HB, OB, 0.5)])
    # argsort(scores)[::-1]: the later of two equal scores is evaluated first
    assert evaluate(gt, tp_first, variant).ap[C] == ap11([0.5] * 11)  # FP, TP
    assert evaluate(gt, fp_first, variant).ap[C] == PERFECT  # TP, FP
    assert evaluate(gt, tp_first, get_protocol(variant, ties="input")).ap[C] == PERFECT
    # unscored answers: rank scores 1/(1+rank) tie across images, so the later image comes first
    gt2 = make_gt([(0, C, 0, 1, HB, OB)], 2)
    dets = make_dets(gt2, [(0, C, HB, OB, None), (1, C, HB, OB, None)])
    report = evaluate(gt2, dets, variant)
    assert report.ap[C] == ap11([0.5] * 11) and any("reversed" in n for n in report.notes)


def test_a_used_pair_makes_an_fp_even_with_a_free_second_best() -> None:
    h2 = [2.0, 0.0, 12.0, 10.0]  # IoU with HB: 80 / 120 = 0.667, a valid second-best pair
    gt = make_gt([(0, C, 0, 2, HB, OB), (0, C, 1, 2, h2, OB)], 1)
    dets = make_dets(gt, [(0, C, HB, OB, 0.9), (0, C, HB, OB, 0.8)])
    for variant in VARIANTS:
        report = evaluate(gt, dets, variant)
        assert report.num_tp[C] == 1 and report.ap[C] == ap11([1.0] * 6 + [0.0] * 5), variant


def test_choir_orders_pairs_person_by_person_thid_by_annotation() -> None:
    g1, g2 = [0.0, 0.0, 10.0, 10.0], [2.0, 0.0, 12.0, 10.0]
    d1 = [1.0, 0.0, 11.0, 10.0]  # IoU 90/110 with both g1 and g2: the first of them in order wins
    other = int(EVAL[1])
    # person 0 (g1) appears first (in another class); class C lists person 1 (g2) before person 0
    gt = make_gt([(0, other, 0, 2, g1, OB), (0, C, 1, 2, g2, OB), (0, C, 0, 2, g1, OB)], 1)
    assert (
        continuous_overlap(np.array([d1]), np.array([g1]))[0]
        == continuous_overlap(np.array([d1]), np.array([g2]))[0]
    )
    dets = make_dets(gt, [(0, C, d1, OB, 0.9), (0, C, g2, OB, 0.8)])  # the second fits only g2
    assert evaluate(gt, dets, "choir").ap[C] == PERFECT  # d1 → g1, then g2 → g2
    assert evaluate(gt, dets, "thid").ap[C] == ap11([1.0] * 6 + [0.0] * 5)  # d1 → g2, g2 used


def test_repeated_triples_merge_in_choir_only() -> None:
    gt = make_gt([(0, C, 0, 1, HB, OB), (0, C, 0, 1, HB, OB), (0, C, 2, 1, FAR, OB)], 1)
    dets = make_dets(gt, [(0, C, HB, OB, 0.9), (0, C, FAR, OB, 0.8)])
    choir, thid = evaluate(gt, dets, "choir"), evaluate(gt, dets, "thid")
    assert choir.npos[C] == 2 and choir.ap[C] == PERFECT
    assert choir.counts["gt_pairs_merged"] == 1
    assert thid.npos[C] == 3 and thid.ap[C] == ap11([1.0] * 7 + [0.0] * 4)  # recall 2/3


def test_per_class_cap_of_19999() -> None:
    gt = make_gt([(0, C, 0, 1, HB, OB)], 1)
    for n_fp, expected in ((19_998, ap11([1 / 19_999] * 11)), (19_999, 0.0)):
        dets = make_dets(gt, [(0, C, FAR, FAR, 0.9)] * n_fp + [(0, C, HB, OB, 0.1)])
        report = evaluate(gt, dets, "thid")
        assert report.ap[C] == expected and report.num_detections[C] == min(n_fp + 1, 19_999)
        assert report.npos[C] == 1


def test_choir_caps_each_image_at_2000_keeping_ties() -> None:
    gt = make_gt([(0, C, 0, 1, HB, OB)], 1)
    other = int(EVAL[1])
    filler = [(0, other, FAR, FAR, 0.9)] * 2_000
    tied = make_dets(gt, [*filler, (0, C, HB, OB, 0.9)])  # ties the 2,000-th score: kept
    assert evaluate(gt, tied, "choir").ap[C] == PERFECT
    below = make_dets(gt, [*filler, (0, C, HB, OB, 0.5)])
    choir = evaluate(gt, below, "choir")
    assert choir.ap[C] == 0.0 and sum(choir.dropped.values()) == 1
    assert evaluate(gt, below, "thid").ap[C] == PERFECT


def test_full_class_sets_differ_on_novel_classes() -> None:
    novel = int(EVAL[TAX.flags["frequency"][EVAL] == 0][0])
    gt = make_gt([(0, novel, 0, 1, HB, OB)], 1)
    dets = make_dets(gt, [(0, novel, HB, OB, 1.0)])
    choir, thid = evaluate(gt, dets, "choir"), evaluate(gt, dets, "thid")
    assert choir.map["novel"] == thid.map["novel"] == pytest.approx(1 / 1_391)
    assert choir.map["full"] == 0.0
    assert thid.map["full"] == pytest.approx(1 / 5_539)


def test_no_detections_is_ap_zero_and_predictions_outside_evaluation_are_ignored() -> None:
    not_eval = int(np.flatnonzero(TAX.flags["evaluation"] == 0)[0])
    gt = make_gt([(0, C, 0, 1, HB, OB)], 1)
    report = evaluate(gt, make_dets(gt, [(0, not_eval, HB, OB, 1.0)]))
    assert report.ap[C] == 0.0 and report.map["full"] == 0.0
    assert report.counts["outside_evaluation_classes"] == 1
    assert len(report.to_dict()["classes"]) == 5_539


def test_continuous_iou_clamps_negative_widths_and_one_half_is_a_hit() -> None:
    a = np.array([[0.0, 0.0, 4.0, 4.0], [0.0, 0.0, 4.0, 4.0], [5.0, 0.0, 1.0, 4.0]])
    b = np.array([[0.0, 0.0, 4.0, 2.0], [4.0, 0.0, 8.0, 4.0], [0.0, 0.0, 6.0, 4.0]])
    assert continuous_overlap(a, b).tolist() == [0.5, 0.0, 0.0]  # no +1; touching; x2 < x1
    gt = make_gt([(0, C, 0, 1, [0.0, 0.0, 4.0, 4.0], OB)], 1)
    assert evaluate(gt, make_dets(gt, [(0, C, [0.0, 0.0, 4.0, 2.0], OB, 1.0)])).ap[C] == PERFECT
    assert evaluate(gt, make_dets(gt, [(0, C, [0.0, 0.0, 4.0, 1.9], OB, 1.0)])).ap[C] == 0.0


# ---- command line -----------------------------------------------------------------------------
def test_cli_eval_swig_is_light_and_writes_json(swig_test: Path, tmp_path: Path) -> None:
    write_predictions(_gt_as_predictions(swig_test), tmp_path / "p.parquet")
    r = run_light("eval", "swig", "--help")
    assert r.returncode == 0 and "Examples" in r.stdout
    r = run_light(
        "eval", "swig", str(tmp_path / "p.parquet"), "--gt", str(swig_test), "--variant", "thid",
        "--json", str(tmp_path / "r.json"),
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert "Full" in r.stdout and "Novel" in r.stdout and "100.00" in r.stdout
    out = json.loads((tmp_path / "r.json").read_text())
    assert out["variant"] == "thid" and len(out["classes"]) == 5_539
    assert out["protocol"]["matching"]["ties"] == "reversed"


def test_cli_bad_input_exits_2(swig_test: Path, reference: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.parquet").write_text("not parquet")
    hico = tmp_path / "hico"
    ann = reference / "hico" / "ppdm_test_hico_first100.json"
    convert(ConvertConfig(source="hico", annotations=str(ann), split="test", image_check=False), hico)
    write_predictions(_gt_as_predictions(swig_test), tmp_path / "p.parquet")
    cases = [
        [str(tmp_path / "missing.parquet"), "--gt", str(swig_test)],
        [str(tmp_path / "bad.parquet"), "--gt", str(swig_test)],
        [str(tmp_path / "p.parquet"), "--gt", str(hico)],  # a HICO-DET dataset
        [str(tmp_path / "p.parquet"), "--gt", str(tmp_path / "nowhere")],
    ]
    for args in cases:
        r = run_light("eval", "swig", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    r = run_light("eval", "swig", str(tmp_path / "p.parquet"), "--gt", str(swig_test), "--variant", "nope")
    assert r.returncode == 2
