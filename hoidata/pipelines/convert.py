"""``hoidata convert``: raw annotations → the canonical HOI dataset directory.

Reading and checking are vectorised over the whole file; only image probing is per record (it is
file I/O, done in threads). Every record ends up either in a shard or in ``rejects.parquet``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace
from pathlib import Path

import pyarrow as pa

from hoidata.errors import HoidataError, RecordError
from hoidata.io import ALL_SHARDS, Manifest, Output, ShardSpec, run_stage
from hoidata.io.files import fingerprint
from hoidata.io.images import ImageInfo, probe_many
from hoidata.io.progress import Progress
from hoidata.options import option, recorded, size
from hoidata.perf import paused_gc
from hoidata.pipelines.canonical_rows import build_shard, relative_paths
from hoidata.schemas import canonical
from hoidata.schemas.boxes import BoxOrigin
from hoidata.schemas.taxonomy import Taxonomy, hico_det, swig_hoi
from hoidata.sources.base import SourceBatch
from hoidata.sources.hico import read_hico
from hoidata.sources.hoiqa import read_hoiqa
from hoidata.sources.swig import read_swig

HICO_LAYOUTS = ("mat", "ppdm", "upt")
HOIQA_LAYOUTS = ("train", "test", "visor")
BOX_ORIGINS = tuple(o.value for o in BoxOrigin)


@dataclass
class ConvertConfig:
    """Everything that decides a conversion's output; recorded in the manifest."""

    source: str = option("hico", "hico | swig | hoiqa (each has its own command).", cli=False)
    annotations: str = option("", "Annotation file.", short="-a", required=True)
    split: str | None = option(None, "Split name (default: 'train' or 'test' from the file name).")
    images: str | None = option(None, "Image root; image paths are stored relative to it.", short="-i")
    format: str | None = option(
        None, "Force a layout (default: detected).", flag="--format", choices=HICO_LAYOUTS + HOIQA_LAYOUTS
    )
    box_origin: str | None = option(
        None, "Pixel convention of the file's boxes (default: per layout, see README).", choices=BOX_ORIGINS
    )
    image_check: bool = option(True, "Open each image header; reject missing/unreadable.")
    embed_images: bool = option(False, "Store each image's original bytes (no re-encoding).")
    clip_boxes: bool = option(False, "Clamp boxes to the image instead of rejecting.")
    image_size: tuple[int, int] | None = option(
        None,
        "WxH used when an image's size is unknown (e.g. 456x256 for EPIC).",
        parse=size,
        show=lambda wh: f"{wh[0]}x{wh[1]}",
    )
    shard_size: int = option(20_000, "Records per Parquet shard.", minimum=1)


def split_from_name(path: Path) -> str:
    """'train' / 'test' / 'validation', read from an annotation file's name."""
    name = path.name.lower()
    for candidate in ("test", "train", "val", "dev"):
        if candidate in name:
            return {"val": "validation", "dev": "validation"}.get(candidate, candidate)
    raise HoidataError("cannot tell the split from the file name: pass --split", file=str(path))


def read_source(cfg: ConvertConfig) -> SourceBatch:
    origin = BoxOrigin(cfg.box_origin) if cfg.box_origin else None
    path = Path(cfg.annotations)
    readers = {
        "hico": lambda: read_hico(path, cfg.format, origin, cfg.split),
        "swig": lambda: read_swig(path, origin),
        "hoiqa": lambda: read_hoiqa(path, cfg.format, origin),
    }
    if cfg.source not in readers:
        raise HoidataError(f"unknown source {cfg.source!r}; expected hico, swig or hoiqa")
    return readers[cfg.source]()


def taxonomy_of(source: str) -> Taxonomy | None:
    return {"hico-det": hico_det, "swig-hoi": swig_hoi}.get(source, lambda: None)()


def convert(
    cfg: ConvertConfig,
    out: Path | str,
    *,
    overwrite: bool = False,
    progress: bool = True,
    shard: ShardSpec = ALL_SHARDS,
) -> Manifest | None:
    """Convert one annotation file into a dataset directory; resumes an interrupted run."""
    with paused_gc():  # parsing builds millions of small containers: the cyclic GC would walk them all
        return _convert(cfg, out, overwrite, progress, shard)


