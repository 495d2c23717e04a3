"""What a model predicted, in one Arrow schema, and the readers that bring other formats into it.

One row per image: ``sample_id`` (the ground truth dataset's) and ``predictions``, a list of
``{person_bbox, object_bbox, object, verb, hoi_id, score, rank}``. Boxes are canonical pixels (0-based
continuous edges, like every box inside hoidata); ``object_bbox`` is null for a prediction without an
object; ``hoi_id`` is 0-based as in canonical interactions (null: derived from ``verb`` and ``object``);
``score`` is null when the model gave none; ``rank`` is the prediction's position in the model's
answer (null: its position in the list).

Readers: :func:`read_predictions` reads a hoidata predictions dataset directory or Parquet file;
:mod:`hoidata.eval.result_files` reads and writes the PPDM/QPIC-style result JSON. Evaluation reads
either as :class:`PredictionColumns` (flat arrays) and turns them into :class:`Detections`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hoidata.errors import HoidataError
from hoidata.io.dataset_dir import read_table
from hoidata.schemas.canonical import BBOX, with_features
from hoidata.schemas.taxonomy import Taxonomy
from hoidata.sources.base import arrow_array, numpy_nulls, numpy_values, string_array

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
    pq.write_table(conform(table, str(path)).cast(schema), path, compression="zstd")


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
    return conform(table, str(path))


def _read_parquet(path: Path) -> pa.Table:
    try:  # one file: no dataset discovery (pyarrow.dataset imports pandas)
        with pq.ParquetFile(path) as f:
            return f.read()
    except (pa.ArrowInvalid, OSError) as e:
        raise HoidataError(f"not a readable Parquet file: {e}", file=str(path)) from e


def conform(table: pa.Table, where: str) -> pa.Table:
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
class PredictionColumns:
    """Predictions as flat arrays, one row per prediction in input order (rows, then list order): what
    evaluation reads, from a predictions table or straight from a result file."""

    sample_ids: list[str | None]  # per input row (image)
    counts: np.ndarray  # (R,) int64 predictions per row
    human: np.ndarray  # (N, 4) float32 canonical, as stored (matching computes in float64)
    obj: np.ndarray  # (N, 4) float32 canonical, NaN rows where has_obj is False
    has_obj: np.ndarray  # (N,) bool
    hoi: np.ndarray  # (N,) int64 HOI class given or derived from (verb, object); -1 none
    object_label: np.ndarray  # (N,) int64 object id named by the prediction, -1 unknown/none
    score: np.ndarray  # (N,) float64, NaN where not given
    has_score: np.ndarray  # (N,) bool
    rank: np.ndarray  # (N,) int64 position in the answer (the position in the list where not given)


@dataclass
class Detections:
    """All predictions as flat arrays, in input order (ground-truth image order, then list order)."""

    image: np.ndarray  # (N,) int64 index into the ground truth's images
    hoi: np.ndarray  # (N,) int64 HOI class
    human: np.ndarray  # (N, 4) float32 canonical
    obj: np.ndarray  # (N, 4) float32 canonical, NaN rows: no object
    object_label: np.ndarray  # (N,) int64 object id named by the prediction, -1 unknown/none
    score: np.ndarray  # (N,) float64, higher first
    ranking: str  # which of RANKING_RULES ordered them
    invalid: dict[str, int] = field(default_factory=dict)  # reason → dropped predictions
    unmatched_samples: list[str] = field(default_factory=list)  # sample ids not in the ground truth

    def __len__(self) -> int:
        return len(self.image)


def _fixed4(arr: pa.Array) -> np.ndarray:
    """A FixedSizeList<4> array → (N, 4) float32, NaN for null boxes or null coordinates."""
    arr = arr.cast(BBOX)
    n = len(arr)
    coords = arr.values.slice(arr.offset * 4, n * 4)
    out = numpy_values(coords).astype(np.float32).reshape(n, 4)  # a copy: the nulls are written
    out[numpy_nulls(coords).reshape(n, 4)] = np.nan
    out[numpy_nulls(arr)] = np.nan
    return out


def _filled(arr: pa.Array, fill: int) -> np.ndarray:
    """Integers as int64, ``fill`` where null."""
    return np.where(numpy_nulls(arr), fill, numpy_values(arr)).astype(np.int64)


def _name_ids(names: pa.Array, vocabulary: tuple[str, ...]) -> np.ndarray:
    """Ids of names in a vocabulary (spaces and underscores alike, case-insensitive), -1 if absent.
    Each distinct name is looked up once: a million predictions name a few hundred things."""
    encoded = pc.dictionary_encode(names)
    norm = pc.utf8_lower(pc.replace_substring(encoded.dictionary, " ", "_"))
    vocab = string_array([v.lower().replace(" ", "_") for v in vocabulary])  # SWIG names have spaces
    ids = np.append(_filled(pc.index_in(norm, value_set=vocab), -1), -1)
    return ids[_filled(encoded.indices, len(encoded.dictionary))]


def table_columns(table: pa.Table, taxonomy: Taxonomy, object_labels: bool = True) -> PredictionColumns:
    """A predictions table as flat arrays; an HOI class missing from a prediction is derived from its
    verb and object names (``object_labels=False`` leaves ``object_label`` unknown). Read through
    Arrow's buffers, so that reading predictions never imports pandas."""
    preds = table.column("predictions").combine_chunks()
    counts = _filled(pc.list_value_length(preds), 0)
    values = pc.list_flatten(preds)
    obj_field = values.field("object_bbox")
    hoi = _filled(values.field("hoi_id"), -1)
    object_label = np.full(len(values), -1, dtype=np.int64)
    if object_labels:
        object_label = _name_ids(values.field("object"), taxonomy.objects)
    missing = np.flatnonzero(hoi < 0)
    if len(missing):
        take = arrow_array(missing)
        verb_id = _name_ids(values.field("verb").take(take), taxonomy.verbs)
        named = _name_ids(values.field("object").take(take), taxonomy.objects)
        hoi[missing] = taxonomy.hoi_ids(verb_id, named)
    position = np.arange(len(values)) - np.repeat(np.cumsum(counts) - counts, counts)
    rank, score = values.field("rank"), values.field("score").cast(pa.float64())
    no_score = numpy_nulls(score)
    return PredictionColumns(
        sample_ids=table.column("sample_id").to_pylist(),
        counts=counts,
        human=_fixed4(values.field("person_bbox")),
        obj=_fixed4(obj_field),
        has_obj=~numpy_nulls(obj_field),
        hoi=hoi,
        object_label=object_label,
        score=np.where(no_score, np.nan, numpy_values(score)),
        has_score=~no_score,
        rank=np.where(numpy_nulls(rank), position, _filled(rank, 0)),
    )


