"""Per-pair boxes → per-image instances, shared by the layouts that store boxes per pair.

UPT and the official ``anno_bbox.mat`` give each (human, object) pair its own two boxes; the
canonical form numbers each image's distinct boxes once and points the pairs at them.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from hoidata.schemas.taxonomy import hico_det
from hoidata.sources.base import numpy_values, offsets_from_counts


def instances_from_pairs(
    pair_offsets: np.ndarray,
    boxes_h: np.ndarray,
    boxes_o: np.ndarray,
    objects: np.ndarray,
    verbs: np.ndarray,
    hois: np.ndarray,
    with_first_rows: bool = False,
) -> dict[str, np.ndarray]:
    """Turn per-pair boxes into per-image instances: identical (label, box) rows of one image become
    one instance, numbered in order of first appearance (subject, object, next subject, …)."""
    n_records = len(pair_offsets) - 1
    m = len(verbs)
    record = np.repeat(np.arange(n_records), np.diff(pair_offsets))
    human = hico_det().human_object_id
    rows = np.empty((2 * m, 6), dtype=np.float64)
    rows[0::2, 0] = record
    rows[1::2, 0] = record
    rows[0::2, 1] = human
    rows[1::2, 1] = objects
    rows[0::2, 2:] = boxes_h
    rows[1::2, 2:] = boxes_o
    first, inst_global = unique_rows(rows)  # instances numbered in order of first appearance
    kept = rows[first]
    inst_record = kept[:, 0].astype(np.int64)
    inst_offsets = offsets_from_counts(np.bincount(inst_record, minlength=n_records))
    local = inst_global - inst_offsets[record.repeat(2)] if m else inst_global
    return {
        "inst_offsets": inst_offsets,
        "boxes": kept[:, 2:].copy(),
        "labels": kept[:, 1].astype(np.int64),
        "pair_offsets": pair_offsets,
        "subjects": local[0::2].astype(np.int64),
        "objects": local[1::2].astype(np.int64),
        "verbs": verbs,
        "hois": hois,
    } | ({"first_rows": first} if with_first_rows else {})  # row 2p: pair p's human, 2p+1: its object


def unique_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(first, inverse)``: the first index of each distinct row, in order of first appearance, and
    each row's distinct number. Each row's bytes are one fixed-size binary value, numbered by
    Arrow's hash table: exact, and no sort."""
    if not len(rows):
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    packed = np.ascontiguousarray(rows + 0.0)  # + 0.0 folds -0.0 into 0.0
    values = pa.FixedSizeBinaryArray.from_buffers(
        pa.binary(packed.itemsize * packed.shape[1]), len(packed), [None, pa.py_buffer(packed)]
    )
    encoded = values.dictionary_encode()
    inverse = numpy_values(encoded.indices).astype(np.int64)
    first = np.empty(len(encoded.dictionary), np.int64)
    first[inverse[::-1]] = np.arange(len(rows) - 1, -1, -1)  # the last write is the first occurrence
    return first, inverse
