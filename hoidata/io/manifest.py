"""The manifest: what a dataset directory holds and how it was made. Written last, so its presence
means the directory is complete; later stages read their input's profile, images and split from it."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from hoidata.errors import HoidataError
from hoidata.io.files import fingerprint, write_json_atomic

MANIFEST = "manifest.json"
REJECTS = "rejects.parquet"
DATA = "data"


class ProfileSpec(NamedTuple):
    """The model profile a dataset was built for, as ``get_profile(*spec)`` takes it."""

    name: str
    min_pixels: int | None
    max_pixels: int | None


@dataclass
class Manifest:
    stage: str
    version: str
    config: dict[str, Any]
    input_fingerprint: str
    counts: dict[str, int]
    timings: dict[str, float]
    shards: list[dict[str, Any]]
    features: dict[str, Any]
    created: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # not stored: True when a run found this directory already complete and wrote nothing
    already_complete: bool = field(default=False, compare=False, metadata={"stored": False})
    # not stored: what a rerun that made failed rows again did (tried, made, failed)
    retried: dict[str, int] | None = field(default=None, compare=False, metadata={"stored": False})

    def shard_files(self, directory: Path | str) -> list[Path]:
        """The directory's Parquet shards, in order."""
        return [Path(directory) / s["path"] for s in self.shards]

    @property
    def split(self) -> str:
        split = self.config.get("split")
        if split:
            return str(split)
        return Path(self.shards[0]["path"]).name.rsplit("-", 3)[0] if self.shards else "train"

    @property
    def image_root(self) -> str | None:
        """The root the dataset's relative image paths refer to, absolute (stages pass it on)."""
        root = self.config.get("images")
        return str(Path(root).resolve()) if root else None

    @property
    def embedded_images(self) -> bool:
        return bool(self.config.get("embed_images"))

    @property
    def profile_spec(self) -> ProfileSpec | None:
        """The model profile the dataset was built for (boxes and later stages), else None."""
        spec = self.config.get("profile_spec")
        if not spec:
            return None
        return ProfileSpec(spec["name"], spec.get("min_pixels"), spec.get("max_pixels"))

    def write(self, directory: Path) -> None:
        stored = {
            f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.metadata.get("stored", True)
        }
        write_json_atomic(directory / MANIFEST, stored)


def read_manifest(path: Path | str) -> Manifest:
    path = Path(path)
    file = path / MANIFEST
    if not file.is_file():
        raise HoidataError("not a complete hoidata dataset directory (no manifest.json)", file=str(path))
    try:
        data = orjson.loads(file.read_bytes())
        return Manifest(**{k: v for k, v in data.items() if k != "already_complete"})
    except (orjson.JSONDecodeError, TypeError) as e:
        raise HoidataError(f"unreadable manifest: {e}", file=str(file)) from e


def dataset_fingerprint(path: Path | str) -> str:
    """A complete dataset directory's identity for a later stage: its manifest names every shard
    with its row count, and the config and input fingerprint that made it."""
    return fingerprint([Path(path) / MANIFEST])


def require_stage(manifest: Manifest, path: Path | str, *stages: str, hint: str = "") -> None:
    """One line when a stage is given a dataset made by a stage it cannot read."""
    if manifest.stage not in stages:
        made_by = " or ".join(f"`hoidata {s}`" for s in stages)
        raise HoidataError(
            f"expected a dataset made by {made_by}, got a {manifest.stage!r} dataset{hint}", file=str(path)
        )
