"""HICO-DET mAP: the official protocol on the real test set, hand-computed cases, variants, readers, CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from light_cli import run_light

from hoidata.errors import HoidataError
from hoidata.eval import (
    PREDICTIONS_SCHEMA,
    THRESHOLDS,
    GroundTruth,
    eval_hico,
    evaluate,
    get_protocol,
    load_ground_truth,
    read_ppdm_results,
    read_predictions,
    to_detections,
    write_ppdm_results,
    write_predictions,
)
from hoidata.eval.hico import pair_overlap
from hoidata.eval.result_files import columns_from_records, read_ppdm_columns, scan_file
from hoidata.io import read_table
from hoidata.pipelines.convert import ConvertConfig, convert
from hoidata.schemas.boxes import BoxOrigin, to_inclusive
from hoidata.schemas.taxonomy import hico_det

TAX = hico_det()


def ap11(precisions: list[float]) -> float:
    """The MATLAB sum: ``ap = ap + p/11`` over the 11 thresholds, in order."""
    ap = 0.0
    for p in precisions:
        ap = ap + p / 11
    return ap


PERFECT = ap11([1.0] * 11)  # 1.0000000000000002: MATLAB's loop gives the same for a perfect class


def _convert(ann: Path, out: Path) -> Path:
    convert(
        ConvertConfig(source="hico", annotations=str(ann), split="test", image_check=False),
        out,
        progress=False,
    )
    return out


@pytest.fixture(scope="module")
def hico_test(reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _convert(
        reference / "hico" / "upt_instances_test2015.json", tmp_path_factory.mktemp("gt") / "hico"
    )


def _gt_as_predictions(gt_dir: Path, score: float | None = 1.0) -> pa.Table:
    rows = []
    for r in read_table(gt_dir).to_pylist():
        inst = r["instances"]
        preds = [
            {
                "person_bbox": inst[p["subject"]]["bbox"],
                "object_bbox": inst[p["object"]]["bbox"],
                "object": inst[p["object"]]["label"],
                "verb": p["verb"],
                "hoi_id": p["hoi_id"],
                "score": score,
                "rank": k,
            }
            for k, p in enumerate(r["interactions"])
        ]
        rows.append({"sample_id": r["sample_id"], "predictions": preds})
    return pa.Table.from_pylist(rows, schema=PREDICTIONS_SCHEMA)


# ---- the real test set ------------------------------------------------------------------------------
def test_ground_truth_as_predictions_scores_one(hico_test: Path, tmp_path: Path) -> None:
    write_predictions(_gt_as_predictions(hico_test), tmp_path / "p.parquet")
    report = eval_hico(tmp_path / "p.parquet", hico_test, zero_shot="rare_first")
    # every one of the 600 classes has test pairs (min 2), so no class sits at AP 0 for want of GT
    assert report.npos.sum() == 33_405 and report.npos.min() == 2 and len(report.npos) == 600
    assert (report.ap == PERFECT).all() and abs(PERFECT - 1.0) < 1e-15
    for key in ("full", "rare", "non_rare", "seen", "unseen"):
        assert report.map[key] == pytest.approx(1.0, abs=1e-15), key
    assert int(report.rare.sum()) == 138 and int(report.unseen.sum()) == 120
    assert report.counts["evaluated"] == 33_405


def test_ground_truth_unscored_ranks_by_answer(hico_test: Path) -> None:
    gt = load_ground_truth(hico_test, TAX)
    dets = to_detections(_gt_as_predictions(hico_test, score=None), gt.sample_index(), TAX)
    assert dets.ranking.startswith("rank:")
    assert evaluate(gt, dets).map["full"] == pytest.approx(1.0, abs=1e-15)


def test_dropping_a_gt_pair_lowers_exactly_its_class(hico_test: Path) -> None:
    gt = load_ground_truth(hico_test, TAX)
    table = _gt_as_predictions(hico_test)
    dets = to_detections(table, gt.sample_index(), TAX)
    c = int(np.argmin(gt.hoi != 7))  # the first pair of class 7
    keep = np.ones(len(dets), dtype=bool)
    keep[c] = False
    for name in ("image", "hoi", "human", "obj", "object_label", "score"):
        setattr(dets, name, getattr(dets, name)[keep])
    report = evaluate(gt, dets)
    n = int(report.npos[7])
    rec = [(k + 1) / n for k in range(n - 1)]
    expected = ap11([1.0 if any(r >= t for r in rec) else 0.0 for t in THRESHOLDS["matlab"]])
    assert report.ap[7] == expected < 1
    assert (np.delete(report.ap, 7) == PERFECT).all()


# ---- hand-computed cases ----------------------------------------------------------------------------
def box(x1: float, y1: float, x2: float, y2: float) -> list[float]:
    return [x1, y1, x2, y2]


def make_gt(pairs: list[tuple[int, int, list[float], list[float] | None]], n_images: int) -> GroundTruth:
    """pairs: (image, hoi, human box, object box or None)."""
    return GroundTruth(
        sample_ids=[f"img{i}" for i in range(n_images)],
        file_names=[f"img{i}.jpg" for i in range(n_images)],
        image=np.array([p[0] for p in pairs], dtype=np.int64),
        hoi=np.array([p[1] for p in pairs], dtype=np.int64),
        human=np.array([p[2] for p in pairs], dtype=np.float64).reshape(-1, 4),
        obj=np.array([p[3] if p[3] is not None else [np.nan] * 4 for p in pairs], dtype=np.float64).reshape(
            -1, 4
        ),
    )


def make_dets(gt: GroundTruth, preds: list[tuple], ranking: str = "score") -> object:
    """preds: (image, hoi, human, object or None, score) in answer order per image."""
    rows: dict[int, list[dict]] = {}
    for image, hoi, h, o, score in preds:
        rows.setdefault(image, []).append(
            {
                "person_bbox": h,
                "object_bbox": o,
                "hoi_id": hoi,
                "score": score,
                "object": TAX.objects[TAX.hoi_object[hoi]],
            }
        )
    table = pa.Table.from_pylist(
        [{"sample_id": f"img{i}", "predictions": p} for i, p in rows.items()], schema=PREDICTIONS_SCHEMA
    )
    return to_detections(table, gt.sample_index(), TAX, ranking)


HB, OB = box(0, 0, 10, 10), box(20, 0, 30, 10)
FAR = box(100, 100, 110, 110)


def test_duplicate_is_fp_without_fall_back_to_second_best_pair() -> None:
    h2 = box(2, 0, 12, 10)  # IoU with HB: 80 / 120 = 0.667, a valid second-best pair
    gt = make_gt([(0, 0, HB, OB), (0, 0, h2, OB)], 1)
    dets = make_dets(gt, [(0, 0, HB, OB, 0.9), (0, 0, HB, OB, 0.8)])
    report = evaluate(gt, dets)
    # TP then FP (the second takes the already matched best pair): rec [.5, .5], prec [1, .5]
    assert report.ap[0] == ap11([1.0] * 6 + [0.0] * 5)
    assert report.num_tp[0] == 1


def test_ties_keep_input_order() -> None:
    gt = make_gt([(0, 0, HB, OB)], 1)
    fp_first = evaluate(gt, make_dets(gt, [(0, 0, FAR, OB, 0.5), (0, 0, HB, OB, 0.5)]))
    tp_first = evaluate(gt, make_dets(gt, [(0, 0, HB, OB, 0.5), (0, 0, FAR, OB, 0.5)]))
    assert fp_first.ap[0] == ap11([0.5] * 11)  # FP, TP: precision 1/2 at recall 1
    assert tp_first.ap[0] == PERFECT
    # across images the ground truth's image order decides, not the order of rows in the file
    gt2 = make_gt([(1, 0, HB, OB)], 2)
    rows = [
        {
            "sample_id": "img1",
            "predictions": [{"person_bbox": HB, "object_bbox": OB, "hoi_id": 0, "score": 0.5}],
        },
        {
            "sample_id": "img0",
            "predictions": [{"person_bbox": HB, "object_bbox": OB, "hoi_id": 0, "score": 0.5}],
        },
    ]
    dets = to_detections(pa.Table.from_pylist(rows, schema=PREDICTIONS_SCHEMA), gt2.sample_index(), TAX)
    assert evaluate(gt2, dets).ap[0] == ap11([0.5] * 11)  # img0's FP comes first


def test_unscored_predictions_rank_by_answer_order() -> None:
    gt = make_gt([(0, 0, HB, OB)], 1)
    dets = make_dets(gt, [(0, 0, HB, OB, None), (0, 0, FAR, OB, None)])
    assert evaluate(gt, dets).ap[0] == PERFECT
    assert "rank" in dets.ranking
    with pytest.raises(HoidataError, match="no score"):
        make_dets(gt, [(0, 0, HB, OB, 0.3), (0, 0, FAR, OB, None)])
    # --ranking rank ignores scores: the answer order decides
    dets = make_dets(gt, [(0, 0, FAR, OB, 0.9), (0, 0, HB, OB, 0.1)], ranking="rank")
    assert evaluate(gt, dets).ap[0] == ap11([0.5] * 11)


def test_empty_images_count_as_fp_officially_and_are_skipped_by_upt() -> None:
    gt = make_gt([(0, 0, HB, OB)], 2)  # image 1 has no pair at all
    dets = make_dets(gt, [(1, 0, HB, OB, 0.9), (0, 0, HB, OB, 0.8)])
    assert evaluate(gt, dets).ap[0] == ap11([0.5] * 11)
    upt = evaluate(gt, dets, "upt")
    assert upt.ap[0] == PERFECT and sum(upt.dropped.values()) == 1


def test_known_object_keeps_only_images_with_the_object() -> None:
    other = int(np.flatnonzero(TAX.hoi_object != TAX.hoi_object[0])[0])  # a class with another object
    assert TAX.hoi_object[1] == TAX.hoi_object[0]  # 0 and 1 share the object (board / direct airplane)
    gt = make_gt([(0, 0, HB, OB), (1, other, HB, OB), (2, 1, HB, OB)], 3)
    dets = make_dets(gt, [(1, 0, HB, OB, 0.9), (2, 0, FAR, OB, 0.85), (0, 0, HB, OB, 0.8)])
    default = evaluate(gt, dets)
    ko = evaluate(gt, dets, setting="known-object")
    assert default.ap[0] == ap11([1 / 3] * 11)  # FP, FP, TP
    assert ko.ap[0] == ap11([0.5] * 11)  # image 1 has no airplane: its detection is dropped
    assert ko.npos[0] == default.npos[0] == 1
    assert any("approximation" in n for n in ko.notes)


def _threshold_case(n_tp_first: int, then: list[bool]) -> tuple[GroundTruth, object]:
    """One class with 10 GT pairs; detections: n_tp_first TPs, then the given TP/FP sequence."""
    hs = [box(20 * k, 0, 20 * k + 10, 10) for k in range(10)]
    os_ = [box(20 * k, 50, 20 * k + 10, 60) for k in range(10)]
    gt = make_gt([(0, 0, hs[k], os_[k]) for k in range(10)], 1)
    preds, nxt = [], 0
    for tp in [True] * n_tp_first + then:
        if tp:
            preds.append((0, 0, hs[nxt], os_[nxt], 1.0))
            nxt += 1
        else:
            preds.append((0, 0, FAR, FAR, 1.0))
    return gt, make_dets(gt, preds)


def test_matlab_thresholds_at_recall_three_tenths() -> None:
    gt, dets = _threshold_case(3, [False, True])  # rec .3 at prec 1, then rec .4 at prec .8
    aps = {v: evaluate(gt, dets, v).ap[0] for v in ("official", "numpy-arange", "decimal")}
    assert aps["official"] == ap11([1, 1, 1, 0.8, 0.8] + [0] * 6)  # 3*0.1 > 0.3: rec .3 misses t = 0.3
    assert aps["numpy-arange"] == aps["official"]
    assert aps["decimal"] == ap11([1, 1, 1, 1, 0.8] + [0] * 6)
    assert aps["decimal"] - aps["official"] == pytest.approx(0.2 / 11)


def test_matlab_thresholds_at_recall_six_and_seven_tenths() -> None:
    gt, dets = _threshold_case(6, [False, True])  # rec .6 at prec 1, then rec .7 at prec 7/8
    aps = {v: evaluate(gt, dets, v).ap[0] for v in ("official", "numpy-arange", "decimal")}
    assert aps["official"] == ap11([1] * 7 + [7 / 8] + [0] * 3)  # 1-4*0.1 == 0.6, 1-3*0.1 == 0.7
    assert aps["decimal"] == aps["official"]
    assert aps["numpy-arange"] == ap11([1] * 6 + [7 / 8] + [0] * 4)  # 0.6000000000000001, 0.7000000000000001
    assert aps["official"] - aps["numpy-arange"] == pytest.approx((1 / 8 + 7 / 8) / 11)


def test_plus_one_convention_moves_an_iou_across_one_half() -> None:
    gt_h, det_h = box(0, 0, 5, 5), box(0, 0, 5, 2.75)
    inc = lambda b: to_inclusive(np.array([b]))  # noqa: E731
    assert pair_overlap(inc(det_h), inc(gt_h), plus_one=True)[0] == pytest.approx(0.55)
    assert pair_overlap(inc(det_h), inc(gt_h), plus_one=False)[0] == pytest.approx(7 / 16)
    gt = make_gt([(0, 0, gt_h, OB)], 1)
    dets = make_dets(gt, [(0, 0, det_h, OB, 1.0)])
    assert evaluate(gt, dets).ap[0] == PERFECT
    continuous = replace(get_protocol("official"), name="continuous", plus_one=False)
    assert evaluate(gt, dets, continuous).ap[0] == 0.0
    assert evaluate(gt, dets, "upt").ap[0] == 0.0


def test_official_overlap_is_at_least_one_half_upt_strictly_above() -> None:
    gt = make_gt([(0, 0, box(0, 0, 4, 4), OB)], 1)
    dets = make_dets(gt, [(0, 0, box(0, 0, 4, 2), OB, 1.0)])  # IoU exactly 8/16
    assert evaluate(gt, dets).ap[0] == PERFECT
    assert evaluate(gt, dets, replace(get_protocol("official"), strict=True)).ap[0] == 0.0


def test_object_less_interactions_match_only_object_less_predictions() -> None:
    gt = make_gt([(0, 0, HB, None), (0, 1, HB, OB)], 1)
    dets = make_dets(gt, [(0, 0, HB, None, 0.9), (0, 1, HB, None, 0.8)])
    report = evaluate(gt, dets)
    assert report.ap[0] == PERFECT and report.ap[1] == 0.0


def test_qpic_variant_top100_present_classes_and_label_awareness() -> None:
    gt = make_gt([(0, 0, HB, OB)], 1)
    preds = [(0, 5, FAR, FAR, 0.9)] * 100 + [(0, 0, HB, OB, 0.1)]
    dets = make_dets(gt, preds)
    assert evaluate(gt, dets).ap[0] == PERFECT
    qpic = evaluate(gt, dets, "qpic")
    assert qpic.ap[0] == 0.0 and qpic.num_detections.sum() == 100
    assert int(qpic.scored.sum()) == 1 and qpic.map["full"] == 0.0  # only class 0 has GT
    # label-aware: the same boxes named with another object never match
    table = pa.Table.from_pylist(
        [
            {
                "sample_id": "img0",
                "predictions": [
                    {"person_bbox": HB, "object_bbox": OB, "hoi_id": 0, "score": 1.0, "object": "zebra"}
                ],
            }
        ],
        schema=PREDICTIONS_SCHEMA,
    )
    dets = to_detections(table, gt.sample_index(), TAX)
    assert evaluate(gt, dets).ap[0] == PERFECT
    assert evaluate(gt, dets, "qpic").ap[0] == 0.0


def test_hoi_from_verb_and_object_names_and_invalid_predictions_counted() -> None:
    gt = make_gt([(0, 0, HB, OB)], 1)
    verb = TAX.verbs[TAX.hoi_verb[0]]
    rows = [
        {
            "sample_id": "img0",
            "predictions": [
                {
                    "person_bbox": HB,
                    "object_bbox": OB,
                    "verb": verb.replace("_", " "),
                    "object": "Airplane",
                    "score": 1.0,
                },
                {"person_bbox": HB, "object_bbox": OB, "verb": "fly", "object": "pizza", "score": 0.9},
                {"person_bbox": [0, 0, float("nan"), 1], "object_bbox": OB, "hoi_id": 0, "score": 0.9},
            ],
        },
        {"sample_id": "elsewhere", "predictions": []},
    ]
    dets = to_detections(pa.Table.from_pylist(rows, schema=PREDICTIONS_SCHEMA), gt.sample_index(), TAX)
    assert dets.hoi.tolist() == [0]
    assert sum(dets.invalid.values()) == 2 and dets.unmatched_samples == ["elsewhere"]
    assert evaluate(gt, dets).ap[0] == PERFECT


# ---- readers ----------------------------------------------------------------------------------------
def test_ppdm_results_read_the_gt_boxes_exactly(reference: Path, hico_test: Path, tmp_path: Path) -> None:
    raw = json.loads((reference / "hico" / "ppdm_test_hico_first100.json").read_text())
    results = [
        {
            "file_name": r["file_name"],
            "predictions": r["annotations"],
            "hoi_prediction": [h | {"score": 1.0} for h in r["hoi_annotation"]],
        }
        for r in raw
    ]
    (tmp_path / "res.json").write_text(json.dumps(results))
    gt = load_ground_truth(hico_test, TAX)
    table = read_ppdm_results(tmp_path / "res.json", TAX, gt.file_to_sample(), gt.sample_ids)
    dets = to_detections(table, gt.sample_index(), TAX)
    first100 = gt.image < 100
    key = lambda im, hoi, h, o: sorted(zip(im.tolist(), hoi.tolist(), h.tolist(), o.tolist(), strict=True))  # noqa: E731
    assert len(dets) == 310
    assert key(dets.image, dets.hoi, dets.human, dets.obj) == key(
        gt.image[first100], gt.hoi[first100], gt.human[first100], gt.obj[first100]
    )
    # scored against the 100 images themselves: every class present scores 1 (qpic: present classes)
    small = _convert(reference / "hico" / "ppdm_test_hico_first100.json", tmp_path / "gt100")
    report = eval_hico(tmp_path / "res.json", small, variant="qpic")
    assert report.map["full"] == pytest.approx(1.0, abs=1e-15) and int(report.scored.sum()) == len(
        set(gt.hoi[first100].tolist())
    )
    # a zero-based reading shifts every box by one pixel: no longer equal
    shifted = read_ppdm_results(tmp_path / "res.json", TAX, gt.file_to_sample(), gt.sample_ids, "zero-based")
    assert (
        shifted.column("predictions").to_pylist()[0][0]["person_bbox"]
        != table.column("predictions").to_pylist()[0][0]["person_bbox"]
    )


@pytest.mark.parametrize("ids", ["coco91", "coco80"])
def test_ppdm_writer_round_trip(hico_test: Path, tmp_path: Path, ids: str) -> None:
    table = _gt_as_predictions(hico_test).slice(0, 300)
    gt = load_ground_truth(hico_test, TAX)
    names = dict(zip(gt.sample_ids, gt.file_names, strict=True))
    write_ppdm_results(table, tmp_path / "r.json", TAX, names, ids=ids)
    back = read_ppdm_results(tmp_path / "r.json", TAX, gt.file_to_sample(), gt.sample_ids, ids=ids)
    assert back.column("sample_id").to_pylist() == table.column("sample_id").to_pylist()
    for a, b in zip(
        back.column("predictions").to_pylist(), table.column("predictions").to_pylist(), strict=True
    ):
        assert a == b
    # and the Parquet writer/reader keeps it too
    write_predictions(back, tmp_path / "p.parquet")
    assert read_predictions(tmp_path / "p.parquet").equals(back)


def test_predictions_reader_rejects_bad_tables(tmp_path: Path) -> None:
    pq.write_table(pa.table({"sample_id": ["a"]}), tmp_path / "x.parquet")
    with pytest.raises(HoidataError, match="missing column 'predictions'"):
        read_predictions(tmp_path / "x.parquet")
    (tmp_path / "bad.parquet").write_text("not parquet")
    with pytest.raises(HoidataError, match="not a readable Parquet"):
        read_predictions(tmp_path / "bad.parquet")


# ---- result-file readers against straightforward references ------------------------------------------
def _result_records(rng: np.random.Generator, n: int) -> list[dict]:
    """PPDM result records with every value form a writer produces: float32-looking and 17-digit
    decimals, integers, exponents, negative zero, null or absent object ids and scores, empty lists."""

    def number() -> float | int:
        kind = rng.integers(6)
        if kind == 0:
            return int(rng.integers(-5, 700))
        if kind == 1:
            return float(np.float32(rng.uniform(0, 700)))
        if kind == 2:
            return float(rng.uniform(-1, 1) * 10.0 ** int(rng.integers(-30, 30)))
        if kind == 3:
            return -0.0
        return float(rng.uniform(0, 700))

    records = []
    for i in range(n):
        n_box, n_pair = int(rng.integers(0, 6)), int(rng.integers(0, 6))
        boxes = [
            {"bbox": [number() for _ in range(4)], "category_id": int(rng.integers(1, 91))}
            for _ in range(n_box)
        ]
        pairs = []
        for _ in range(n_pair if n_box else 0):
            pair: dict = {"subject_id": int(rng.integers(n_box)), "category_id": int(rng.integers(1, 118))}
            if rng.random() < 0.8:
                pair["object_id"] = int(rng.integers(n_box)) if rng.random() < 0.9 else None
            if rng.random() < 0.8:
                pair["score"] = round(float(rng.random()), 2) if rng.random() < 0.5 else float(rng.random())
            pairs.append(dict(reversed(pair.items())) if rng.random() < 0.3 else pair)
        record = {
            "file_name": f"HICO_test2015_{i + 1:08d}.jpg",
            "predictions": boxes,
            "hoi_prediction": pairs,
        }
        if rng.random() < 0.1:
            record["file_name"] = None
        if rng.random() < 0.1:
            del record["predictions" if not pairs else "file_name"]
        records.append(record)
    return [*records, {}]


def _same_columns(a, b) -> None:
    for name in ("named", "box_counts", "pair_counts", "labels", "subjects", "objects", "verbs", "has_score"):
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    for name in ("boxes", "scores"):  # bit for bit: NaN where absent, -0.0 kept
        x, y = getattr(a, name), getattr(b, name)
        assert x.dtype == y.dtype and x.tobytes() == y.tobytes(), name
    assert a.file_names == b.file_names


@pytest.mark.parametrize("layout", ["compact", "spaces", "indent"])
def test_ppdm_scanner_equals_the_record_by_record_reader(tmp_path: Path, layout: str) -> None:
    records = _result_records(np.random.default_rng(0), 400)
    text = {
        "compact": lambda r: json.dumps(r, separators=(",", ":")),
        "spaces": json.dumps,
        "indent": lambda r: json.dumps(r, indent=2),
    }[layout](records)
    path = tmp_path / "r.json"
    path.write_text(text)
    reference = columns_from_records(json.loads(text), BoxOrigin.ONE_BASED, path)
    for chunk in (7, 100, 1 << 20):  # records cut across reads, and one read for all
        for parallel_from in (0, 1 << 30):  # two halves at once, or one pass
            scanned = scan_file(path, BoxOrigin.ONE_BASED, chunk=chunk, parallel_from=parallel_from)
            assert scanned is not None
            _same_columns(scanned, reference)
    assert len(reference.boxes) > 500 and (~reference.has_score).any() and (reference.objects < 0).any()


def test_ppdm_scanner_reads_every_number_as_python_does(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    values = [float(v) for v in rng.uniform(-1e4, 1e4, 3000)]
    values += [float(np.float32(v)) for v in rng.uniform(0, 2000, 3000)]
    values += [
        float(v * 10.0**e)
        for v, e in zip(rng.uniform(0, 1, 3000), rng.integers(-250, 250, 3000), strict=True)
    ]
    texts = [repr(v) for v in values] + ["1e5", "1E+05", "-2.5e-3", "0.000123", "123456789012345678", "-0.0"]
    texts += ["9007199254740993", "0.30000000000000004", "2.2250738585072014e-250", "1.7976931348623157e250"]
    pairs = ",".join(f'{{"subject_id":0,"category_id":1,"score":{t}}}' for t in texts)
    path = tmp_path / "n.json"
    path.write_text(f'[{{"predictions":[{{"bbox":[1,2,3,4],"category_id":1}}],"hoi_prediction":[{pairs}]}}]')
    scanned = scan_file(path)
    assert scanned is not None  # scores stay float64: compared bit for bit with Python's reading
    assert scanned.scores.tobytes() == np.array([float(t) for t in texts]).tobytes()


@pytest.mark.parametrize(
    "text",
    [
        '[{"file_name": "caf\\u00e9.jpg", "predictions": [], "hoi_prediction": []}]',  # an escape
        '[{"file_name": "a.jpg", "extra": 1}]',  # another key
        '[{"predictions": [{"bbox": [1, 2, 3, 4], "category_id": 1.0}]}]',  # a float id
        '[{"predictions": [{"bbox": [1, 2, 3, 4], "category_id": 1}]}] x',  # something after the list
        '[{"predictions": [{"bbox": [1, 2, 3, 4], "category_id": 1}]}',  # truncated
        '[{"hoi_prediction": [{"subject_id": 0, "category_id": 1, "score": true}]}]',
        '[{"predictions": [{"bbox": [1, 2, 3], "category_id": 1}]}]',
        '[{"predictions": [{"bbox": [1, 2, 3, 4], "category_id": 1}], "predictions": []}]',
        '[{"predictions": [{"bbox": [1, 2, 3, 4e999], "category_id": 1}]}]',
        "[7]",
        '{"a": 1}',
        "",
    ],
)
def test_files_outside_the_scanner_subset_read_as_the_reference_reads_them(tmp_path: Path, text: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(text)
    assert scan_file(path) is None
    try:
        records = orjson.loads(text)
        assert isinstance(records, list)
        expected = columns_from_records(records, BoxOrigin.ONE_BASED, path)
    except (orjson.JSONDecodeError, HoidataError, AssertionError):
        with pytest.raises(HoidataError):
            read_ppdm_columns(path)
        return
    _same_columns(read_ppdm_columns(path), expected)


def _reference_detections(table: pa.Table, gt: GroundTruth) -> tuple[np.ndarray, ...]:
    """Detections the straightforward way: one Python dict per prediction, rows in ground-truth order."""
    index = gt.sample_index()
    rows = sorted(
        (index[r["sample_id"]], r["predictions"]) for r in table.to_pylist() if r["sample_id"] in index
    )
    image, hoi, human, obj, score = [], [], [], [], []
    for i, preds in rows:
        for p in preds:
            image.append(i)
            hoi.append(p["hoi_id"])
            human.append(p["person_bbox"])
            obj.append(p["object_bbox"] if p["object_bbox"] is not None else [np.nan] * 4)
            score.append(p["score"])
    return np.array(image), np.array(hoi), np.array(human, float), np.array(obj, float), np.array(score)


def test_both_formats_read_the_same_detections_as_a_per_prediction_reading(
    hico_test: Path, tmp_path: Path
) -> None:
    gt = load_ground_truth(hico_test, TAX)
    rng = np.random.default_rng(2)
    table = _gt_as_predictions(hico_test).slice(0, 500)
    preds = pc.list_flatten(table.column("predictions").combine_chunks())
    jitter = pa.FixedSizeListArray.from_arrays(
        pc.add(preds.field("person_bbox").values, pa.array(rng.uniform(-3, 3, 4 * len(preds)), pa.float32())),
        4,
    )
    scores = pa.array(np.round(rng.uniform(0, 1, len(preds)), 2))
    items = pa.StructArray.from_arrays(
        [
            jitter if f.name == "person_bbox" else scores if f.name == "score" else preds.field(f.name)
            for f in preds.type
        ],
        fields=list(preds.type),
    )
    lists = pa.ListArray.from_arrays(table.column("predictions").combine_chunks().offsets, items)
    table = pa.table({"sample_id": table.column("sample_id"), "predictions": lists}).take(
        rng.permutation(500)
    )
    write_predictions(table, tmp_path / "p.parquet")
    names = dict(zip(gt.sample_ids, gt.file_names, strict=True))
    write_ppdm_results(table, tmp_path / "p.json", TAX, names)
    image, hoi, human, obj, score = _reference_detections(table, gt)
    for read in (
        to_detections(read_predictions(tmp_path / "p.parquet"), gt.sample_index(), TAX),
        to_detections(
            read_ppdm_results(tmp_path / "p.json", TAX, gt.file_to_sample(), gt.sample_ids),
            gt.sample_index(),
            TAX,
        ),
    ):
        assert np.array_equal(read.image, image) and np.array_equal(read.hoi, hoi)
        assert np.array_equal(read.human, human) and np.array_equal(read.obj, obj, equal_nan=True)
        assert np.array_equal(read.score, score)
    on_parquet = eval_hico(tmp_path / "p.parquet", hico_test)
    on_json = eval_hico(tmp_path / "p.json", hico_test)
    assert np.array_equal(on_parquet.ap, on_json.ap) and on_json.map["full"] > 0


# ---- command line -----------------------------------------------------------------------------------
def test_cli_eval_hico_is_light_and_writes_json(hico_test: Path, tmp_path: Path) -> None:
    table = _gt_as_predictions(hico_test)
    write_predictions(table, tmp_path / "p.parquet")
    r = run_light("eval", "hico", "--help")
    assert r.returncode == 0 and "Examples" in r.stdout
    r = run_light(
        "eval",
        "hico",
        str(tmp_path / "p.parquet"),
        "--gt",
        str(hico_test),
        "--setting",
        "known-object",
        "--zero-shot",
        "unseen_verb",
        "--json",
        str(tmp_path / "r.json"),
    )
    assert r.returncode == 0, r.stderr
    assert "Full" in r.stdout and "100.00" in r.stdout and "approximation" in r.stdout
    out = json.loads((tmp_path / "r.json").read_text())
    assert len(out["classes"]) == 600 and out["setting"] == "known-object"
    assert (
        out["protocol"]["threshold_values"][3] == 3 * 0.1 and sum(c["unseen"] for c in out["classes"]) == 84
    )


def test_cli_bad_input_exits_2(hico_test: Path, tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "obj.json").write_text('{"a": 1}')
    cases = [
        [str(tmp_path / "missing.parquet"), "--gt", str(hico_test)],
        [str(tmp_path / "bad.json"), "--gt", str(hico_test)],
        [str(tmp_path / "obj.json"), "--gt", str(hico_test)],
        [str(tmp_path / "bad.json"), "--gt", str(tmp_path)],
    ]
    for args in cases:
        r = run_light("eval", "hico", *args)
        assert r.returncode == 2, (args, r.stderr)
        assert r.stderr.startswith("error:") and len(r.stderr.strip().splitlines()) == 1
    r = run_light("eval", "hico", str(tmp_path / "bad.json"), "--gt", str(hico_test), "--variant", "nope")
    assert r.returncode == 2
