"""``hoidata boxes``: union ("interaction") boxes, refer boxes and model-frame boxes, per interaction.

Everything is computed from the canonical boxes, never parsed back out of text: each instance gets
its box in the chosen profile's frame, each interaction gets ``union_bbox`` (person ∪ object, with
optional padding, clipped to the image) and ``refer_boxes = [person, object, union]``, in canonical
pixels and in the profile's frame. One output shard per input shard; whole columns at a time.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.errors import HoidataError
from hoidata.io import (
    ALL_SHARDS,
    Manifest,
    Output,
    ShardSpec,
    dataset_fingerprint,
    read_manifest,
    require_stage,
    run_stage_on_shards,
)
from hoidata.options import option, recorded
from hoidata.profiles import PROFILES, Profile, get_profile
from hoidata.schemas import boxes as bx
from hoidata.schemas import canonical
from hoidata.sources.base import arrow_array, numbers, one_array, string_array

NO_OBJECT_CHOICES = ("person", "null")
PROFILE_NAMES = tuple(PROFILES)


@dataclass
class BoxesConfig:
    """What decides the added boxes; recorded in the manifest and read by later stages."""

    profile: str = option("qwen2.5-vl", "Model profile whose box frame to add.", choices=PROFILE_NAMES)
    min_pixels: int | None = option(None, "Pixel budget floor (default: the profile's).", minimum=1)
    max_pixels: int | None = option(None, "Pixel budget ceiling (default: the profile's).", minimum=1)
    union_pad: float = option(0.0, "Pixels added on each side of the union box.")
    union_pad_ratio: float = option(0.0, "Plus this share of the union's size on each side (0.1 = 10%).")
    no_object: str = option(
        "person",
        "Interactions without an object: use the person box (object = union = person), or leave null.",
        choices=NO_OBJECT_CHOICES,
    )

    def resolved_profile(self) -> Profile:
        return get_profile(self.profile, self.min_pixels, self.max_pixels)


def boxes(
    input_dir: Path | str,
    out: Path | str,
    cfg: BoxesConfig,
    *,
    overwrite: bool = False,
    shard: ShardSpec = ALL_SHARDS,
) -> Manifest | None:
    """Add union/refer/model-frame boxes to a canonical dataset directory."""
    profile = cfg.resolved_profile()
    if cfg.no_object not in NO_OBJECT_CHOICES:
        raise HoidataError(
            f"--no-object must be one of {', '.join(NO_OBJECT_CHOICES)}, got {cfg.no_object!r}"
        )
    if cfg.union_pad < 0 or cfg.union_pad_ratio < 0:
        raise HoidataError("union padding must not be negative")
    manifest = read_manifest(input_dir)
    require_stage(manifest, input_dir, "convert", "qa", hint=" (boxes reads a canonical dataset)")
    decode = manifest.embedded_images
    config = recorded(cfg) | {
        "profile_spec": profile.describe(),
        "input": str(Path(input_dir).resolve()),
        "images": manifest.image_root,
        "embed_images": decode,
        "split": manifest.split,
        "source_config": manifest.config,
    }
    output = Output(
        stage="boxes",
        config=config,
        input_fingerprint=dataset_fingerprint(input_dir),
        features=canonical.boxed_features(decode_images=decode),
        schema=canonical.BOXED_SCHEMA,
        split=manifest.split,
    )

    return run_stage_on_shards(
        input_dir,
        out,
        output,
        lambda table, path: add_boxes(table, profile, cfg, source_file=path),
        shard=shard,
        overwrite=overwrite,
        progress="boxes",
        profile=profile.describe(),
    )


def add_boxes(
    table: pa.Table, profile: Profile, cfg: BoxesConfig, source_file: str = ""
) -> tuple[pa.Table, pa.Table]:
    """The boxes stage on one table: (table with the boxed schema, rejects)."""
    table = table.combine_chunks()
    bad = _check_rows(table)
    rejects = _rejects(table, bad, source_file)
    keep = np.ones(table.num_rows, dtype=bool)
    keep[list(bad)] = False
    table = table.filter(arrow_array(keep)) if bad else table
    n = table.num_rows
    width = numbers(table["width"]).astype(np.float64)
    height = numbers(table["height"]).astype(np.float64)
    rw, rh = profile.resized(width, height)

    inst_list = one_array(table["instances"])
    inst_off = _offsets(inst_list)
    inst = inst_list.values.slice(inst_off[0], inst_off[-1] - inst_off[0])
    inst_off = inst_off - inst_off[0]
    inst_row = np.repeat(np.arange(n), np.diff(inst_off))
    inst_boxes = _boxes_of(inst.field("bbox"))
    model_inst = profile.to_model(inst_boxes, width[inst_row], height[inst_row])

    int_list = one_array(table["interactions"])
    int_off = _offsets(int_list)
    inter = int_list.values.slice(int_off[0], int_off[-1] - int_off[0])
    int_off = int_off - int_off[0]
    int_row = np.repeat(np.arange(n), np.diff(int_off))
    subject = numbers(inter.field("subject")).astype(np.int64)
    obj = numbers(inter.field("object")).astype(np.int64)
    has_obj = obj >= 0
    person = inst_boxes[inst_off[int_row] + subject] if len(subject) else np.zeros((0, 4))
    obj_box = person.copy()
    if has_obj.any():
        obj_box[has_obj] = inst_boxes[inst_off[int_row[has_obj]] + obj[has_obj]]
    union = _padded_union(person, obj_box, cfg, width[int_row], height[int_row])
    model_union = profile.to_model(union, width[int_row], height[int_row])
    model_person = model_inst[inst_off[int_row] + subject] if len(subject) else np.zeros((0, 4), np.int64)
    model_obj = model_person.copy()
    if has_obj.any():
        model_obj[has_obj] = model_inst[inst_off[int_row[has_obj]] + obj[has_obj]]

    null_union = ~has_obj if cfg.no_object == "null" else np.zeros(len(subject), bool)
    new_inst = pa.StructArray.from_arrays(
        [*inst.flatten(), _fixed(model_inst, pa.int32())], fields=list(canonical.BOXED_INSTANCE)
    )
    new_inter = pa.StructArray.from_arrays(
        [
            *inter.flatten(),
            _fixed(union, pa.float32(), null_union),
            _triples(person, obj_box, union, pa.float32(), null_union),
            _fixed(model_union, pa.int32(), null_union),
            _triples(model_person, model_obj, model_union, pa.int32(), null_union),
        ],
        fields=list(canonical.BOXED_INTERACTION),
    )
    columns = {name: table[name] for name in table.column_names}
    columns["resized_width"] = arrow_array(np.asarray(rw, np.int32))
    columns["resized_height"] = arrow_array(np.asarray(rh, np.int32))
    columns["instances"] = pa.ListArray.from_arrays(arrow_array(inst_off.astype(np.int32)), new_inst)
    columns["interactions"] = pa.ListArray.from_arrays(arrow_array(int_off.astype(np.int32)), new_inter)
    out = pa.table([columns[f.name] for f in canonical.BOXED_SCHEMA], names=canonical.BOXED_SCHEMA.names)
    return out, rejects


def _offsets(arr: pa.ListArray) -> np.ndarray:
    return numbers(arr.offsets).astype(np.int64)


def _boxes_of(bbox: pa.FixedSizeListArray) -> np.ndarray:
    return numbers(bbox.flatten()).astype(np.float64).reshape(-1, 4)


def _padded_union(
    person: np.ndarray, obj: np.ndarray, cfg: BoxesConfig, width: np.ndarray, height: np.ndarray
) -> np.ndarray:
    union = bx.union(person, obj) if len(person) else np.zeros((0, 4))
    if cfg.union_pad or cfg.union_pad_ratio:
        size = np.concatenate([union[:, 2:] - union[:, :2]] * 2, axis=1)
        pad = cfg.union_pad + cfg.union_pad_ratio * size
        union = union + pad * np.array([-1, -1, 1, 1])
        union[:, 0::2] = np.clip(union[:, 0::2], 0, width[:, None])
        union[:, 1::2] = np.clip(union[:, 1::2], 0, height[:, None])
    return union


def _fixed(values: np.ndarray, dtype: pa.DataType, null: np.ndarray | None = None) -> pa.FixedSizeListArray:
    flat = arrow_array(np.asarray(values).reshape(-1).astype(dtype.to_pandas_dtype()))
    mask = arrow_array(null) if null is not None and null.any() else None
    return pa.FixedSizeListArray.from_arrays(flat, 4, mask=mask)


def _triples(
    a: np.ndarray, b: np.ndarray, c: np.ndarray, dtype: pa.DataType, null: np.ndarray
) -> pa.ListArray:
    """``[a_i, b_i, c_i]`` per row as a list of boxes (null where ``null``)."""
    stacked = np.stack([a, b, c], axis=1).reshape(-1, 4)
    offsets = arrow_array(np.arange(0, 3 * len(a) + 1, 3, dtype=np.int32))
    mask = arrow_array(null) if null.any() else None
    return pa.ListArray.from_arrays(offsets, _fixed(stacked, dtype), mask=mask)


def _check_rows(table: pa.Table) -> dict[int, tuple[str, str]]:
    """Rows the stage cannot box, with (field, reason): unknown or unusable image sizes, and
    interactions pointing at instances that do not exist (hand-made datasets)."""
    bad: dict[int, tuple[str, str]] = {}
    n = table.num_rows
    if not n:
        return bad
    width = numbers(table["width"])
    height = numbers(table["height"])
    missing = numbers(pc.or_(pc.is_null(table["width"]), pc.is_null(table["height"])))
    for i in np.flatnonzero(missing):
        bad[int(i)] = ("width", "image size unknown (convert with --image-check or --image-size)")
    w = np.nan_to_num(width.astype(np.float64))
    h = np.nan_to_num(height.astype(np.float64))
    for i in np.flatnonzero(~missing & ~bx.valid_for_resize(h, w)):
        bad[int(i)] = ("width", f"image size {int(w[i])}x{int(h[i])} cannot be resized (aspect ratio > 200)")
    n_inst = np.nan_to_num(numbers(pc.list_value_length(table["instances"]))).astype(np.int64)
    inter = one_array(table["interactions"])
    row = np.repeat(np.arange(n), np.diff(_offsets(inter)))
    flat = inter.flatten()
    subject = numbers(flat.field("subject"))
    obj = numbers(flat.field("object"))
    wrong_s = (subject < 0) | (subject >= n_inst[row])
    wrong_o = (obj < -1) | (obj >= n_inst[row])
    for k in np.flatnonzero(wrong_s | wrong_o):
        r = int(row[k])
        field = "interactions.subject" if wrong_s[k] else "interactions.object"
        bad.setdefault(
            r, (field, f"index {subject[k] if wrong_s[k] else obj[k]} is not an instance of the record")
        )
    return bad


def _rejects(table: pa.Table, bad: dict[int, tuple[str, str]], source_file: str) -> pa.Table:
    rows = sorted(bad)
    records = [table.slice(i, 1).drop_columns(["image"]).to_pylist()[0] for i in rows]
    return pa.Table.from_pydict(
        {
            "source_file": string_array([source_file] * len(rows)),
            "record_index": arrow_array(np.array(rows, dtype=np.int64)),
            "sample_id": string_array([r["sample_id"] for r in records]),
            "field": string_array([bad[i][0] for i in rows]),
            "reason": string_array([bad[i][1] for i in rows]),
            "raw": string_array(
                [orjson.dumps(r, option=orjson.OPT_SERIALIZE_NUMPY).decode() for r in records]
            ),
        },
        schema=canonical.REJECTS_SCHEMA,
    )
