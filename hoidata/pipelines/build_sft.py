"""``hoidata build-sft TASK``: a boxed HOI dataset → a TRL-ready SFT dataset (``images`` + ``messages``).

Tasks: ``referring`` (boxes → actions), ``grounding`` (action → every matching pair), ``detection``
(image → every triplet), ``cof`` (chain-of-focus: zoom-in tool call with the real crop) and
``spatial`` (referring with ``refer_boxes = [person, object, union]`` for spatial-linking models) and
``box-answer`` (referring asked box first: the region as a box, its crop, then the answer) and
``hoiqa`` (the dataset's QA items, HOI-QA's or ``hoidata qa``'s: :mod:`hoidata.pipelines.build_sft_qa`).
Records in are images; an image that yields no sample (no interaction to ask about) is a reject.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from PIL import Image

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
from hoidata.io.images import check_image_header, decode_image, image_bytes
from hoidata.options import option, recorded
from hoidata.pipelines.build_sft_qa import CONVERSATIONS, qa_samples
from hoidata.profiles import Profile, get_profile
from hoidata.schemas.canonical import REJECTS_SCHEMA
from hoidata.sft import qa, tasks
from hoidata.sft.box_answer import box_answer_columns
from hoidata.sft.cof import cof_columns
from hoidata.sft.messages import single_turn
from hoidata.sft.schema import SFT_SCHEMA, sft_features
from hoidata.tools.environment import TOOL_NAMES, tool_schemas

IMAGE_MODES = ("auto", "embed", "path", "resize")


@dataclass
class BuildSftConfig:
    """What decides an SFT dataset; recorded in the manifest."""

    task: str = option("referring", "Which SFT task to build.", choices=tasks.TASKS, argument=True)
    seed: int = option(0, "Seed of paraphrase choice and tool share (deterministic).")
    images: str = option(
        "auto",
        "auto: as the input stores them; embed: original bytes; path: relative paths; resize: "
        "pre-resized to the profile's smart_resize size (same pixels for training and vLLM).",
        choices=IMAGE_MODES,
    )
    tool_share: float = option(0.35, "cof: share of samples that call the zoom-in tool.")
    tools: tuple[str, ...] = option(
        TOOL_NAMES, "cof: tools the prompt offers, comma-separated, zoom_in among them (as gen-cot --tools)."
    )
    box_format: str = option(
        "profile",
        "hoiqa: boxes in the profile's frame, or on HOI-Ref's 0-100 grid {<x1><y1><x2><y2>}.",
        choices=qa.BOX_FORMATS,
    )
    conversation: str = option(
        "item",
        "hoiqa: one sample per QA item, or one multi-turn conversation per image (as HOI-Ref trains).",
        choices=CONVERSATIONS,
    )
    tags: bool = option(True, "hoiqa: start each question with its task tag ([refer], [identify], ...).")
    threads: int = option(8, "Threads reading and resizing images.", record=False, minimum=1)


def build_sft(
    input_dir: Path | str,
    out: Path | str,
    cfg: BuildSftConfig,
    *,
    overwrite: bool = False,
    shard: ShardSpec = ALL_SHARDS,
) -> Manifest | None:
    if cfg.task not in tasks.TASKS:
        raise HoidataError(f"unknown task {cfg.task!r}; choose one of {', '.join(tasks.TASKS)}")
    if cfg.images not in IMAGE_MODES:
        raise HoidataError(f"--images must be one of {', '.join(IMAGE_MODES)}, got {cfg.images!r}")
    if not 0.0 <= cfg.tool_share <= 1.0:
        raise HoidataError(f"--tool-share must be within [0, 1], got {cfg.tool_share}")
    if "zoom_in" not in cfg.tools or set(cfg.tools) - set(TOOL_NAMES):
        raise HoidataError(
            f"--tools must be some of {', '.join(TOOL_NAMES)}, zoom_in among them (chain-of-focus "
            f"samples call it); got {', '.join(cfg.tools) or 'none'}"
        )
    manifest = read_manifest(input_dir)
    require_stage(
        manifest,
        input_dir,
        "boxes",
        hint=f" (boxes fixes the model profile): run `hoidata boxes {input_dir} --profile ... --out ...` first",
    )
    profile = get_profile(*manifest.profile_spec)
    root = manifest.config.get("images")
    embedded_input = manifest.embedded_images
    mode = cfg.images if cfg.images != "auto" else ("embed" if embedded_input else "path")
    if mode in ("embed", "resize") and not embedded_input and not root:
        raise HoidataError("the input has neither embedded images nor an image root to read them from")
    if mode == "path" and embedded_input and not root:
        raise HoidataError("--images path needs an image root; the input only has embedded bytes")
    config = recorded(cfg) | {
        "images_mode": mode,
        "images": root if mode == "path" else None,
        "profile": profile.name,
        "profile_spec": profile.describe(),
        "input": str(Path(input_dir).resolve()),
        "split": manifest.split,
    }
    output = Output(
        stage="build-sft",
        config=config,
        input_fingerprint=dataset_fingerprint(input_dir),
        features=sft_features(decode_images=mode != "path"),
        schema=SFT_SCHEMA,
        split=manifest.split,
    )

    return run_stage_on_shards(
        input_dir,
        out,
        output,
        lambda table, path: build_table(table, profile, cfg, mode, root, source_file=path),
        shard=shard,
        overwrite=overwrite,
        rows_are_records=False,
        progress="build-sft",
        profile=profile.describe(),
    )


def build_table(
    table: pa.Table, profile: Profile, cfg: BuildSftConfig, mode: str, root: str | None, source_file: str = ""
) -> tuple[pa.Table, pa.Table]:
    """One boxed table → (SFT samples, rejects); an image that cannot be read is a record reject."""
    table = table.combine_chunks()
    images = (
        table["image"].combine_chunks()
        if table.num_rows
        else pa.array([], SFT_SCHEMA.field("images").type.value_type)
    )
    rw = table["resized_width"].to_numpy(zero_copy_only=False).astype(np.int64)
    rh = table["resized_height"].to_numpy(zero_copy_only=False).astype(np.int64)
    loader = _ImageLoader(images, root)
    # embed/resize read every image; cof decodes them for its crops: a bad one is caught here, per record
    if mode == "resize":
        images, failed = _resized_images(images, loader, rw, rh, cfg.threads)
    elif mode == "embed":
        images, failed = _embedded_images(images, loader, cfg.threads)
    elif cfg.task in ("cof", "box-answer"):
        failed = _unreadable(loader, len(images), cfg.threads)
    else:
        failed = {}
    if mode == "path":
        images = pa.StructArray.from_arrays(
            [pa.nulls(len(images), pa.binary()), images.field("path")], names=["bytes", "path"]
        )
    image_rejects = _image_rejects(table, failed, source_file)
    if failed:
        keep = np.ones(table.num_rows, bool)
        keep[list(failed)] = False
        table, images = table.filter(pa.array(keep)), images.filter(pa.array(keep))
        rw, rh = rw[keep], rh[keep]
        source_rows = np.flatnonzero(keep)
    else:
        source_rows = np.arange(table.num_rows)
    loader = _ImageLoader(images, root)
    it = tasks.flatten(table)
    width = table["width"].to_numpy(zero_copy_only=False).astype(np.float64)
    height = table["height"].to_numpy(zero_copy_only=False).astype(np.float64)
    if mode == "resize":
        sx, sy = rw / np.maximum(width, 1), rh / np.maximum(height, 1)
        for name in ("person", "object_box"):
            boxes = getattr(it, name)
            boxes[:, 0::2] *= sx[it.row, None]
            boxes[:, 1::2] *= sy[it.row, None]
        width, height = rw.astype(np.float64), rh.astype(np.float64)
    samples, rejects = _samples(table, it, images, loader, profile, cfg, width, height, rw, rh, source_file)
    if len(source_rows) and rejects.num_rows:  # record indices of the input table, not of the kept rows
        at = rejects.schema.get_field_index("record_index")
        rejects = rejects.set_column(
            at, "record_index", pa.array(source_rows[rejects["record_index"].to_numpy()])
        )
    return samples, pa.concat_tables([image_rejects, rejects.cast(REJECTS_SCHEMA)])


def _samples(
    table: pa.Table,
    it: tasks.Interactions,
    images: pa.StructArray,
    loader: _ImageLoader,
    profile: Profile,
    cfg: BuildSftConfig,
    width: np.ndarray,
    height: np.ndarray,
    rw: np.ndarray,
    rh: np.ndarray,
    source_file: str,
) -> tuple[pa.Table, pa.Table]:
    if cfg.task == "hoiqa":
        sizes = (
            table["width"].to_numpy(zero_copy_only=False).astype(np.float64),
            table["height"].to_numpy(zero_copy_only=False).astype(np.float64),
            width,
            height,
        )
        return qa_samples(
            table,
            images,
            sizes,
            profile,
            box_format=cfg.box_format,
            conversation=cfg.conversation,
            tags=cfg.tags,
            source_file=source_file,
        )
    if cfg.task == "grounding":
        units = tasks.grounding_units(it, profile, cfg.seed)
    elif cfg.task == "detection":
        units = tasks.detection_units(it, profile, cfg.seed)
    else:
        units = tasks.pair_units(it, profile, cfg.seed, cfg.task)

    source_ids = table["sample_id"].combine_chunks()
    row = units.row
    index_in_row = np.arange(len(row)) - np.searchsorted(row, row, side="left")
    sample_ids = pc.binary_join_element_wise(
        source_ids.take(pa.array(row)), f":{cfg.task}:", pa.array(index_in_row).cast(pa.string()), ""
    )
    n = len(units)
    uses_tool = np.zeros(n, bool)
    tools_json = orjson.dumps(tool_schemas(cfg.tools)).decode()
    image_lists = _single_images(images, row)
    if cfg.task == "cof":
        messages, crops, uses_tool = cof_columns(
            it,
            units,
            profile,
            cfg.seed,
            cfg.tool_share,
            sample_ids,
            width[row],
            height[row],
            loader.open,
            _encode_crop,
        )
        if uses_tool.any():
            image_lists = _with_crops(images, row, crops)
    elif cfg.task == "box-answer":
        messages, crops = box_answer_columns(
            it, units, profile, width[row], height[row], loader.open, _encode_crop
        )
        image_lists = _with_crops(images, row, crops)
    else:
        messages = single_turn(units.question, units.answer)
    refer = (
        tasks.refer_boxes_column(it, units)
        if cfg.task == "spatial"
        else pa.nulls(n, SFT_SCHEMA.field("refer_boxes").type)
    )
    columns = {
        "sample_id": sample_ids,
        "source_id": source_ids.take(pa.array(row)),
        "task": pa.array(np.full(n, cfg.task, object), pa.string()),
        "images": image_lists,
        "messages": messages,
        "tools": pc.if_else(pa.array(uses_tool), tools_json, pa.scalar(None, pa.string())),
        "width": pa.array(width[row].astype(np.int32)),
        "height": pa.array(height[row].astype(np.int32)),
        "resized_width": pa.array(rw[row].astype(np.int32)),
        "resized_height": pa.array(rh[row].astype(np.int32)),
        "pairs": tasks.pairs_column(it, units),
        "refer_boxes": refer,
        "uses_tool": pa.array(uses_tool),
    }
    out = pa.table([columns[f.name] for f in SFT_SCHEMA], schema=SFT_SCHEMA)
    return out, _rejects(table, row, cfg.task, source_file)


def _single_images(images: pa.StructArray, row: np.ndarray) -> pa.ListArray:
    return pa.ListArray.from_arrays(pa.array(np.arange(len(row) + 1), pa.int32()), images.take(pa.array(row)))


def _with_crops(images: pa.StructArray, row: np.ndarray, crops: list[bytes | None]) -> pa.ListArray:
    """[image] per sample, plus the crop as a second image where the sample zooms in."""
    has = np.array([c is not None for c in crops])
    counts = 1 + has
    offsets = np.concatenate([[0], np.cumsum(counts)])
    base = images.take(pa.array(row))
    crop_structs = pa.StructArray.from_arrays(
        [pa.array([c for c in crops if c is not None], pa.binary()), pa.nulls(int(has.sum()), pa.string())],
        names=["bytes", "path"],
    )
    # positions: the base image at offsets[i], the crop (if any) right after it
    all_images = pa.concat_arrays([base, crop_structs])
    take = np.empty(offsets[-1], np.int64)
    take[offsets[:-1]] = np.arange(len(row))
    take[offsets[:-1][has] + 1] = len(row) + np.arange(int(has.sum()))
    return pa.ListArray.from_arrays(pa.array(offsets, pa.int32()), all_images.take(pa.array(take)))


class _ImageLoader:
    """Opens row images from embedded bytes or from the image root (never outside it)."""

    def __init__(self, images: pa.StructArray, root: str | None) -> None:
        self.images, self.root = images, root

    def raw(self, row: int) -> bytes:
        image = {
            "bytes": self.images.field("bytes")[row].as_py(),
            "path": self.images.field("path")[row].as_py(),
        }
        return image_bytes(image, self.root)

    def open(self, row: int) -> Image.Image:
        return decode_image(self.raw(row))


def _each(fn: Callable[[int], bytes], n: int, threads: int) -> tuple[list[bytes | None], dict[int, str]]:
    """``fn`` of every row in threads; a row that raises gets None and its reason."""

    def attempt(row: int) -> bytes | str:
        try:
            return fn(row)
        except Exception as e:  # a bad file is the record's problem, never the shard's
            return f"{type(e).__name__}: {e}"

    with ThreadPoolExecutor(threads) as pool:
        got = list(pool.map(attempt, range(n)))
    failed = {i: g for i, g in enumerate(got) if isinstance(g, str)}
    return [None if isinstance(g, str) else g for g in got], failed


def _unreadable(loader: _ImageLoader, n: int, threads: int) -> dict[int, str]:
    """Rows whose image does not decode (chain-of-focus crops need the pixels)."""

    def decodes(row: int) -> bytes:
        loader.open(row)
        return b""

    return _each(decodes, n, threads)[1]


def _embedded_images(
    images: pa.StructArray, loader: _ImageLoader, threads: int
) -> tuple[pa.StructArray, dict[int, str]]:
    """Original bytes for every row (no re-encoding), each checked to be an image within the limits."""

    def one(row: int) -> bytes:
        data = loader.raw(row)
        check_image_header(data)
        return data

    data, failed = _each(one, len(images), threads)
    return pa.StructArray.from_arrays(
        [pa.array(data, pa.binary()), images.field("path")], names=["bytes", "path"]
    ), failed


def _resized_images(
    images: pa.StructArray, loader: _ImageLoader, rw: np.ndarray, rh: np.ndarray, threads: int
) -> tuple[pa.StructArray, dict[int, str]]:
    """Every image resized (bicubic, as the Qwen processors) to the profile's smart_resize size, so that
    the processor's own resize is the identity and training and vLLM see the same pixels."""

    def one(row: int) -> bytes:
        raw = loader.raw(row)
        im = decode_image(raw)
        fmt = "JPEG" if raw[:3] == b"\xff\xd8\xff" else "PNG"
        size = (int(rw[row]), int(rh[row]))
        resized = im if im.size == size else im.resize(size, Image.Resampling.BICUBIC)
        return _encode(resized, fmt)

    data, failed = _each(one, len(images), threads)
    return pa.StructArray.from_arrays(
        [pa.array(data, pa.binary()), images.field("path")], names=["bytes", "path"]
    ), failed


