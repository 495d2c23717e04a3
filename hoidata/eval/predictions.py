"""What a model predicted, in one Arrow schema, and the readers that bring other formats into it.

One row per image: ``sample_id`` (the ground truth dataset's) and ``predictions``, a list of
``{person_bbox, object_bbox, object, verb, hoi_id, score, rank}``. Boxes are canonical pixels (0-based
continuous edges, like every box inside hoidata); ``object_bbox`` is null for a prediction without an
object; ``hoi_id`` is 0-based as in canonical interactions (null: derived from ``verb`` and ``object``);
``score`` is null when the model gave none; ``rank`` is the prediction's position in the model's
answer (null: its position in the list).

Readers:
  * :func:`read_predictions` — a hoidata predictions dataset directory or Parquet file.
  * :func:`read_ppdm_results` — the PPDM/QPIC-style result JSON (per image ``predictions`` boxes with
    COCO-91 ``category_id`` and ``hoi_prediction`` with ``subject_id``, ``object_id``, verb
    ``category_id`` 1..117 and ``score``); :func:`write_ppdm_results` writes it back.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hoidata.errors import HoidataError
from hoidata.io.dataset_dir import read_table
from hoidata.schemas.boxes import BoxOrigin, from_origin, to_origin
from hoidata.schemas.canonical import BBOX, with_features
from hoidata.schemas.taxonomy import Taxonomy, hico_coco_ids

PREDICTION = pa.struct(
    [
        ("person_bbox", BBOX),
        ("object_bbox", BBOX),  # null: the prediction has no object
        ("object", pa.string()),
        ("verb", pa.string()),
        ("hoi_id", pa.int32()),  # 0-based; null: derived from (verb, object)
        ("score", pa.float64()),  # null: unscored (ranked by `rank`, see RANKING_RULES)
        ("rank", pa.int32()),  # position in the model's answer, 0 first; null: position in the list
    ]
)
PREDICTIONS_SCHEMA = pa.schema([("sample_id", pa.string()), ("predictions", pa.list_(PREDICTION))])

PPDM_IDS = ("coco91", "coco80")  # PPDM/QPIC result files: COCO-91 ids + verbs 1..117, or indices + 0..116

RANKING_RULES = {
    "score": "by the given score; where no prediction has one, by rank as for 'rank'",
    "rank": "by rank in the answer: score = 1 / (1 + rank), so earlier answers rank higher; equal ranks "
    "keep input order (image order of the ground truth, then list order)",
}


def prediction_features() -> dict[str, Any]:
    """The `datasets` Features of :data:`PREDICTIONS_SCHEMA` (as ``Features.to_dict()`` spells them)."""

    def value(dtype: str) -> dict[str, Any]:
        return {"dtype": dtype, "_type": "Value"}

    bbox = {"feature": value("float32"), "length": 4, "_type": "List"}
    item = {
        "person_bbox": bbox,
        "object_bbox": bbox,
        "object": value("string"),
        "verb": value("string"),
        "hoi_id": value("int32"),
        "score": value("float64"),
        "rank": value("int32"),
    }
    return {"sample_id": value("string"), "predictions": {"feature": item, "_type": "List"}}


def write_predictions(table: pa.Table, path: Path | str) -> None:
    """Write predictions as one Parquet file with the `datasets` Features metadata."""
    schema = with_features(PREDICTIONS_SCHEMA, prediction_features())
    pq.write_table(_conform(table, str(path)).cast(schema), path, compression="zstd")


def read_predictions(path: Path | str) -> pa.Table:
    """A predictions dataset directory (with ``manifest.json``), a folder of Parquet files, or one
    Parquet file, in :data:`PREDICTIONS_SCHEMA`."""
    path = Path(path)
    if not path.exists():
        raise HoidataError("file not found", file=str(path))
    if path.is_dir():
        if (path / "manifest.json").is_file():
            table = read_table(path)
        else:
            files = sorted(path.rglob("*.parquet"))
            if not files:
                raise HoidataError("no Parquet files in this directory", file=str(path))
            table = pa.concat_tables([_read_parquet(f) for f in files], promote_options="permissive")
    else:
        table = _read_parquet(path)
    return _conform(table, str(path))


def _read_parquet(path: Path) -> pa.Table:
    try:
        return pq.read_table(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise HoidataError(f"not a readable Parquet file: {e}", file=str(path)) from e


def _conform(table: pa.Table, where: str) -> pa.Table:
    """Check the columns and cast to the schema (fills absent optional prediction fields with nulls)."""
    for name in ("sample_id", "predictions"):
        if name not in table.column_names:
            raise HoidataError(f"missing column {name!r} (the predictions schema)", file=where)
    preds = table.column("predictions").combine_chunks()
    if not pa.types.is_list(preds.type) and not pa.types.is_large_list(preds.type):
        raise HoidataError(f"'predictions' must be a list, got {preds.type}", file=where)
    if not pa.types.is_struct(preds.type.value_type):
        raise HoidataError("'predictions' must be a list of structs", file=where)
    values = pc.list_flatten(preds)
    given = {f.name for f in preds.type.value_type}
    if "person_bbox" not in given:
        raise HoidataError("predictions lack 'person_bbox'", file=where, field="predictions")
    children = []
    for f in PREDICTION:
        if f.name in given:
            child = values.field(f.name)
            try:
                child = child.cast(f.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as e:
                raise HoidataError(
                    f"cannot read as {f.type}: {e}", file=where, field=f"predictions.{f.name}"
                ) from e
        else:
            child = pa.nulls(len(values), f.type)
        children.append(child)
    structs = pa.StructArray.from_arrays(children, fields=list(PREDICTION))
    offsets = pc.subtract(preds.offsets, preds.offsets[0]).cast(pa.int32())
    lists = pa.ListArray.from_arrays(offsets, structs, mask=preds.is_null())
    ids = table.column("sample_id").combine_chunks().cast(pa.string())
    return pa.Table.from_arrays([ids, lists], schema=PREDICTIONS_SCHEMA)


# ---- flat arrays for evaluation ---------------------------------------------------------------------
@dataclass
class Detections:
    """All predictions as flat arrays, in input order (ground-truth image order, then list order)."""

    image: np.ndarray  # (N,) int64 index into the ground truth's images
    hoi: np.ndarray  # (N,) int64 HOI class
    human: np.ndarray  # (N, 4) float64 canonical
    obj: np.ndarray  # (N, 4) float64 canonical, NaN rows: no object
    object_label: np.ndarray  # (N,) int64 object id named by the prediction, -1 unknown/none
    score: np.ndarray  # (N,) float64, higher first
    ranking: str  # which of RANKING_RULES ordered them
    invalid: dict[str, int] = field(default_factory=dict)  # reason → dropped predictions
    unmatched_samples: list[str] = field(default_factory=list)  # sample ids not in the ground truth

    def __len__(self) -> int:
        return len(self.image)


def _fixed4(arr: pa.Array) -> np.ndarray:
    """A FixedSizeList<4> array → (N, 4) float64, NaN for null boxes or null coordinates."""
    arr = arr.cast(BBOX)
    n = len(arr)
    flat = arr.values.slice(arr.offset * 4, n * 4).to_numpy(zero_copy_only=False).astype(np.float64)
    out = flat.reshape(n, 4)
    if arr.null_count:
        out[arr.is_null().to_numpy(zero_copy_only=False)] = np.nan
    return out


def _name_ids(names: pa.Array, vocabulary: tuple[str, ...]) -> np.ndarray:
    """Ids of names in a vocabulary (spaces and underscores alike, case-insensitive), -1 if absent."""
    norm = pc.utf8_lower(pc.replace_substring(names, " ", "_"))
    vocab = pa.array([v.lower().replace(" ", "_") for v in vocabulary])  # SWIG names have spaces
    return pc.fill_null(pc.index_in(norm, value_set=vocab), -1).to_numpy().astype(np.int64)


def to_detections(
    table: pa.Table,
    sample_index: dict[str, int],
    taxonomy: Taxonomy,
    ranking: str = "score",
    object_labels: bool = True,
) -> Detections:
    """Flatten a predictions table against the ground truth's images (``sample_id`` → index).

    Predictions that belong to no HOI class or have a non-finite box are dropped and counted (they
    can match nothing in any class); images absent from the ground truth are listed, not evaluated.
    """
    if ranking not in RANKING_RULES:
        raise HoidataError(f"unknown ranking {ranking!r}; expected {' or '.join(RANKING_RULES)}")
    ids = table.column("sample_id").to_pylist()
    rows = np.array([sample_index.get(s, -1) if s is not None else -1 for s in ids], dtype=np.int64)
    known = rows[rows >= 0]
    if len(np.unique(known)) != len(known):
        dup = next(s for s, n in _counts(ids).items() if n > 1 and s in sample_index)
        raise HoidataError(f"sample_id {dup!r} appears in more than one row", field="sample_id")
    unmatched = [s for s, r in zip(ids, rows, strict=True) if r < 0]
    preds = table.column("predictions").combine_chunks()
    counts = pc.fill_null(pc.list_value_length(preds), 0).to_numpy().astype(np.int64)
    values = pc.list_flatten(preds)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    if np.all(rows[1:] >= rows[:-1]):  # rows already in ground-truth order: items are in input order
        item = np.arange(len(values))
        image = np.repeat(rows, counts)
    else:  # visit rows in ground-truth order, items in list order (no per-item sort)
        by_row = np.argsort(rows, kind="stable")
        n_sorted = counts[by_row]
        new_starts = np.cumsum(n_sorted) - n_sorted
        item = np.repeat(starts[by_row] - new_starts, n_sorted) + np.arange(int(n_sorted.sum()))
        image = np.repeat(rows[by_row], n_sorted)
    position = item - np.repeat(starts, counts)[item]
    human = _fixed4(values.field("person_bbox"))[item]
    obj_field = values.field("object_bbox")
    obj = _fixed4(obj_field)[item]
    has_obj = ~obj_field.is_null().to_numpy(zero_copy_only=False)[item]
    hoi = pc.fill_null(values.field("hoi_id"), -1).to_numpy().astype(np.int64)[item]
    missing = np.flatnonzero(hoi < 0)
    object_label = np.full(len(item), -1, dtype=np.int64)
    if object_labels:
        object_label = _name_ids(values.field("object"), taxonomy.objects)[item]
    if len(missing):
        take = pa.array(item[missing])
        verb_id = _name_ids(values.field("verb").take(take), taxonomy.verbs)
        named = _name_ids(values.field("object").take(take), taxonomy.objects)
        hoi[missing] = taxonomy.hoi_ids(verb_id, named)
    score, rule = _scores(values, item, position, ranking)

    invalid: dict[str, int] = {}
    keep = image >= 0
    for reason, bad in (
        (
            "hoi_id outside the taxonomy, or no HOI class for (verb, object)",
            (hoi < 0) | (hoi >= taxonomy.num_hois),
        ),
        ("person_bbox missing or not finite", ~np.isfinite(human).all(axis=1)),
        ("object_bbox not finite", has_obj & ~np.isfinite(obj).all(axis=1)),
    ):
        n_bad = int((keep & bad).sum())
        if n_bad:
            invalid[reason] = n_bad
        keep &= ~bad
    sel = np.flatnonzero(keep)
    obj_sel = obj[sel]
    obj_sel[~has_obj[sel]] = np.nan
    return Detections(
        image=image[sel],
        hoi=hoi[sel],
        human=human[sel],
        obj=obj_sel,
        object_label=object_label[sel],
        score=score[sel],
        ranking=rule,
        invalid=invalid,
        unmatched_samples=unmatched,
    )


def _counts(items: list[Any]) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for x in items:
        out[x] = out.get(x, 0) + 1
    return out


def _scores(
    values: pa.StructArray, item: np.ndarray, position: np.ndarray, ranking: str
) -> tuple[np.ndarray, str]:
    """The score that orders each prediction (in ``item`` order), and the rule that made it (see
    :data:`RANKING_RULES`)."""
    rank_arr = values.field("rank")
    rank = np.where(
        rank_arr.is_null().to_numpy(zero_copy_only=False)[item],
        position,
        pc.fill_null(rank_arr, 0).to_numpy().astype(np.int64)[item],
    )
    by_rank = 1.0 / (1.0 + np.maximum(rank, 0).astype(np.float64))
    given = values.field("score")
    n_null = given.null_count
    if ranking == "rank" or n_null == len(given):
        why = "" if ranking == "rank" else " (no prediction carries a score)"
        return by_rank, "rank: " + RANKING_RULES["rank"] + why
    if n_null:
        raise HoidataError(
            f"{n_null} of {len(given)} predictions have no score and the others have one: give every "
            "prediction a score, or none, or rank all by answer order with --ranking rank",
            field="predictions.score",
        )
    score = given.to_numpy(zero_copy_only=False).astype(np.float64)[item]
    if not np.isfinite(score).all():
        raise HoidataError("scores must be finite numbers", field="predictions.score")
    return (
        score,
        "score: by the given score; ties keep input order (ground-truth image order, then list order)",
    )


# ---- PPDM / QPIC result JSON ------------------------------------------------------------------------
def _coco80_ids() -> np.ndarray:
    """HICO object id of each COCO-80 index (QPIC's 0-based contiguous object labels)."""
    coco = hico_coco_ids()
    return np.argsort(coco)


def _object_maps(ids: str) -> tuple[dict[int, int], int]:
    """File object id → HICO object id, and the id the file gives a person."""
    coco = hico_coco_ids()
    if ids == PPDM_IDS[0]:
        return {int(c): h for h, c in enumerate(coco)}, 1
    if ids == "coco80":
        by_rank = _coco80_ids()
        return {k: int(h) for k, h in enumerate(by_rank)}, 0
    raise HoidataError(f"unknown object ids {ids!r}; expected coco91 or coco80")


def read_ppdm_results(
    path: Path | str,
    taxonomy: Taxonomy,
    file_to_sample: dict[str, str],
    sample_ids: list[str],
    box_origin: BoxOrigin | str = BoxOrigin.ONE_BASED,
    ids: str = "coco91",
) -> pa.Table:
    """PPDM/QPIC-style result JSON → predictions table.

    ``ids="coco91"``: objects are COCO-91 ids (person 1) and verbs 1..117, as in PPDM's files;
    ``"coco80"``: 0-based COCO-80 object indices and verbs 0..116, as in QPIC's in-memory results.
    Boxes are read with ``box_origin`` (default one-based: the frame of ``test_hico.json``, which the
    PPDM/QPIC evaluators compare them with unshifted). Images are matched by ``file_name`` through
    ``file_to_sample``; a file without ``file_name`` keys must list the ground truth's images in order.
    """
    path = Path(path)
    if not path.is_file():
        raise HoidataError("file not found", file=str(path))
    try:
        records = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as e:
        raise HoidataError(f"not valid JSON: {e}", file=str(path)) from e
    if not isinstance(records, list):
        raise HoidataError("expected a list with one result record per image", file=str(path))
    obj_map, _ = _object_maps(ids)
    verb_base = 1 if ids == "coco91" else 0
    by_position = records and all(isinstance(r, dict) and "file_name" not in r for r in records)
    if by_position and len(records) != len(sample_ids):
        raise HoidataError(
            f"records have no 'file_name' and their number ({len(records)}) is not the ground truth's "
            f"({len(sample_ids)}): cannot tell which image each belongs to",
            file=str(path),
        )
    origin = BoxOrigin(box_origin)
    out_ids: list[str] = []
    counts: list[int] = []
    boxes: list[list[float]] = []
    labels: list[int] = []
    box_counts: list[int] = []
    subj: list[int] = []
    objs: list[int] = []
    verbs: list[int] = []
    scores: list[float | None] = []
    for i, rec in enumerate(records):
        where = {"file": str(path), "record": i}
        if not isinstance(rec, dict):
            raise HoidataError("a result record must be an object", **where)  # type: ignore[arg-type]
        if by_position:
            out_ids.append(sample_ids[i])
        else:
            name = rec.get("file_name")
            sid = file_to_sample.get(Path(str(name)).name) if name is not None else None
            out_ids.append(sid if sid is not None else f"unmatched:{name}")
        try:
            bxs = rec.get("predictions") or []
            hois = rec.get("hoi_prediction") or []
            boxes.extend(b["bbox"] for b in bxs)
            labels.extend(int(b["category_id"]) for b in bxs)
            subj.extend(int(h["subject_id"]) for h in hois)
            objs.extend(-1 if h.get("object_id") is None else int(h["object_id"]) for h in hois)
            verbs.extend(int(h["category_id"]) for h in hois)
            scores.extend(h.get("score") for h in hois)
        except (KeyError, TypeError, ValueError) as e:
            raise HoidataError(f"malformed result record ({type(e).__name__}: {e})", **where) from e  # type: ignore[arg-type]
        box_counts.append(len(bxs))
        counts.append(len(hois))
    try:
        box_arr = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    except ValueError as e:
        raise HoidataError(f"a 'bbox' is not 4 numbers: {e}", file=str(path), field="predictions.bbox") from e
    canon = from_origin(box_arr, origin) if len(box_arr) else box_arr
    label_arr = np.asarray(labels, dtype=np.int64)
    hico_label = np.array([obj_map.get(int(c), -1) for c in label_arr], dtype=np.int64)
    box_off = np.concatenate([[0], np.cumsum(box_counts)]).astype(np.int64)
    counts_arr = np.asarray(counts, dtype=np.int64)
    rec_of_hoi = np.repeat(np.arange(len(records)), counts_arr)
    n_boxes = np.asarray(box_counts, dtype=np.int64)[rec_of_hoi]
    s, o = np.asarray(subj, dtype=np.int64), np.asarray(objs, dtype=np.int64)
    bad = (s < 0) | (s >= n_boxes) | (o < -1) | (o >= n_boxes)
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise HoidataError(
            f"subject_id/object_id ({s[k]}, {o[k]}) outside the record's {n_boxes[k]} boxes",
            file=str(path),
            record=int(rec_of_hoi[k]),
            field="hoi_prediction",
        )
    base = box_off[:-1][rec_of_hoi]
    human = canon[base + s] if len(s) else np.zeros((0, 4))
    has_obj = o >= 0
    obj = np.full((len(o), 4), np.nan)
    obj[has_obj] = canon[(base + o)[has_obj]]
    obj_label = np.where(has_obj, hico_label[np.where(has_obj, base + o, 0)] if len(o) else -1, -1)
    verb = np.asarray(verbs, dtype=np.int64) - verb_base
    hoi = taxonomy.hoi_ids(verb, obj_label)
    score = pa.array(scores, pa.float64())
    start = np.concatenate([[0], np.cumsum(counts_arr)[:-1]]).astype(np.int64)
    rank = np.arange(len(s)) - np.repeat(start, counts_arr)
    n_obj, n_verb = len(taxonomy.objects), len(taxonomy.verbs)
    names_o = pa.array([*taxonomy.objects, None]).take(pa.array(np.where(obj_label >= 0, obj_label, n_obj)))
    ok_verb = (verb >= 0) & (verb < n_verb)
    names_v = pa.array([*taxonomy.verbs, None]).take(pa.array(np.where(ok_verb, verb, n_verb)))
    table = _build_table(out_ids, counts_arr, human, obj, has_obj, names_o, names_v, hoi, score, rank)
    return table


def _build_table(
    sample_ids: list[str],
    counts: np.ndarray,
    human: np.ndarray,
    obj: np.ndarray,
    has_obj: np.ndarray,
    object_names: pa.Array,
    verb_names: pa.Array,
    hoi: np.ndarray,
    score: pa.Array,
    rank: np.ndarray,
) -> pa.Table:
    def bbox(arr: np.ndarray, null: np.ndarray | None = None) -> pa.Array:
        values = pa.array(np.nan_to_num(arr).astype(np.float32).ravel())
        mask = pa.array(null) if null is not None else None
        return pa.FixedSizeListArray.from_arrays(values, 4, mask=mask)

    hoi_arr = pa.array(hoi.astype(np.int32), mask=hoi < 0)
    items = pa.StructArray.from_arrays(
        [
            bbox(human),
            bbox(obj, ~has_obj),
            object_names,
            verb_names,
            hoi_arr,
            score,
            pa.array(rank.astype(np.int32)),
        ],
        fields=list(PREDICTION),
    )
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    lists = pa.ListArray.from_arrays(pa.array(offsets), items)
    return pa.Table.from_arrays([pa.array(sample_ids, pa.string()), lists], schema=PREDICTIONS_SCHEMA)


def write_ppdm_results(
    table: pa.Table,
    path: Path | str,
    taxonomy: Taxonomy,
    file_names: dict[str, str],
    box_origin: BoxOrigin | str = BoxOrigin.ONE_BASED,
    ids: str = "coco91",
) -> None:
    """Predictions table → PPDM/QPIC-style result JSON (two boxes per prediction, person first), so
    that other tools can score hoidata's predictions; ``file_names`` maps sample_id → file name."""
    obj_map, person = _object_maps(ids)
    to_file = {h: c for c, h in obj_map.items()}
    verb_base = 1 if ids == "coco91" else 0
    out = []
    for row in _conform(table, str(path)).to_pylist():
        boxes, hois = [], []
        for p in row["predictions"] or []:
            hoi = p["hoi_id"]
            if hoi is None or p["object_bbox"] is None:
                raise HoidataError(
                    "the PPDM format needs an hoi_id and an object box for every prediction",
                    record=row["sample_id"],
                )
            h, o = to_origin(np.array([p["person_bbox"], p["object_bbox"]], np.float64), box_origin).tolist()
            k = len(boxes)
            boxes += [
                {"bbox": h, "category_id": person},
                {"bbox": o, "category_id": to_file[int(taxonomy.hoi_object[hoi])]},
            ]
            entry: dict[str, Any] = {
                "subject_id": k,
                "object_id": k + 1,
                "category_id": int(taxonomy.hoi_verb[hoi]) + verb_base,
            }
            if p["score"] is not None:
                entry["score"] = p["score"]
            hois.append(entry)
        out.append({"file_name": file_names[row["sample_id"]], "predictions": boxes, "hoi_prediction": hois})
    Path(path).write_bytes(orjson.dumps(out))
