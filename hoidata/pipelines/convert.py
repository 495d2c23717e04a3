"""``hoidata convert``: raw annotations → the canonical HOI dataset directory.

Reading and checking are vectorised over the whole file; only image probing is per record (it is
file I/O, done in threads). Every record ends up either in a shard or in ``rejects.parquet``.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hoidata.errors import HoidataError, RecordError
from hoidata.io.dataset_dir import Manifest, StageRun
from hoidata.io.files import fingerprint
from hoidata.io.images import ImageInfo, probe_many, safe_relative_path
from hoidata.perf import paused_gc
from hoidata.schemas import canonical
from hoidata.schemas.boxes import BoxOrigin, from_normalized, from_origin
from hoidata.schemas.taxonomy import Taxonomy, hico_det, swig_hoi
from hoidata.sources.base import SourceBatch

SOURCE_NAMES = {"hico": "hico-det", "swig": "swig-hoi", "hoiqa": "hoi-qa"}


@dataclass
class ConvertConfig:
    """Everything that decides a conversion's output; recorded in the manifest."""

    source: str  # hico | swig | hoiqa
    annotations: str
    split: str
    images: str | None = None
    format: str | None = None  # hico: mat | ppdm | upt; hoiqa: train | test | visor
    box_origin: str | None = None
    image_check: bool = True
    embed_images: bool = False
    clip_boxes: bool = False
    image_size: tuple[int, int] | None = None  # fallback (width, height) when nothing else gives one
    shard_size: int = 20_000


def read_source(cfg: ConvertConfig) -> SourceBatch:
    origin = BoxOrigin(cfg.box_origin) if cfg.box_origin else None
    path = Path(cfg.annotations)
    if cfg.source == "hico":
        from hoidata.sources.hico import read_hico

        return read_hico(path, cfg.format, origin, cfg.split)
    if cfg.source == "swig":
        from hoidata.sources.swig import read_swig

        return read_swig(path, origin)
    if cfg.source == "hoiqa":
        from hoidata.sources.hoiqa import read_hoiqa

        return read_hoiqa(path, cfg.format, origin)
    raise HoidataError(f"unknown source {cfg.source!r}; expected hico, swig or hoiqa")


def taxonomy_of(source: str) -> Taxonomy | None:
    return {"hico-det": hico_det, "swig-hoi": swig_hoi}.get(source, lambda: None)()


def convert(
    cfg: ConvertConfig, out: Path | str, *, overwrite: bool = False, progress: bool = True
) -> Manifest:
    """Convert one annotation file into a dataset directory; resumes an interrupted run."""
    with paused_gc():  # parsing builds millions of small containers: the cyclic GC would walk them all
        return _convert(cfg, out, overwrite, progress)


def _convert(cfg: ConvertConfig, out: Path | str, overwrite: bool, progress: bool) -> Manifest:
    if cfg.image_check and not cfg.images:
        raise HoidataError("pass --images DIR (the image root), or --no-image-check to skip image checks")
    if cfg.embed_images and not cfg.images:
        raise HoidataError("--embed-images needs --images DIR")
    if cfg.images and not Path(cfg.images).is_dir():
        raise HoidataError("image root is not a directory", file=cfg.images)
    if cfg.shard_size < 1:
        raise HoidataError(f"--shard-size must be at least 1, got {cfg.shard_size}")
    timings: dict[str, float] = {}
    t = start = time.perf_counter()
    batch = read_source(cfg)
    timings["read_s"] = round(time.perf_counter() - t, 4)
    tax = taxonomy_of(batch.source)
    errors = list(batch.errors)
    _mark_duplicates(batch, errors)
    n = len(batch)
    num_shards = max(1, math.ceil(n / cfg.shard_size))
    config = asdict(cfg) | {"layout": batch.layout, "box_origin": str(batch.box_origin)}
    run = StageRun(
        out,
        stage="convert",
        config=config,
        input_fingerprint=fingerprint([cfg.annotations]),
        features=canonical.features(decode_images=cfg.embed_images),
        schema=canonical.SCHEMA,
        split=cfg.split,
        num_shards=num_shards,
        overwrite=overwrite,
    )
    timings["images_s"] = timings["build_s"] = timings["write_s"] = 0.0
    bar = _progress_bar(n, progress and cfg.image_check, "images")
    for s in range(num_shards):
        lo, hi = s * cfg.shard_size, min(n, (s + 1) * cfg.shard_size)
        if run.is_done(s):
            if bar is not None:
                bar.update(hi - lo)
            continue
        t = time.perf_counter()
        images = _probe_images(batch, cfg, errors, lo, hi, bar)
        timings["images_s"] += time.perf_counter() - t
        t = time.perf_counter()
        table, rejects = build_shard(batch, tax, cfg, errors, images, lo, hi)
        timings["build_s"] += time.perf_counter() - t
        t = time.perf_counter()
        run.write_shard(s, table, rejects)
        timings["write_s"] += time.perf_counter() - t
    if bar is not None:
        bar.close()
    timings = {k: round(v, 4) for k, v in timings.items()}
    return run.finish(n, timings, started=start, notes=batch.notes)


