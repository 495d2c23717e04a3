"""``hoidata attention``: a spatial-linking run's attention maps over the spatial samples of a dataset.

Layout of the output directory (a gallery lists ``maps/`` and reads the table for captions):

    OUT/maps/<name>.png      one per sample: person, object and union panels side by side
    OUT/attention.parquet    one row per sample: sample_id, file (maps/<name>.png), question,
                             width, height, regions, boxes (canonical), model_boxes (as written),
                             cells, peak and entropy per region

``<name>`` is the sample id with every character outside ``[A-Za-z0-9._-]`` replaced by ``_``.
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hoidata.errors import HoidataError
from hoidata.io import read_manifest, read_table, require_stage
from hoidata.io.files import write_bytes_atomic, write_parquet_atomic
from hoidata.io.images import open_image
from hoidata.models.spatial_attention import PANEL_HEIGHT, box_attention, render_panels
from hoidata.models.spatial_config import SpatialLinkingConfig, check_frame, has_spatial_linking
from hoidata.profiles import Profile, get_profile
from hoidata.sft.spatial_prompt import sample_question

MAPS, TABLE = "maps", "attention.parquet"
COLUMNS = ["sample_id", "task", "images", "messages", "refer_boxes", "pairs", "width", "height"]
SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("file", pa.string()),
        ("question", pa.string()),
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("regions", pa.list_(pa.string())),
        ("boxes", pa.list_(pa.list_(pa.float32(), 4))),
        ("model_boxes", pa.list_(pa.list_(pa.float32(), 4))),
        ("cells", pa.list_(pa.int32())),
        ("peak", pa.list_(pa.float32())),
        ("entropy", pa.list_(pa.float32())),
    ]
)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass
class MapsWritten:
    out: Path
    samples: int
    files: list[Path]


def map_name(sample_id: str) -> str:
    """The PNG file name of a sample's maps."""
    return _UNSAFE.sub("_", sample_id).strip("_") + ".png"


def draw_attention_maps(
    run_dir: Path | str,
    dataset_dir: Path | str,
    out: Path | str,
    *,
    limit: int = 16,
    sample_ids: list[str] | None = None,
    device: str = "cpu",
    height: int = PANEL_HEIGHT,
) -> MapsWritten:
    """Maps of the first ``limit`` spatial samples of ``dataset_dir`` (or of ``sample_ids``)."""
    run = Path(run_dir)
    if not has_spatial_linking(run):
        raise HoidataError("no spatial_linking.safetensors: not a spatial-linking run", file=str(run))
    manifest = read_manifest(dataset_dir)
    require_stage(manifest, dataset_dir, "build-sft", hint=" (build-sft spatial)")
    if manifest.profile_spec is None:
        raise HoidataError("the dataset names no model profile (profile_spec)", file=str(dataset_dir))
    profile = get_profile(*manifest.profile_spec)
    check_frame(SpatialLinkingConfig.load(run), profile.name, str(profile.frame))
    rows = _chosen(read_table(dataset_dir, COLUMNS).to_pylist(), limit, sample_ids, dataset_dir)
    questions = [sample_question(r, profile) for r in rows]  # bad boxes fail before the model loads
    model, processor = _load(run, profile, device)
    target = Path(out)
    (target / MAPS).mkdir(parents=True, exist_ok=True)
    records, files = [], []
    for row, question in zip(rows, questions, strict=True):
        image = open_image(row["images"][0], manifest.image_root)
        attentions = box_attention(model, processor, image, question)
        if not attentions:
            raise HoidataError("the prompt links no box", record=row["sample_id"], field="messages")
        written = np.array([a.box for a in attentions], np.float64)
        canonical = profile.from_model(written, row["width"], row["height"]).tolist()
        picture = render_panels(image, attentions, canonical, row["sample_id"], height)
        name = f"{MAPS}/{map_name(row['sample_id'])}"
        files.append(_save_png(picture, target / name))
        records.append(_record(row, name, question, attentions, canonical))
    write_parquet_atomic(target / TABLE, pa.Table.from_pylist(records, SCHEMA))
    return MapsWritten(target, len(records), files)


def _chosen(
    rows: list[dict[str, Any]], limit: int, sample_ids: list[str] | None, where: Path | str
) -> list[dict[str, Any]]:
    spatial = [r for r in rows if r.get("task") == "spatial"]
    if sample_ids:
        index = {r["sample_id"]: r for r in spatial}
        missing = [s for s in sample_ids if s not in index]
        if missing:
            raise HoidataError(f"no spatial sample {missing[0]!r} in the dataset", file=str(where))
        return [index[s] for s in sample_ids]
    if not spatial:
        raise HoidataError("no spatial samples (build the dataset with `build-sft spatial`)", file=str(where))
    return spatial[: max(1, limit)]


def _load(run: Path, profile: Profile, device: str) -> tuple[Any, Any]:
    """The run's model (adapter or full weights) with its module, and its processor at the data's budget."""
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from hoidata.models.spatial_linking import load_spatial_linking

    try:
        processor = AutoProcessor.from_pretrained(str(run))
        model = AutoModelForImageTextToText.from_pretrained(str(run)).to(device).eval()
    except OSError as e:
        raise HoidataError(f"cannot load the model: {str(e).splitlines()[0]}", file=str(run)) from None
    processor.image_processor.size = {"shortest_edge": profile.min_pixels, "longest_edge": profile.max_pixels}
    load_spatial_linking(model, run, processor.tokenizer)
    return model, processor


def _save_png(picture: Any, path: Path) -> Path:
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=True)
    write_bytes_atomic(path, buffer.getvalue())
    return path


def _record(
    row: dict[str, Any], name: str, question: str, attentions: list[Any], canonical: list[list[float]]
) -> dict[str, Any]:
    return {
        "sample_id": row["sample_id"],
        "file": name,
        "question": question,
        "width": row["width"],
        "height": row["height"],
        "regions": [a.region for a in attentions],
        "boxes": canonical,
        "model_boxes": [a.box for a in attentions],
        "cells": [len(a.cells) for a in attentions],
        "peak": [a.peak for a in attentions],
        "entropy": [a.entropy for a in attentions],
    }
