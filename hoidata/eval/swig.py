"""SWIG-HOI mAP (docs/metrics.md, "SWIG-HOI"), on the vectorised HICO-DET matcher.

Both reference evaluators (CHOIR's ``choir/evaluation/swig_evaluation.py`` and THID's
``datasets/swig_evaluator.py``) share one ``calc_ap``, reproduced here through
:func:`hoidata.eval.hico.match` with a :class:`~hoidata.eval.protocol.HicoProtocol` that says so:

* detections of a class are sorted with ``argsort(scores)[::-1]``: descending score, and **equal
  scores in reversed input order** (``ties="reversed"``; the reference's unstable quicksort equals
  this for up to 16 detections of a class, beyond that its tie order is whatever numpy's sort does, so
  the stable reading is taken); input order is the ground truth's image order, then answer order;
* the best 19,999 of each class are evaluated, the rest ignored (``npos`` unchanged);
* each detection takes the first GT pair (same image, same class) with the highest
  ``min(IoU_h, IoU_o)``, used pairs included; it is an FP if that pair is used or the value is < 0.5;
* IoU is continuous (canonical boxes, no ``+1``), negative widths clamped to 0;
* 11-point AP at ``i / 10.0`` (the ``decimal`` thresholds); a class without detections has AP 0.

The two evaluators differ in the ground truth and in what Full means (:data:`VARIANTS`):

* ``choir`` (default) — the evaluator released with the SWIG-HOI benchmark by its authors, and the
  definition behind the reference numbers of docs/metrics.md (HOIR Swin: Full 15.41 =
  (2,841 × 14.20 + 1,307 × 18.04) / 4,148, the rare and non-rare classes only). Its loader groups
  annotations per person and object with a multi-hot action vector, so a repeated (person, object,
  action) counts once and the GT pairs of an image are ordered person by person (first appearance),
  then object by object; Full = evaluation classes minus novel (4,148); each image keeps its
  predictions scoring at least its 2,000-th best score (predictions that name no SWIG-HOI class are
  dropped before that cap here, after it in CHOIR).
  Merging is the sensible reading of the data: a duplicated annotation can never be matched (the
  first copy always wins the argmax) and would cap recall.
* ``thid`` — the open-vocabulary detectors' evaluator (THID and its successors): every annotation is
  appended as it comes, and Full = all 5,539 evaluation classes (novel included). Use it to compare
  with those papers.

Rare / Non-rare / Novel are always the evaluation classes of frequency 1 / 2 / 0.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.errors import HoidataError
from hoidata.eval.groundtruth import GroundTruth, load_ground_truth
from hoidata.eval.hico import match, outcome
from hoidata.eval.predictions import Detections, read_predictions, to_detections
from hoidata.eval.protocol import THRESHOLDS, HicoProtocol
from hoidata.eval.report import MapReport
from hoidata.schemas.taxonomy import Taxonomy, swig_hoi

MAX_PER_CLASS = 19_999
CHOIR_MAX_PER_IMAGE = 2_000
FULL_SETS = ("known", "all")  # evaluation classes minus novel (CHOIR) | all evaluation classes (THID)
GT_ORDERS = ("person", "dataset")

_MATCHING = HicoProtocol(
    name="swig",
    thresholds="decimal",
    plus_one=False,
    max_per_class=MAX_PER_CLASS,
    ties="reversed",
    iou_frame="continuous",
)


@dataclass(frozen=True)
class SwigProtocol:
    """What decides a SWIG-HOI mAP number: the shared matching plus each evaluator's ground truth and
    Full class set."""

    name: str
    matching: HicoProtocol = _MATCHING
    full: str = "known"  # known: evaluation minus novel (CHOIR) | all: every evaluation class (THID)
    merge_repeated: bool = True  # a repeated (person, object, action) annotation counts once (CHOIR)
    gt_order: str = "person"  # person: CHOIR's per-person grouping | dataset: annotation order (THID)

    def __post_init__(self) -> None:
        if self.full not in FULL_SETS:
            raise HoidataError(f"unknown Full class set {self.full!r}; expected {', '.join(FULL_SETS)}")
        if self.gt_order not in GT_ORDERS:
            raise HoidataError(
                f"unknown ground-truth order {self.gt_order!r}; expected {', '.join(GT_ORDERS)}"
            )

    def describe(self) -> dict[str, Any]:
        return asdict(self) | {"matching": self.matching.describe()}


VARIANTS: dict[str, SwigProtocol] = {
    "choir": SwigProtocol(
        name="choir",
        matching=replace(_MATCHING, name="choir", top_k_per_image=CHOIR_MAX_PER_IMAGE, top_k_keep_ties=True),
    ),
    "thid": SwigProtocol(
        name="thid",
        matching=replace(_MATCHING, name="thid"),
        full="all",
        merge_repeated=False,
        gt_order="dataset",
    ),
}
DEFAULT_VARIANT = "choir"


def get_protocol(name: str, ties: str | None = None) -> SwigProtocol:
    """A named variant; ``ties`` overrides its tie order (``input`` keeps equal scores in input order)."""
    try:
        proto = VARIANTS[name]
    except KeyError:
        raise HoidataError(f"unknown variant {name!r}; expected one of {', '.join(VARIANTS)}") from None
    if ties is not None and ties != proto.matching.ties:
        proto = replace(proto, name=f"{name}+ties-{ties}", matching=replace(proto.matching, ties=ties))
    return proto


def prepare_ground_truth(gt: GroundTruth, protocol: SwigProtocol) -> tuple[GroundTruth, int]:
    """The evaluator's view of the pairs: repeats merged and CHOIR's order where the protocol says so.

    Only the order within one (image, class) matters to the matcher (its first maximum wins); CHOIR
    orders an image's pairs by the person's first appearance, then the (person, object)'s.
    Returns the new ground truth and the number of merged repeats.
    """
    if not protocol.merge_repeated and protocol.gt_order == "dataset":
        return gt, 0
    if gt.subject is None or gt.object_index is None:
        raise HoidataError("ground truth without instance indices: load it with load_ground_truth")
    n = len(gt.hoi)
    pos = np.arange(n)
    keep = np.ones(n, dtype=bool)
    merged = 0
    if protocol.merge_repeated and n:
        _, first = np.unique(
            np.stack([gt.image, gt.subject, gt.object_index, gt.hoi], axis=1), axis=0, return_index=True
        )
        keep[:] = False
        keep[first] = True
        merged = int(n - len(first))
    if protocol.gt_order == "person" and n:
        subj_first = _first_position(np.stack([gt.image, gt.subject], axis=1))
        pair_first = _first_position(np.stack([gt.image, gt.subject, gt.object_index], axis=1))
        order = np.lexsort((pos, pair_first, subj_first, gt.image))
    else:
        order = pos
    order = order[keep[order]]
    return (
        GroundTruth(
            sample_ids=gt.sample_ids,
            file_names=gt.file_names,
            image=gt.image[order],
            hoi=gt.hoi[order],
            human=gt.human[order],
            obj=gt.obj[order],
            subject=gt.subject[order],
            object_index=gt.object_index[order],
        ),
        merged,
    )


def _name_key(verbs: pa.Array, objects: pa.Array) -> pa.Array:
    """``verb|object`` with the predictions' name normalisation (lowercase, spaces as underscores)."""
    norm = [pc.utf8_lower(pc.replace_substring(a.cast(pa.string()), " ", "_")) for a in (verbs, objects)]
    return pc.binary_join_element_wise(norm[0], norm[1], "|")