def _progress_bar(total: int, enabled: bool, desc: str) -> Any:
    if not enabled:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="img", disable=None, leave=False)


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
    batch: SourceBatch, cfg: ConvertConfig, errors: list[RecordError | None], lo: int, hi: int, bar: Any
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
    for i, info in zip(todo, probe_many(paths, cfg.embed_images, progress=bar), strict=True):
        out[i - lo] = info
        if info.error:
            errors[i] = RecordError(batch.field_name("file_name"), info.error)
        elif batch.widths[i] > 0 and (batch.widths[i], batch.heights[i]) != (info.width, info.height):
            errors[i] = RecordError(
                "size",
                f"annotation says {batch.widths[i]}x{batch.heights[i]}, the image is {info.width}x{info.height}",
            )
    return out


def relative_paths(names: list[str]) -> list[str | None]:
    """:func:`safe_relative_path` of each name; one scan of the joined text clears the usual case
    (plain relative names) without per-name work."""
    joined = "\n" + "\n".join(names)
    suspicious = ("\n/", "\n.", "/.", "//", "\\", "\x00", "\n\n")
    if not any(s in joined for s in suspicious) and not joined.endswith("\n") and not joined.endswith("/"):
        return list(names)
    return [safe_relative_path(n) for n in names]


def build_shard(
    batch: SourceBatch,
    tax: Taxonomy | None,
    cfg: ConvertConfig,
    errors: list[RecordError | None],
    images: list[ImageInfo | None],
    lo: int,
    hi: int,
) -> tuple[pa.Table, pa.Table]:
    """Check records lo..hi (vectorised) and build the canonical table and the rejects table."""
    widths = batch.widths[lo:hi].copy()
    heights = batch.heights[lo:hi].copy()
    for k, info in enumerate(images):
        if info is not None and info.error is None:
            widths[k], heights[k] = info.width, info.height
    if cfg.image_size:
        unknown = widths <= 0
        widths[unknown], heights[unknown] = cfg.image_size
    i0, i1 = batch.inst_offsets[lo], batch.inst_offsets[hi]
    p0, p1 = batch.pair_offsets[lo], batch.pair_offsets[hi]
    inst_rec = np.repeat(np.arange(hi - lo), np.diff(batch.inst_offsets[lo : hi + 1]))
    pair_rec = np.repeat(np.arange(hi - lo), np.diff(batch.pair_offsets[lo : hi + 1]))
    boxes = from_origin(batch.boxes[i0:i1], batch.box_origin)
    w_i, h_i = widths[inst_rec].astype(np.float64), heights[inst_rec].astype(np.float64)
    known = w_i > 0
    if cfg.clip_boxes:
        boxes[:, 0::2] = np.clip(boxes[:, 0::2], 0, np.where(known, w_i, np.inf)[:, None])
        boxes[:, 1::2] = np.clip(boxes[:, 1::2], 0, np.where(known, h_i, np.inf)[:, None])
    labels = batch.labels[i0:i1]
    checks: list[tuple[np.ndarray, str, Any]] = []  # (bad mask, field suffix, reason(k))
    src = batch.boxes[i0:i1]
    finite = np.isfinite(boxes).all(axis=1)
    checks.append((~finite, "bbox", lambda k: f"not finite: {src[k].tolist()}"))
    checks.append(
        (
            finite & ((boxes[:, 2] <= boxes[:, 0]) | (boxes[:, 3] <= boxes[:, 1])),
            "bbox",
            lambda k: f"inverted or empty box {src[k].tolist()} ({batch.box_origin})",
        ),
    )
    outside = finite & (
        (boxes[:, 0] < 0) | (boxes[:, 1] < 0) | (known & ((boxes[:, 2] > w_i) | (boxes[:, 3] > h_i)))
    )
    checks.append(
        (
            outside,
            "bbox",
            lambda k: (
                f"box {src[k].tolist()} ({batch.box_origin}) lies outside the "
                + (f"{int(w_i[k])}x{int(h_i[k])} image" if known[k] else "image (a negative coordinate)")
                + _origin_hint(batch.box_origin, src[k], w_i[k], h_i[k])
            ),
        )
    )
    if tax is not None and batch.label_names is None:
        n_obj = len(tax.objects)
        checks.append(
            (
                (labels < 0) | (labels >= n_obj),
                "label",
                lambda k: f"object id {int(labels[k])} is outside the {n_obj} {tax.name} objects",
            )
        )
    inst_bad = _first_faults(checks, inst_rec, hi - lo)

    n_inst = np.diff(batch.inst_offsets[lo : hi + 1])[pair_rec]
    subj, obj = batch.subjects[p0:p1], batch.objects[p0:p1]
    verbs, given_hois = batch.verbs[p0:p1], batch.hois[p0:p1]  # the reasons below read given_hois
    hois = given_hois
    vb, hb = batch.verb_base, batch.hoi_base  # ids in messages are the file's own
    pchecks: list[tuple[np.ndarray, str, Any]] = []
    bad_subj = (subj < 0) | (subj >= n_inst)
    pchecks.append(
        (bad_subj, "subject", lambda k: f"index {int(subj[k])} is out of range ({int(n_inst[k])} boxes)")
    )
    pchecks.append(
        (
            (obj < -1) | (obj >= n_inst),
            "object",
            lambda k: f"index {int(obj[k])} is out of range ({int(n_inst[k])} boxes)",
        )
    )
    if tax is not None and len(subj):
        first_inst = batch.inst_offsets[lo:hi][pair_rec] - i0
        safe_s = np.where(bad_subj, 0, subj) + first_inst
        safe_o = np.where((obj < 0) | (obj >= n_inst), 0, obj) + first_inst
        if len(labels):
            subj_label = labels[np.clip(safe_s, 0, len(labels) - 1)]
            obj_label = np.where(obj >= 0, labels[np.clip(safe_o, 0, len(labels) - 1)], -1)
        else:
            subj_label = obj_label = np.full(len(subj), -1)
        pchecks.append(
            (
                ~bad_subj & (subj_label != tax.human_object_id),
                "subject",
                lambda k: f"instance {int(subj[k])} is a {_name(tax.objects, subj_label[k])}, not a person",
            )
        )
        n_verbs = len(tax.verbs)
        bad_verb = (verbs < 0) | (verbs >= n_verbs)
        pchecks.append(
            (
                bad_verb,
                "verb",
                lambda k: (
                    f"verb id {int(verbs[k]) + vb} is outside "
                    f"{vb}..{n_verbs - 1 + vb} ({n_verbs} {tax.name} verbs)"
                ),
            )
        )
        derived = tax.hoi_ids(verbs, obj_label)
        given = given_hois >= 0
        pchecks.append(
            (
                ~bad_verb & (obj_label >= 0) & (derived < 0),
                "verb",
                lambda k: (
                    f"({tax.verbs[verbs[k]]}, {_name(tax.objects, obj_label[k])}) is not a {tax.name} HOI class"
                ),
            )
        )
        n_hois = tax.num_hois
        pchecks.append(
            (
                given_hois >= n_hois,
                "hoi",
                lambda k: (
                    f"HOI id {int(given_hois[k]) + hb} is outside "
                    f"{hb}..{n_hois - 1 + hb} ({n_hois} {tax.name} HOI classes)"
                ),
            )
        )
        pchecks.append(
            (
                given & (derived >= 0) & (given_hois != derived),
                "hoi",
                lambda k: (
                    f"HOI id {int(given_hois[k]) + hb} disagrees with (verb, object) → {int(derived[k]) + hb}"
                ),
            )
        )
        hois = np.where(derived >= 0, derived, given_hois)
    pair_bad = _first_faults(pchecks, pair_rec, hi - lo)

    qa_column = None
    if batch.qa is not None:
        qa_column, qa_errors = _qa_column(batch, lo, hi, widths, heights, errors)
    for r in range(hi - lo):
        i = lo + r
        if errors[i] is not None:
            continue
        if r in inst_bad:
            k, suffix, reason = inst_bad[r]
            local = k - (batch.inst_offsets[i] - i0)
            errors[i] = RecordError(
                _item_field(batch, "instance", int(i0 + k), int(local), suffix), reason(k)
            )
        elif r in pair_bad:
            k, suffix, reason = pair_bad[r]
            local = k - (batch.pair_offsets[i] - p0)
            errors[i] = RecordError(_item_field(batch, "pair", int(p0 + k), int(local), suffix), reason(k))
        elif batch.qa is not None and qa_errors[r] is not None:
            errors[i] = qa_errors[r]
    keep = np.array([errors[lo + r] is None for r in range(hi - lo)], dtype=bool)
    table = _assemble(batch, tax, cfg, lo, hi, keep, boxes, labels, hois, widths, heights, images, qa_column)
    rejects = _rejects(batch, cfg.split, errors, lo, hi, keep)
    return table, rejects


