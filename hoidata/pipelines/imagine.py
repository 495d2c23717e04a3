"""``hoidata imagine``: imagined views of a dataset's regions, made ahead of time, as a cache that the
``imagine`` tool serves in gen-cot and GRPO (``--imagine-cache``), so no rollout waits on a diffusion
model.

Regions come from the canonical boxes (:mod:`hoidata.imagine.regions`); each becomes a request to the
backend, batched. Output shards hold ``shard_size`` input images each (the unit of resume: after a
kill, a rerun redoes at most one shard's images) and are written in row groups of
:data:`~hoidata.tools.imagine_cache.ROW_GROUP`, so a cache lookup reads one small group. Records
are images: an unreadable image is rejected; a region the backend failed on is a row with its error
and no image (the cache skips it), and rerunning the command makes exactly those regions again.
"""

from __future__ import annotations

import functools
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hoidata.errors import HoidataError
from hoidata.imagine import BACKENDS, MODES, ImagineRequest, make_backend
from hoidata.imagine.canvas import view_window
from hoidata.imagine.regions import REGION_KINDS, choose_regions
from hoidata.io import (
    ALL_SHARDS,
    Manifest,
    Output,
    ShardSpec,
    dataset_fingerprint,
    read_manifest,
    require_stage,
    run_stage,
)
from hoidata.io.files import parquet_rows
from hoidata.io.images import open_images
from hoidata.io.retry import Retry, by_column
from hoidata.options import option, recorded
from hoidata.schemas.canonical import REJECTS_SCHEMA
from hoidata.tools.imagine_cache import CACHE_SCHEMA, ROW_GROUP, cache_features

COLUMNS = ["sample_id", "image", "width", "height", "instances", "interactions"]


@dataclass
class ImagineConfig:
    """What decides the views; recorded in the manifest (connection settings aside)."""

    backend: str = option("context", "context (crops, fast), diffusers or http.", choices=BACKENDS)
    mode: str = option("outpaint", "outpaint beyond the border, edit the region, or context.", choices=MODES)
    regions: tuple[str, ...] = option(
        ("cut", "small"),
        "Regions, comma-separated: cut (boxes at the image border), small (shorter side under "
        "--min-side), union (every pair's union box).",
    )
    min_side: float = option(32.0, "small: boxes with a shorter side under this many pixels.")
    border: float = option(1.0, "cut: boxes within this many pixels of an image edge.")
    scale: float = option(2.0, "The view spans the region grown this many times around its centre.")
    seed: int = option(0, "Seed; with the sample id, box and mode it fixes every view.")
    model: str | None = option(None, "diffusers: a local pipeline directory or a Hub id.")
    device: str = option("cpu", "diffusers: torch device (cuda, cuda:1, cpu).", record=False)
    dtype: str = option("auto", "diffusers: auto (bfloat16 on CUDA), float16, bfloat16, float32.")
    steps: int = option(20, "diffusers: denoising steps.", minimum=1)
    guidance: float = option(7.5, "diffusers: classifier-free guidance scale.")
    size: int = option(
        512, "diffusers: long side of the generated canvas (pixels, multiple of 8).", minimum=8
    )
    batch_size: int = option(4, "diffusers: canvases per pipeline call.", record=False, minimum=1)
    url: str | None = option(None, "http: the service's endpoint (see the protocol in hoidata.imagine.http).")
    api_key: str | None = option(
        None, "http: bearer token.", envvar="HOIDATA_IMAGINE_API_KEY", secret=True, record=False
    )
    timeout: float = option(60.0, "http: seconds per request.", record=False)
    retries: int = option(
        3, "http: retries of a 429/5xx/timeout, with exponential backoff.", record=False, minimum=0
    )
    concurrency: int = option(4, "http: requests in flight.", record=False, minimum=1)
    shard_size: int = option(256, "Images per output shard (the unit of resume).", minimum=1)
    dp: int = option(
        1, "Processes sharing the job, one GPU each with a CUDA device.", record=False, minimum=1
    )
    threads: int = option(4, "Threads decoding images.", record=False, minimum=1)

    def make_backend(self) -> Any:
        return make_backend(
            self.backend,
            model=self.model,
            url=self.url,
            device=self.device,
            dtype=self.dtype,
            steps=self.steps,
            guidance=self.guidance,
            size=self.size,
            batch_size=self.batch_size,
            scale=self.scale,
            seed=self.seed,
            api_key=self.api_key,
            timeout=self.timeout,
            retries=self.retries,
            concurrency=self.concurrency,
        )


