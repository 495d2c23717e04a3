"""What a dataset's cards need beyond its own rows: the model profile it was built for, the image
root, whether ``filter sft`` kept each rollout, the ground truth a predictions dataset was asked
about, and an image's size read from its header."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc
import pyarrow.parquet as pq
from PIL import Image

from hoidata.errors import HoidataError
from hoidata.io import Manifest, read_manifest, read_table
from hoidata.io.manifest import MANIFEST, REJECTS
from hoidata.profiles import Profile, get_profile
from hoidata.show.rows import Rows

LINEAGE = 8  # input directories followed back at most, looking for a profile


def dataset_profile(manifest: Manifest) -> Profile:
    """The profile (with its pixel budget) a dataset was built for, found in its own manifest or in
    its inputs' (``filter sft|prefs`` record none of their own)."""
    m: Manifest | None = manifest
    for _ in range(LINEAGE):
        if m is None:
            break
        spec = m.profile_spec
        if spec is not None:
            return get_profile(*spec)
        source = m.config.get("input")
        m = read_manifest(source) if source and (Path(source) / MANIFEST).is_file() else None
    name = manifest.config.get("profile")
    if name:
        return get_profile(name)
    raise HoidataError("no model profile recorded in this dataset or its inputs: its boxes cannot be decoded")


def filter_verdicts(rollouts: Path) -> dict[str, tuple[bool, str]] | None:
    """sample_id → (kept, reason) from a ``filter sft`` run on these rollouts in a sibling folder,
    None when there is none."""
    target = rollouts.resolve()
    for sibling in sorted(target.parent.iterdir()):
        if not (sibling / MANIFEST).is_file() or sibling == target:
            continue
        manifest = read_manifest(sibling)
        source = manifest.config.get("input")
        if manifest.stage != "filter-sft" or not source or Path(source).resolve() != target:
            continue
        verdicts = {s: (True, "") for s in read_table(sibling, ["sample_id"]).column("sample_id").to_pylist()}
        if (sibling / REJECTS).is_file():
            rejects = pq.read_table(sibling / REJECTS, columns=["sample_id", "reason"])
            for s, reason in zip(
                rejects.column("sample_id").to_pylist(), rejects.column("reason").to_pylist(), strict=True
            ):
                verdicts[s] = (False, reason or "")
        return verdicts
    return None


class GroundTruth:
    """The dataset a ``predict`` run read, looked up by sample_id a page at a time."""

    def __init__(self, manifest: Manifest) -> None:
        source = manifest.config.get("input")
        if not source or not (Path(source) / MANIFEST).is_file():
            raise HoidataError(
                f"the predicted dataset ({source}) is not here: nothing to draw the predictions on"
            )
        self.manifest = read_manifest(source)
        self.rows = Rows(self.manifest.shard_files(source))
        ids = pc.fill_null(read_table(source, ["sample_id"]).column("sample_id").combine_chunks(), "")
        self.index = {s: k for k, s in enumerate(ids.to_pylist())}

    @property
    def image_root(self) -> str | None:
        return self.manifest.image_root

    def row_of(self, sample_id: str) -> int | None:
        """The ground-truth row of a prediction: its sample_id, or the image's part of it (the id
        before ``#`` or ``:``, as per-question and per-task ids extend an image's)."""
        found = self.index.get(sample_id)
        return found if found is not None else self.index.get(re.split(r"[#:]", sample_id, maxsplit=1)[0])

    def lookup(self, sample_ids: list[str], columns: list[str]) -> dict[str, dict[str, Any]]:
        """Each prediction's ground-truth row, by the prediction's sample_id."""
        rows_of = {s: self.row_of(s) for s in sample_ids}
        found = sorted({k for k in rows_of.values() if k is not None})
        if not found:
            return {}
        rows = next(self.rows.pages(np.array(found, np.int64), len(found), columns))
        by_row = dict(zip(found, rows, strict=True))
        return {s: by_row[k] for s, k in rows_of.items() if k is not None}


def image_size(image: dict[str, Any] | None, root: str | None) -> tuple[int, int] | None:
    """``(width, height)`` from an image's header (bytes or a file under ``root``), None if unreadable."""
    if not image:
        return None
    try:
        if image.get("bytes"):
            with Image.open(io.BytesIO(image["bytes"])) as im:
                return im.size
        path = Path(image.get("path") or "")
        with Image.open(path if path.is_absolute() or not root else Path(root) / path) as im:
            return im.size
    except (OSError, ValueError):
        return None