def _item_field(batch: SourceBatch, kind: str, item: int, local: int, name: str) -> str:
    """Where a faulty instance or pair field is, in the file's words (e.g. hoi_annotation[1].category_id)."""
    if batch.item_field is not None:
        return batch.item_field(kind, item, name)
    where = batch.instance_field if kind == "instance" else batch.pair_field
    return f"{where}[{local}].{batch.field_name(name)}"


def _name(names: tuple[str, ...], k: Any) -> str:
    k = int(k)
    return names[k] if 0 <= k < len(names) else f"unknown object {k}"


def _origin_hint(origin: BoxOrigin, box: np.ndarray, w: float, h: float) -> str:
    if origin is BoxOrigin.ONE_BASED and (box[:2] == 0).any():
        return "; a 0 coordinate in a one-based file: is --box-origin right?"
    if origin is BoxOrigin.ZERO_BASED and (box[2] == w or box[3] == h):
        return "; a coordinate equal to the image size in a zero-based file: is --box-origin right?"
    return ""


def _first_faults(checks: list[tuple[np.ndarray, str, Any]], rec: np.ndarray, n: int) -> dict[int, tuple]:
    """For each record with a fault: the first faulty item, its field and its reason."""
    out: dict[int, tuple] = {}
    for mask, suffix, reason in checks:
        for k in np.flatnonzero(mask):
            r = int(rec[k])
            if r not in out or k < out[r][0]:
                out[r] = (int(k), suffix, reason)
    return out