def imagine(
    input_dir: Path | str,
    out: Path | str,
    cfg: ImagineConfig,
    *,
    overwrite: bool = False,
    shard: ShardSpec = ALL_SHARDS,
    progress: bool = True,
) -> Manifest | None:
    """Write the imagined views of ``input_dir``'s regions to ``out``."""
    unknown = sorted(set(cfg.regions) - set(REGION_KINDS))
    if unknown or not cfg.regions:
        raise HoidataError(
            f"--regions: unknown {', '.join(unknown) or '(none)'}; choose from {', '.join(REGION_KINDS)}"
        )
    if cfg.backend == "context" and cfg.mode == "edit":
        raise HoidataError("--mode edit needs a generative backend (diffusers or http)")
    if cfg.shard_size < 1 or cfg.scale < 1:
        raise HoidataError("--shard-size must be positive and --scale at least 1")
    backend = cfg.make_backend()  # bad settings fail here, before any work
    manifest = read_manifest(input_dir)
    require_stage(manifest, input_dir, "convert", "qa", "boxes", hint=" (imagine reads canonical boxes)")
    root = manifest.image_root
    files = manifest.shard_files(input_dir)
    chunks = _chunks(parquet_rows(files), cfg.shard_size)
    config = recorded(cfg) | {
        "backend_fingerprint": backend.fingerprint,
        "input": str(Path(input_dir).resolve()),
        "split": manifest.split,
    }
    output = Output(
        stage="imagine",
        config=config,
        input_fingerprint=dataset_fingerprint(input_dir),
        features=cache_features(),
        schema=CACHE_SCHEMA,
        split=manifest.split,
        row_group_size=ROW_GROUP,
    )
    read = functools.lru_cache(maxsize=1)(lambda f: pq.read_table(files[f], columns=COLUMNS))

    def work(k: int, ids: set[str] | None = None) -> tuple[pa.Table, pa.Table, dict[str, float]]:
        """Shard ``k``'s views (of only the images ``ids`` when a rerun retries failed regions)."""
        f, start, stop = chunks[k]
        table = read(f).slice(start, stop - start)
        if ids is not None:
            table = table.filter(pc.is_in(table["sample_id"], pa.array(sorted(ids))))
        return _views(table, backend, cfg, root, str(files[f]), start)

    return run_stage(
        out,
        output,
        [stop - start for _, start, stop in chunks],
        work,
        shard=shard,
        overwrite=overwrite,
        rows_are_records=False,
        progress="imagine" if progress else None,
        retry=Retry("error", None, by_column("sample_id"), work, row_key=_region_key),
    )


def _region_key(rows: pa.Table) -> list[tuple[Any, ...]]:
    """A view's name: its image, region kind and box (an image has several regions)."""
    boxes = [tuple(b) for b in rows["box"].to_pylist()]
    return list(zip(rows["sample_id"].to_pylist(), rows["region"].to_pylist(), boxes, strict=True))


def _chunks(rows: list[int], size: int) -> list[tuple[int, int, int]]:
    """(input file, first row, end row) of every output shard."""
    out = [(f, s, min(s + size, n)) for f, n in enumerate(rows) for s in range(0, n, size)]
    return out or [(0, 0, 0)]


def _views(
    table: pa.Table, backend: Any, cfg: ImagineConfig, root: str | None, source_file: str, first: int
) -> tuple[pa.Table, pa.Table, dict[str, float]]:
    regions = choose_regions(table, cfg.regions, min_side=cfg.min_side, border=cfg.border)
    wanted = np.unique(regions.row)
    images = open_images([table["image"][int(r)].as_py() for r in wanted], root, cfg.threads)
    by_row = dict(zip(wanted.tolist(), images, strict=True))
    ids = table["sample_id"].to_pylist()
    rejects = [
        {
            "source_file": source_file,
            "record_index": first + r,
            "sample_id": ids[r],
            "field": "image",
            "reason": f"{type(im).__name__}: {im}",
            "raw": None,
        }
        for r, im in by_row.items()
        if isinstance(im, Exception)
    ]
    todo = [i for i in range(len(regions)) if not isinstance(by_row[int(regions.row[i])], Exception)]
    requests = [
        ImagineRequest(
            by_row[int(regions.row[i])], regions.box[i], cfg.mode, ids[regions.row[i]], regions.label[i]
        )
        for i in todo
    ]
    views = backend.imagine_many(requests) if requests else []
    rows = []
    for i, request, view in zip(todo, requests, views, strict=True):
        failed = isinstance(view, Exception)
        rows.append(
            {
                "sample_id": request.key,
                "box": regions.box[i].astype(np.float32).tolist(),
                "mode": cfg.mode,
                "backend": backend.fingerprint,
                "region": str(regions.kind[i]),
                "label": request.label,
                "window": None
                if failed
                else list(view_window(request.image.size, request.box, cfg.mode, cfg.scale)),
                "image": None if failed else {"bytes": _png(view), "path": None},
                "error": f"{type(view).__name__}: {view}" if failed else None,
            }
        )
    failed = sum(r["error"] is not None for r in rows)
    return (
        pa.Table.from_pylist(rows, CACHE_SCHEMA),
        pa.Table.from_pylist(rejects, REJECTS_SCHEMA),
        {"views": float(len(rows) - failed), "failed": float(failed)},
    )


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