def resolve_hoi_ids(table: pa.Table, taxonomy: Taxonomy) -> tuple[pa.Table, int]:
    """Fill null ``hoi_id`` from the (verb, object) names, where they name one class.

    SWIG-HOI object names are not unique (38 names, e.g. "ball", stand for two WordNet synsets), so
    88 (verb, object name) combinations fit two classes; those predictions get an out-of-range id
    (counted invalid: they need an ``hoi_id``). Returns the table and the number of such predictions.
    """
    preds = table.column("predictions").combine_chunks()
    values = pc.list_flatten(preds)
    given = values.field("hoi_id")
    missing = given.is_null()
    if not pc.any(missing).as_py():
        return table, 0
    verbs = pa.array([taxonomy.verbs[v] for v in taxonomy.hoi_verb])
    objects = pa.array([taxonomy.objects[o] for o in taxonomy.hoi_object])
    keys = _name_key(verbs, objects).to_numpy(zero_copy_only=False)
    uniq, first, count = np.unique(keys, return_index=True, return_counts=True)
    target = np.where(count == 1, first, taxonomy.num_hois)  # ambiguous → out of range
    found = pc.index_in(_name_key(values.field("verb"), values.field("object")), value_set=pa.array(uniq))
    derived = pa.array(target, pa.int32()).take(found)  # null where the names fit no class
    ambiguous = int(pc.sum(pc.and_(missing, pc.equal(derived, taxonomy.num_hois))).as_py() or 0)
    hoi = pc.if_else(missing, derived, given)
    children = [hoi if f.name == "hoi_id" else values.field(f.name) for f in values.type]
    structs = pa.StructArray.from_arrays(children, fields=list(values.type))
    offsets = pc.subtract(preds.offsets, preds.offsets[0])
    lists = pa.ListArray.from_arrays(offsets, structs, mask=preds.is_null())
    return table.set_column(table.column_names.index("predictions"), "predictions", lists), ambiguous


def _first_position(keys: np.ndarray) -> np.ndarray:
    """For each row, the position of the first row with the same key."""
    _, first, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    return first[inverse.reshape(-1)]