def _convert(
    cfg: ConvertConfig, out: Path | str, overwrite: bool, progress: bool, shard: ShardSpec
) -> Manifest | None:
    if not Path(cfg.annotations).exists():  # the first thing to tell, before any question about the split
        raise HoidataError("file not found", file=cfg.annotations)
    if cfg.split is None:
        cfg = replace(cfg, split=split_from_name(Path(cfg.annotations)))
    if cfg.image_check and not cfg.images:
        raise HoidataError("pass --images DIR (the image root), or --no-image-check to skip image checks")
    if cfg.embed_images and not cfg.images:
        raise HoidataError("--embed-images needs --images DIR")
    if cfg.images and not Path(cfg.images).is_dir():
        raise HoidataError("image root is not a directory", file=cfg.images)
    if cfg.shard_size < 1:
        raise HoidataError(f"--shard-size must be at least 1, got {cfg.shard_size}")
    start = time.perf_counter()
    batch = read_source(cfg)
    timings = {"read_s": round(time.perf_counter() - start, 4)}
    tax = taxonomy_of(batch.source)
    errors = list(batch.errors)
    _mark_duplicates(batch, errors)
    n = len(batch)
    bounds = [(lo, min(n, lo + cfg.shard_size)) for lo in range(0, n, cfg.shard_size)] or [(0, 0)]
    output = Output(
        stage="convert",
        config=recorded(cfg) | {"layout": batch.layout, "box_origin": str(batch.box_origin)},
        input_fingerprint=fingerprint([cfg.annotations]),
        features=canonical.features(decode_images=cfg.embed_images),
        schema=canonical.SCHEMA,
        split=str(cfg.split),
    )

    bar = Progress("convert", unit="img") if progress and cfg.image_check else None

    def work(s: int) -> tuple[pa.Table, pa.Table, dict[str, float]]:
        lo, hi = bounds[s]
        t = time.perf_counter()
        images = _probe_images(batch, cfg, errors, lo, hi, bar)
        t_images = time.perf_counter() - t
        table, rejects = build_shard(
            batch,
            tax,
            errors,
            images,
            lo,
            hi,
            split=str(cfg.split),
            clip_boxes=cfg.clip_boxes,
            image_size=cfg.image_size,
        )
        return table, rejects, {"images_s": t_images, "build_s": time.perf_counter() - t - t_images}

    return run_stage(
        out,
        output,
        [hi - lo for lo, hi in bounds],
        work,
        shard=shard,
        overwrite=overwrite,
        progress=bar,
        timings=timings,
        started=start,
        notes=batch.notes,
    )


def _mark_duplicates(batch: SourceBatch, errors: list[RecordError | None]) -> None:
    if len(set(batch.keys)) == len(batch.keys):
        return
    seen: dict[str, int] = {}
    for i, key in enumerate(batch.keys):
        if errors[i] is not None:
            continue
        if key in seen:
            errors[i] = RecordError(
                batch.field_name("file_name"), f"duplicate of record {seen[key]} ({batch.file_names[i]})"
            )
        else:
            seen[key] = i


def _probe_images(
    batch: SourceBatch,
    cfg: ConvertConfig,
    errors: list[RecordError | None],
    lo: int,
    hi: int,
    bar: Progress | None,
) -> list[ImageInfo | None]:
    """Check paths (always) and image files (unless --no-image-check) for records lo..hi."""
    out: list[ImageInfo | None] = [None] * (hi - lo)
    todo, paths = [], []
    root = Path(cfg.images) if cfg.images else None
    probe_files = root is not None and (cfg.image_check or cfg.embed_images)
    rel_paths = relative_paths(batch.file_names[lo:hi])
    for i, rel in enumerate(rel_paths, start=lo):
        if errors[i] is not None:
            continue
        if rel is None:
            errors[i] = RecordError(
                batch.field_name("file_name"), f"{batch.file_names[i]!r} escapes the image root"
            )
        elif probe_files:
            todo.append(i)
            paths.append(root / rel)  # type: ignore[operator]
    if bar is not None:
        bar.update((hi - lo) - len(todo))
    for i, info in zip(todo, probe_many(paths, cfg.embed_images, progress=bar, root=root), strict=True):
        out[i - lo] = info
        if info.error:
            errors[i] = RecordError(batch.field_name("file_name"), info.error)
        elif batch.widths[i] > 0 and (batch.widths[i], batch.heights[i]) != (info.width, info.height):
            errors[i] = RecordError(
                "size",
                f"annotation says {batch.widths[i]}x{batch.heights[i]}, the image is {info.width}x{info.height}",
            )
    return out