def _take_ranges(offsets: np.ndarray, records: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the items of ``records`` (ranges of ``offsets``), and the new offsets."""
    starts, counts = offsets[records], offsets[records + 1] - offsets[records]
    new_offsets = np.zeros(len(records) + 1, dtype=np.int64)
    np.cumsum(counts, out=new_offsets[1:])
    idx = np.repeat(starts - new_offsets[:-1], counts) + np.arange(new_offsets[-1])
    return idx, new_offsets


def _assemble(
    batch: SourceBatch,
    tax: Taxonomy | None,
    cfg: ConvertConfig,
    lo: int,
    hi: int,
    keep: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    hois: np.ndarray,
    widths: np.ndarray,
    heights: np.ndarray,
    images: list[ImageInfo | None],
    qa_column: pa.Array | None,
) -> pa.Table:
    kept = np.flatnonzero(keep)
    n = len(kept)
    rec = kept + lo
    i0, p0 = batch.inst_offsets[lo], batch.pair_offsets[lo]
    inst_idx, inst_off = _take_ranges(batch.inst_offsets - i0, rec)
    pair_idx, pair_off = _take_ranges(batch.pair_offsets - p0, rec)
    lab = labels[inst_idx]
    if batch.label_names is not None:
        label_str = pa.array([batch.label_names[i0 + k] for k in inst_idx], pa.string())
        is_human = pa.array(np.array([_is_human_name(s) for s in label_str.to_pylist()], dtype=bool))
    else:
        assert tax is not None
        label_str = pa.array(tax.objects, pa.string()).take(pa.array(lab))
        is_human = pa.array(lab == tax.human_object_id)
    bbox = pa.FixedSizeListArray.from_arrays(pa.array(boxes[inst_idx].astype(np.float32).ravel()), 4)
    instances = pa.StructArray.from_arrays(
        [bbox, label_str, pa.array(lab.astype(np.int32)), is_human], fields=list(canonical.INSTANCE)
    )
    verbs = batch.verbs[p0 + pair_idx] if len(pair_idx) else np.zeros(0, np.int64)
    verb_str = (
        pa.array(tax.verbs, pa.string()).take(pa.array(verbs))
        if tax is not None
        else pa.array([""] * len(verbs), pa.string())
    )
    interactions = pa.StructArray.from_arrays(
        [
            pa.array(batch.subjects[p0 + pair_idx].astype(np.int32)),
            pa.array(batch.objects[p0 + pair_idx].astype(np.int32)),
            verb_str,
            pa.array(verbs.astype(np.int32)),
            pa.array(hois[pair_idx].astype(np.int32)),
        ],
        fields=list(canonical.INTERACTION),
    )
    paths = relative_paths([batch.file_names[i] for i in rec])
    data = [images[i - lo].data if images[i - lo] is not None else None for i in rec]
    image = pa.StructArray.from_arrays(
        [pa.array(data, pa.binary()), pa.array(paths, pa.string())], fields=list(canonical.IMAGE)
    )
    prefix = f"{batch.source}/{cfg.split}/"
    w, h = widths[kept], heights[kept]
    columns = {
        "sample_id": pa.array([prefix + batch.keys[i] for i in rec], pa.string()),
        "source": pa.array([batch.source] * n, pa.string()),
        "split": pa.array([cfg.split] * n, pa.string()),
        "image": image,
        "width": pa.array(w.astype(np.int32), mask=w <= 0),
        "height": pa.array(h.astype(np.int32), mask=h <= 0),
        "instances": pa.ListArray.from_arrays(pa.array(inst_off.astype(np.int32)), instances),
        "interactions": pa.ListArray.from_arrays(pa.array(pair_off.astype(np.int32)), interactions),
        "qa": qa_column.filter(pa.array(keep))
        if qa_column is not None
        else pa.nulls(n, pa.list_(canonical.QA_ITEM)),
    }
    return pa.Table.from_pydict(columns, schema=canonical.SCHEMA)


def _is_human_name(label: str) -> bool:
    words = label.lower().split()
    return any(w in ("person", "hand", "hands", "man", "woman", "human") for w in words)


def _qa_column(
    batch: SourceBatch,
    lo: int,
    hi: int,
    widths: np.ndarray,
    heights: np.ndarray,
    errors: list[RecordError | None],
) -> tuple[pa.Array, list[RecordError | None]]:
    """QA items of records lo..hi with their boxes converted to canonical pixels."""
    assert batch.qa is not None
    rows: list[list[dict[str, Any]] | None] = []
    qa_errors: list[RecordError | None] = [None] * (hi - lo)
    for r in range(hi - lo):
        items = batch.qa[lo + r]
        if errors[lo + r] is not None:
            rows.append(None)
            continue
        w, h = int(widths[r]), int(heights[r])
        out = []
        for j, item in enumerate(items):
            converted = []
            for name, bxs in (("question_boxes", item.question_boxes), ("answer_boxes", item.answer_boxes)):
                if not bxs:
                    converted.append([])
                    continue
                if item.frame == "grid100":
                    if w <= 0:
                        qa_errors[r] = RecordError(
                            f"qa[{j}].{name}", "image size unknown: pass --images or --image-size"
                        )
                        break
                    arr = from_normalized(bxs, w, h, 100)
                else:
                    arr = from_origin(bxs, batch.box_origin)
                bad = (arr[:, 2] <= arr[:, 0]) | (arr[:, 3] <= arr[:, 1]) | ~np.isfinite(arr).all(axis=1)
                if bad.any():
                    qa_errors[r] = RecordError(
                        f"qa[{j}].{name}", f"inverted or empty box {bxs[int(np.argmax(bad))]}"
                    )
                    break
                converted.append(arr.astype(np.float32).tolist())
            if qa_errors[r] is not None:
                break
            out.append(
                {
                    "task": item.task,
                    "question": item.question,
                    "answer": item.answer,
                    "question_boxes": converted[0],
                    "answer_boxes": converted[1],
                }
            )
        rows.append(None if qa_errors[r] is not None else out)
    return pa.array(rows, pa.list_(canonical.QA_ITEM)), qa_errors


def _rejects(
    batch: SourceBatch, split: str, errors: list[RecordError | None], lo: int, hi: int, keep: np.ndarray
) -> pa.Table:
    bad = [lo + int(r) for r in np.flatnonzero(~keep)]
    prefix = f"{batch.source}/{split}/"
    return pa.Table.from_pydict(
        {
            "source_file": [batch.source_file] * len(bad),
            "record_index": bad,
            "sample_id": [prefix + batch.keys[i] if not batch.keys[i].startswith("#") else None for i in bad],
            "field": [errors[i].field for i in bad],  # type: ignore[union-attr]
            "reason": [errors[i].reason for i in bad],  # type: ignore[union-attr]
            "raw": [batch.raw(i) for i in bad],
        },
        schema=canonical.REJECTS_SCHEMA,
    )