def to_detections(
    table: pa.Table,
    sample_index: dict[str, int],
    taxonomy: Taxonomy,
    ranking: str = "score",
    object_labels: bool = True,
) -> Detections:
    """Flatten a predictions table against the ground truth's images (``sample_id`` → index); see
    :func:`detections`."""
    _check_ranking(ranking)
    return detections(table_columns(table, taxonomy, object_labels), sample_index, taxonomy, ranking)


def _check_ranking(ranking: str) -> None:
    if ranking not in RANKING_RULES:
        raise HoidataError(f"unknown ranking {ranking!r}; expected {' or '.join(RANKING_RULES)}")


def detections(
    cols: PredictionColumns, sample_index: dict[str, int], taxonomy: Taxonomy, ranking: str = "score"
) -> Detections:
    """Predictions in ground-truth image order, ready to match.

    Predictions that belong to no HOI class or have a non-finite box are dropped and counted (they
    can match nothing in any class); images absent from the ground truth are listed, not evaluated.
    """
    _check_ranking(ranking)
    ids = cols.sample_ids
    rows = np.array([sample_index.get(s, -1) if s is not None else -1 for s in ids], dtype=np.int64)
    known = rows[rows >= 0]
    if len(np.unique(known)) != len(known):
        dup = next(s for s, n in _counts(ids).items() if n > 1 and s in sample_index)
        raise HoidataError(f"sample_id {dup!r} appears in more than one row", field="sample_id")
    unmatched = [s for s, r in zip(ids, rows, strict=True) if r < 0]
    counts = cols.counts
    if np.all(rows[1:] >= rows[:-1]):  # rows already in ground-truth order: items are in input order
        image = np.repeat(rows, counts)
        human, obj, has_obj, hoi = cols.human, cols.obj, cols.has_obj, cols.hoi
        object_label, rank, score, has_score = cols.object_label, cols.rank, cols.score, cols.has_score
    else:  # visit rows in ground-truth order, items in list order (no per-item sort)
        by_row = np.argsort(rows, kind="stable")
        n_sorted = counts[by_row]
        starts = np.cumsum(counts) - counts
        item = np.repeat(starts[by_row] - (np.cumsum(n_sorted) - n_sorted), n_sorted)
        item += np.arange(int(n_sorted.sum()))
        image = np.repeat(rows[by_row], n_sorted)
        human, obj, has_obj, hoi = cols.human[item], cols.obj[item], cols.has_obj[item], cols.hoi[item]
        object_label, rank = cols.object_label[item], cols.rank[item]
        score, has_score = cols.score[item], cols.has_score[item]
    score, rule = _scores(score, has_score, rank, ranking)

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
    sel = slice(None) if keep.all() else np.flatnonzero(keep)  # no copies when every prediction stays
    return Detections(
        image=image[sel],
        hoi=hoi[sel],
        human=human[sel],
        obj=obj[sel],
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
    score: np.ndarray, has_score: np.ndarray, rank: np.ndarray, ranking: str
) -> tuple[np.ndarray, str]:
    """The score that orders each prediction, and the rule that made it (see :data:`RANKING_RULES`)."""
    n_null = len(score) - int(has_score.sum())
    if ranking == "rank" or n_null == len(score):
        why = "" if ranking == "rank" else " (no prediction carries a score)"
        by_rank = 1.0 / (1.0 + np.maximum(rank, 0).astype(np.float64))
        return by_rank, "rank: " + RANKING_RULES["rank"] + why
    if n_null:
        raise HoidataError(
            f"{n_null} of {len(score)} predictions have no score and the others have one: give every "
            "prediction a score, or none, or rank all by answer order with --ranking rank",
            field="predictions.score",
        )
    if not np.isfinite(score).all():
        raise HoidataError("scores must be finite numbers", field="predictions.score")
    return (
        score,
        "score: by the given score; ties keep input order (ground-truth image order, then list order)",
    )
