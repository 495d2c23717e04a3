"""HICO-DET ground truth from a canonical hoidata dataset directory, as flat pair arrays."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.errors import HoidataError
from hoidata.io.dataset_dir import read_table
from hoidata.schemas.canonical import BBOX
from hoidata.schemas.taxonomy import Taxonomy
from hoidata.sources.base import numpy_values


@dataclass
class GroundTruth:
    """Every (human, object) pair of every image, in the dataset's order (images, then pairs)."""

    sample_ids: list[str]
    file_names: list[str]  # image file name of each sample (PPDM results are keyed by it)
    image: np.ndarray  # (P,) int64
    hoi: np.ndarray  # (P,) int64
    human: np.ndarray  # (P, 4) float64 canonical
    obj: np.ndarray  # (P, 4) float64 canonical; NaN rows: interaction without object
    subject: np.ndarray | None = None  # (P,) instance index of the person in its image (when loaded)
    object_index: np.ndarray | None = None  # (P,) instance index of the object, -1 none (when loaded)

    @property
    def num_images(self) -> int:
        return len(self.sample_ids)

    def sample_index(self) -> dict[str, int]:
        return {s: i for i, s in enumerate(self.sample_ids)}

    def file_to_sample(self) -> dict[str, str]:
        return {base_name(f): s for f, s in zip(self.file_names, self.sample_ids, strict=True) if f}


def base_name(path: str) -> str:
    """``Path(path).name`` as a string operation: a result file names ~10,000 images, and a Path
    object each costs 0.1 s."""
    return path.rstrip("/").rpartition("/")[2]


def _boxes(arr: pa.Array) -> np.ndarray:
    arr = arr.cast(BBOX)
    flat = numpy_values(arr.values.slice(arr.offset * 4, len(arr) * 4))
    return flat.astype(np.float64).reshape(-1, 4)


SOURCE_NAMES = {"hico-det": "HICO-DET", "swig-hoi": "SWIG-HOI"}


def load_ground_truth(path: Path | str, taxonomy: Taxonomy, source: str = "hico-det") -> GroundTruth:
    """Read a converted dataset directory (``hoidata convert hico`` / ``convert swig``) into pair
    arrays; every record must come from ``source``, whose taxonomy is ``taxonomy``."""
    table = read_table(path, columns=["sample_id", "source", "image", "instances", "interactions"])
    sources = set(pc.unique(table.column("source")).to_pylist())
    name = SOURCE_NAMES.get(source, source)
    if sources - {source}:
        raise HoidataError(
            f"ground truth must be a {name} dataset, this one holds {sorted(map(str, sources))}",
            file=str(path),
        )
    inst = table.column("instances").combine_chunks()
    pairs = table.column("interactions").combine_chunks()
    # numpy views, not to_numpy (whose scalar and copying paths import pandas: 0.3 s of `eval hico`)
    inst_off = numpy_values(inst.offsets).astype(np.int64) - inst.offsets[0].as_py()
    pair_off = numpy_values(pairs.offsets).astype(np.int64) - pairs.offsets[0].as_py()
    inst_v, pair_v = pc.list_flatten(inst), pc.list_flatten(pairs)
    boxes = _boxes(inst_v.field("bbox"))
    image = np.repeat(np.arange(table.num_rows), np.diff(pair_off))
    subj = numpy_values(pair_v.field("subject")).astype(np.int64)
    obj = numpy_values(pair_v.field("object")).astype(np.int64)
    hoi = numpy_values(pair_v.field("hoi_id")).astype(np.int64)
    if ((hoi < 0) | (hoi >= taxonomy.num_hois)).any():
        raise HoidataError(f"an interaction's hoi_id is outside the {name} classes", file=str(path))
    first = inst_off[:-1][image]
    human = boxes[first + subj]
    obj_boxes = np.full((len(obj), 4), np.nan)
    has = obj >= 0
    obj_boxes[has] = boxes[(first + obj)[has]]
    paths = table.column("image").combine_chunks().field("path").to_pylist()
    return GroundTruth(
        sample_ids=table.column("sample_id").to_pylist(),
        file_names=[base_name(p) if p else "" for p in paths],
        image=image,
        hoi=hoi,
        human=human,
        obj=obj_boxes,
        subject=subj,
        object_index=obj,
    )
