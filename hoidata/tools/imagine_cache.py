"""Imagined views made ahead of time (``hoidata imagine``), served to the ``imagine`` tool.

A cache is a dataset directory, one row per (sample_id, box, mode, backend). The tool asks for the
view of a box the model chose: the cached region of that sample and mode with the highest IoU
answers if the IoU reaches ``min_iou``. Opening a cache reads only its keys (ids, boxes, modes);
a hit reads one small row group (the stage writes :data:`ROW_GROUP` rows per group) and decodes
one image, so a lookup never decodes a shard.
"""

from __future__ import annotations

import io
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from hoidata.io import read_manifest
from hoidata.schemas.canonical import BBOX, IMAGE, value_feature

ROW_GROUP = 8
CACHE_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("box", BBOX),  # the region, canonical pixels of the sample's image
        ("mode", pa.string()),
        ("backend", pa.string()),  # what made the pixels (the backend's fingerprint)
        ("region", pa.string()),  # why the region was chosen: cut, small, union
        ("label", pa.string()),
        ("window", pa.list_(pa.int32(), 4)),  # the view's extent, in the sample image's pixels
        ("image", IMAGE),  # null when the backend failed
        ("error", pa.string()),
    ]
)


def cache_features() -> dict[str, Any]:
    def seq(dtype: str) -> dict[str, Any]:
        return {"feature": value_feature(dtype), "length": 4, "_type": "List"}

    return {
        "sample_id": value_feature("string"),
        "box": seq("float32"),
        "mode": value_feature("string"),
        "backend": value_feature("string"),
        "region": value_feature("string"),
        "label": value_feature("string"),
        "window": seq("int32"),
        "image": {"_type": "Image"},
        "error": value_feature("string"),
    }


class ImagineCache:
    """The views of one cache directory, by sample id."""

    def __init__(self, directory: Path | str, min_iou: float = 0.5) -> None:
        self.directory = Path(directory)
        manifest = read_manifest(self.directory)
        if manifest.stage != "imagine":
            raise ValueError(f"{self.directory} is a {manifest.stage} dataset, not an imagine cache")
        self.min_iou = float(min_iou)
        self.backend = str(manifest.config.get("backend_fingerprint", ""))
        self.files = manifest.shard_files(self.directory)
        ids, boxes, modes, shards, rows = [], [], [], [], []
        for shard, path in enumerate(self.files):
            keys = pq.read_table(path, columns=["sample_id", "box", "mode", "error"])
            ok = keys["error"].is_null().to_numpy(zero_copy_only=False)
            ids.append(np.array(keys["sample_id"].to_pylist(), object)[ok])
            boxes.append(
                keys["box"].combine_chunks().flatten().to_numpy(zero_copy_only=False).reshape(-1, 4)[ok]
            )
            modes.append(np.array(keys["mode"].to_pylist(), object)[ok])
            shards.append(np.full(int(ok.sum()), shard))
            rows.append(np.flatnonzero(ok))
        all_ids = np.concatenate([*ids, np.zeros(0, object)])
        order = np.argsort(all_ids, kind="stable")
        self.ids = all_ids[order]
        self.boxes = np.concatenate([*boxes, np.zeros((0, 4))])[order].astype(np.float64)
        self.modes = np.concatenate([*modes, np.zeros(0, object)])[order]
        self.where = np.column_stack(
            [np.concatenate([*shards, [0]])[:-1], np.concatenate([*rows, [0]])[:-1]]
        )[order]
        starts = (
            np.flatnonzero(np.r_[True, self.ids[1:] != self.ids[:-1]]) if len(self.ids) else np.zeros(0, int)
        )
        ends = np.r_[starts[1:], len(self.ids)]
        self.index = {self.ids[s]: (int(s), int(e)) for s, e in zip(starts, ends, strict=True)}

    def __len__(self) -> int:
        return len(self.ids)

    def lookup(self, sample_id: str, box: np.ndarray, mode: str) -> Image.Image | None:
        """The cached view of the best-matching region, or None."""
        span = self.index.get(sample_id)
        if span is None:
            return None
        s, e = span
        iou = np.where(self.modes[s:e] == mode, _iou(self.boxes[s:e], np.asarray(box, np.float64)), -1.0)
        best = int(np.argmax(iou))
        if iou[best] < self.min_iou:
            return None
        shard, row = (int(v) for v in self.where[s + best])
        group = _reader(self.files[shard]).read_row_group(row // ROW_GROUP, columns=["image"])
        data = group["image"][row % ROW_GROUP].as_py()["bytes"]
        image = Image.open(io.BytesIO(data))
        image.load()
        return image


@cache
def _reader(path: Path) -> pq.ParquetFile:
    return pq.ParquetFile(path)


def _iou(boxes: np.ndarray, box: np.ndarray) -> np.ndarray:
    lt, rb = np.maximum(boxes[:, :2], box[:2]), np.minimum(boxes[:, 2:], box[2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=1)
    area = np.prod(boxes[:, 2:] - boxes[:, :2], axis=1) + np.prod(box[2:] - box[:2])
    return np.where(area - inter > 0, inter / np.maximum(area - inter, 1e-12), 0.0)


@cache
def open_cache(directory: str, min_iou: float = 0.5) -> ImagineCache:
    """One :class:`ImagineCache` per directory and process: every environment of a run shares its index."""
    return ImagineCache(directory, min_iou)
