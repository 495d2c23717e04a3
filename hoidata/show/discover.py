"""What a directory holds, recognised from its manifests: datasets by the stage that wrote them,
evaluation reports by their JSON fields, and extra pictures (a manifest's ``extra.images``, or a
``maps/`` folder) wherever they lie."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from hoidata.errors import HoidataError
from hoidata.io import Manifest, read_manifest
from hoidata.io.manifest import MANIFEST

STAGE_KINDS = {
    "convert": "canonical",
    "boxes": "canonical",
    "build-sft": "sft",
    "filter-sft": "sft",
    "gen-cot": "rollouts",
    "filter-prefs": "pairs",
    "predict": "predictions",
}
SKIP = {"data", "site", "thumbs", "originals", "assets", "__pycache__", "raw", ".git"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".gif"}
MAPS = "maps"  # a folder of pictures any directory may hold (attention maps, plots)
MAX_REPORT_BYTES = 64 << 20
DEPTH = 3


@dataclass
class Entry:
    """One thing the site shows: a dataset directory, an evaluation report, or pictures."""

    kind: str  # canonical | sft | rollouts | pairs | predictions | report | images | other
    path: Path
    name: str  # relative to what was shown; also the site folder's name (slug)
    manifest: Manifest | None = None
    report: dict[str, Any] | None = None
    images: list[tuple[Path, str]] = field(default_factory=list)  # (file, caption)

    @property
    def slug(self) -> str:
        return re.sub(r"[^A-Za-z0-9._-]+", "--", self.name).strip("-.") or "dataset"


def discover(root: Path) -> list[Entry]:
    """Every entry in ``root`` (a dataset directory, a folder of them, or a report JSON file)."""
    root = Path(root)
    if root.is_file():
        report = read_report(root)
        if report is None:
            raise HoidataError(
                "not an evaluation report (expected JSON written by `hoidata eval --json`)", file=str(root)
            )
        return [Entry("report", root, root.stem, report=report)]
    if not root.is_dir():
        raise HoidataError("no such directory", file=str(root))
    entries: list[Entry] = []
    _walk(root, root, 0, entries)
    if not entries:
        raise HoidataError(
            "nothing to show: no manifest.json, evaluation report or maps/ folder here", file=str(root)
        )
    return entries


def read_report(path: Path) -> dict[str, Any] | None:
    """An evaluation report's JSON, or None when the file is not one."""
    try:
        if path.stat().st_size > MAX_REPORT_BYTES:
            return None
        data = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    if not isinstance(data, dict):
        return None
    if ("map" in data and "classes" in data) or data.get("metric") in ("grounding_ar", "referring", "hoi-qa"):
        return data
    return None


def report_kind(report: dict[str, Any]) -> str:
    """hico | swig | grounding | referring | hoiqa."""
    metric = report.get("metric")
    if metric == "swig-hoi":
        return "swig"
    if "map" in report:
        return "hico"
    return {"grounding_ar": "grounding", "referring": "referring", "hoi-qa": "hoiqa"}[metric]


def kind_from_columns(columns: set[str]) -> str:
    """The kind of a dataset written by a stage this module does not know, from its columns."""
    if {"prompt", "chosen", "rejected"} <= columns:
        return "pairs"
    if {"images", "messages"} <= columns:
        return "rollouts" if {"rewards", "status"} <= columns else "sft"
    if {"predictions", "completion"} <= columns:
        return "predictions"
    if {"image", "instances", "interactions"} <= columns:
        return "canonical"
    return "other"


def _walk(root: Path, directory: Path, depth: int, entries: list[Entry]) -> None:
    name = directory.relative_to(root).as_posix() if directory != root else root.resolve().name
    if (directory / MANIFEST).is_file():
        manifest = read_manifest(directory)
        kind = STAGE_KINDS.get(manifest.stage) or kind_from_columns(set(manifest.features))
        entries.append(Entry(kind, directory, name, manifest, images=extra_images(directory, manifest)))
        return
    pictures = extra_images(directory, None)
    if pictures:
        entries.append(Entry("images", directory, name, images=pictures))
    try:
        children = sorted(os.scandir(directory), key=lambda e: e.name)
    except OSError:
        return
    for child in children:
        path = Path(child.path)
        if child.is_file() and path.suffix == ".json":
            report = read_report(path)
            if report is not None:
                entries.append(
                    Entry("report", path, path.relative_to(root).with_suffix("").as_posix(), report=report)
                )
        elif child.is_dir() and depth < DEPTH and child.name not in SKIP | {MAPS} and child.name[0] != ".":
            _walk(root, path, depth + 1, entries)


def extra_images(directory: Path, manifest: Manifest | None) -> list[tuple[Path, str]]:
    """Pictures a manifest lists (``extra.images``: paths, or ``{path, title}``) and those in
    ``maps/``, as (file, caption); a Parquet table beside ``maps/`` with a ``file`` column (as
    ``hoidata attention`` writes) gives their captions: sample_id and question."""
    found: list[tuple[Path, str]] = []
    listed = (manifest.extra.get("images") if manifest else None) or []
    for item in listed if isinstance(listed, list) else []:
        rel, title = (
            (item, item)
            if isinstance(item, str)
            else (item.get("path"), item.get("title") or item.get("path"))
        )
        if rel and (directory / rel).is_file():
            found.append((directory / rel, str(title)))
    maps = directory / MAPS
    if maps.is_dir():
        seen = {p.resolve() for p, _ in found}
        captions = _captions(directory)
        for path in sorted(maps.rglob("*")):
            if path.suffix.lower() in IMAGE_SUFFIXES and path.resolve() not in seen:
                name = path.relative_to(maps).as_posix()
                found.append((path, captions.get(name) or captions.get(path.name) or name))
    return found


def _captions(directory: Path) -> dict[str, str]:
    """``file`` → "sample_id: question" from the tables lying beside ``maps/``."""
    captions: dict[str, str] = {}
    for table_file in sorted(directory.glob("*.parquet")):
        try:
            names = pq.read_schema(table_file).names
            if "file" not in names:
                continue
            wanted = [c for c in ("file", "sample_id", "question") if c in names]
            rows = pq.read_table(table_file, columns=wanted).to_pylist()
        except (OSError, pa.ArrowException):
            continue
        for r in rows:
            text = ": ".join(str(r[c]) for c in ("sample_id", "question") if r.get(c))
            file = str(r["file"] or "")
            for key in (file, file.removeprefix(f"{MAPS}/"), Path(file).name):
                captions.setdefault(key, text or file)
    return captions