def _image_rejects(table: pa.Table, failed: dict[int, str], source_file: str) -> pa.Table:
    rows = sorted(failed)
    ids = table["sample_id"].take(pa.array(rows, pa.int64())).to_pylist() if rows else []
    return pa.Table.from_pylist(
        [
            {
                "source_file": source_file,
                "record_index": r,
                "sample_id": sid,
                "field": "image",
                "reason": failed[r],
                "raw": None,
            }
            for r, sid in zip(rows, ids, strict=True)
        ],
        schema=REJECTS_SCHEMA,
    )


def _encode(im: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "JPEG":
        im.convert("RGB").save(buf, format="JPEG", quality=95)
    else:
        im.save(buf, format="PNG")
    return buf.getvalue()


def _encode_crop(im: Image.Image) -> bytes:
    """Crops are stored losslessly: they are what the tool returns, pixel for pixel."""
    return _encode(im, "PNG")


def _rejects(table: pa.Table, row: np.ndarray, task: str, source_file: str) -> pa.Table:
    used = np.zeros(table.num_rows, bool)
    used[row] = True
    missing = np.flatnonzero(~used)
    ids = table["sample_id"].take(pa.array(missing)).to_pylist()
    return pa.Table.from_pylist(
        [
            {
                "source_file": source_file,
                "record_index": int(i),
                "sample_id": sid,
                "field": "interactions",
                "reason": f"no interactions to build a {task} sample from",
                "raw": None,
            }
            for i, sid in zip(missing, ids, strict=True)
        ],
        schema=REJECTS_SCHEMA,
    )