@dataclass(kw_only=True)
class SwigReport(MapReport):
    """Full / Rare / Non-rare / Novel mAP, per-class AP of the evaluation classes (0 outside them) of
    the 14,130 classes, and what made them."""

    protocol: SwigProtocol
    evaluation: np.ndarray  # (14,130,) bool: an evaluation class
    frequency: np.ndarray  # (14,130,) 0 novel, 1 rare, 2 non-rare

    def group(self, key: str) -> np.ndarray:
        """Mask of the classes a summary averages."""
        ev, f = self.evaluation, self.frequency
        if key == "full":
            return ev & (f != 0) if self.protocol.full == "known" else ev
        return ev & (f == {"novel": 0, "rare": 1, "non_rare": 2}[key])

    def to_dict(self) -> dict[str, Any]:
        classes = [
            {
                **self.class_row(i),
                "frequency": int(self.frequency[i]),
                "in_full": bool(self.group("full")[i]),
            }
            for i in np.flatnonzero(self.evaluation)
        ]
        return {
            **self.map_fields(),
            "metric": "swig-hoi",
            "groups": {k: int(self.group(k).sum()) for k in ("full", "rare", "non_rare", "novel")},
            "classes": classes,
        }

    def format_table(self) -> str:
        """The console summary, AP in percent as papers print it."""
        full = "evaluation minus novel" if self.protocol.full == "known" else "all evaluation classes"
        title = f"SWIG-HOI mAP — variant {self.protocol.name} (Full = {full})"
        groups = (("Full", "full"), ("Rare", "rare"), ("Non-rare", "non_rare"), ("Novel", "novel"))
        rows = [(label, self.map.get(key), int(self.group(key).sum())) for label, key in groups]
        return self.map_table(title, rows)


def _mean(values: np.ndarray, mask: np.ndarray) -> float | None:
    return float(np.mean(values[mask])) if mask.any() else None


def evaluate(
    gt: GroundTruth,
    dets: Detections,
    protocol: SwigProtocol | str = DEFAULT_VARIANT,
    taxonomy: Taxonomy | None = None,
) -> SwigReport:
    """SWIG-HOI mAP of detections against ground truth (as loaded, before any merging): no I/O."""
    tax = taxonomy or swig_hoi()
    proto = get_protocol(protocol) if isinstance(protocol, str) else protocol
    view, merged = prepare_ground_truth(gt, proto)
    m = match(view, dets, proto.matching, tax)
    result = outcome(view, dets, m, tax.num_hois, THRESHOLDS[proto.matching.thresholds])
    evaluation = tax.flags["evaluation"].astype(bool)
    not_scored = int((~evaluation[m.hoi]).sum())
    result["counts"] |= {
        "gt_pairs_merged": merged,
        "evaluated": len(m.hoi) - not_scored,
        "outside_evaluation_classes": not_scored,
    }
    report = SwigReport(
        map={},
        mean_recall=None,
        evaluation=evaluation,
        frequency=tax.flags["frequency"],
        protocol=proto,
        names=tax.hoi_names(),
        **result,
    )
    report.map = {k: _mean(report.ap, report.group(k)) for k in ("full", "rare", "non_rare", "novel")}
    report.mean_recall = _mean(report.recall, report.group("full"))
    if proto.matching.ties == "reversed":
        report.notes.append(
            "equal scores rank in reversed input order (the reference's argsort(scores)[::-1]); "
            "unscored predictions share scores across images, so later images rank first"
        )
    if merged:
        report.notes.append(f"{merged:,} repeated (person, object, action) annotations counted once")
    if not_scored:
        report.notes.append(f"{not_scored:,} predictions of classes outside the evaluation set are ignored")
    return report


def eval_swig(
    predictions: Path | str,
    gt_dir: Path | str,
    *,
    variant: str = DEFAULT_VARIANT,
    ranking: str = "score",
    ties: str | None = None,
) -> SwigReport:
    """Read hoidata predictions (Parquet file or directory) and score them against a converted
    SWIG-HOI dataset directory (``hoidata convert swig``). ``hoi_id`` may be left null: it is derived
    from the (verb, object) names through the SWIG-HOI taxonomy."""
    tax = swig_hoi()
    protocol = get_protocol(variant, ties)
    gt = load_ground_truth(gt_dir, tax, source="swig-hoi")
    path = Path(predictions)
    table, ambiguous = resolve_hoi_ids(read_predictions(path), tax)
    dets = to_detections(table, gt.sample_index(), tax, ranking, object_labels=False)
    if table.num_rows and len(dets.unmatched_samples) == table.num_rows:
        raise HoidataError(
            f"none of the {table.num_rows} predicted images is in the ground truth "
            f"(first sample_id: {dets.unmatched_samples[0]!r}; ground truth has e.g. "
            f"{gt.sample_ids[0] if gt.sample_ids else None!r})",
            file=str(path),
        )
    report = evaluate(gt, dets, protocol, tax)
    if ambiguous:
        report.notes.append(
            f"{ambiguous:,} predictions without hoi_id name a (verb, object) that fits two SWIG-HOI classes "
            "(object names such as 'ball' are shared by two categories): counted invalid, give hoi_id"
        )
    report.sources = {"predictions": str(path), "ground_truth": str(gt_dir)}
    return report
