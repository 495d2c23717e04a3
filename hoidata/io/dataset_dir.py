"""A stage writes one dataset directory:

    out/
      data/{split}-00000-of-00003.parquet   shards, each written atomically
      rejects.parquet                        every input record not kept, with its reason
      manifest.json                          written last: its presence means "complete"
      .work/                                 while running: state and per-shard rejects

A rerun with the same stage, config and input fingerprint resumes: finished shards are kept, the
others are redone, so nothing is lost or duplicated. Shards are a pure function of the input
records they cover, so a resumed run equals an uninterrupted one.
"""

from __future__ import annotations

import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from hoidata import __version__
from hoidata.errors import HoidataError
from hoidata.io.files import write_json_atomic, write_parquet_atomic
from hoidata.schemas.canonical import REJECTS_SCHEMA, rejects_features, with_features

MANIFEST = "manifest.json"
REJECTS = "rejects.parquet"
WORK = ".work"
FINISH_LOCK = "finish.lock"


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


def read_manifest(path: Path | str) -> Manifest:
    path = Path(path)
    file = path / MANIFEST
    if not file.is_file():
        raise HoidataError("not a complete hoidata dataset directory (no manifest.json)", file=str(path))
    try:
        return Manifest(**orjson.loads(file.read_bytes()))
    except (orjson.JSONDecodeError, TypeError) as e:
        raise HoidataError(f"unreadable manifest: {e}", file=str(file)) from e


class StageRun:
    """Writes the shards of one stage into ``out_dir``, resuming an interrupted run of the same job."""

    def __init__(
        self,
        out_dir: Path | str,
        *,
        stage: str,
        config: dict[str, Any],
        input_fingerprint: str,
        features: dict[str, Any],
        schema: pa.Schema,
        split: str,
        num_shards: int,
        overwrite: bool = False,
        shared: bool = False,
    ) -> None:
        """``shared``: several processes (``--shard i/N``) write disjoint shards of this one
        directory at once, so none may delete another's half-written files; whichever finds every
        shard done claims the finish (:meth:`claim_finish`)."""
        self.out = Path(out_dir)
        self.stage, self.config, self.fingerprint = stage, config, input_fingerprint
        self.features, self.split, self.num_shards = features, split, num_shards
        self.schema = with_features(schema, features)
        self.started = time.perf_counter()
        self.work = self.out / WORK
        state = {
            "stage": stage,
            "config": orjson.loads(orjson.dumps(config)),  # as the manifest reads back: tuples are lists
            "input_fingerprint": input_fingerprint,
            "num_shards": num_shards,
        }
        self.resumed = False
        if (self.out / MANIFEST).exists() or (self.out.exists() and not self._is_empty()):
            previous = self._previous_state()
            if overwrite and previous is None and not self._only_ours():
                raise HoidataError(
                    "output directory is not empty and is not a hoidata dataset directory: refusing to "
                    "replace it, even with --overwrite (choose another --out)",
                    file=str(self.out),
                )
            if overwrite:
                shutil.rmtree(self.out)
            elif previous == state and not (self.out / MANIFEST).exists():
                self.resumed = True
            elif previous == state:
                raise HoidataError(
                    "already complete with the same input and config (pass --overwrite to redo)",
                    file=str(self.out),
                )
            else:
                raise HoidataError(
                    "output directory is not empty and holds another job (pass --overwrite to replace it)",
                    file=str(self.out),
                )
        (self.out / "data").mkdir(parents=True, exist_ok=True)
        self.work.mkdir(exist_ok=True)
        if not shared:  # half-written files of an interrupted run, and a finish it never made
            for d in (self.out / "data", self.work):
                for tmp in d.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)
            (self.work / FINISH_LOCK).unlink(missing_ok=True)
        write_json_atomic(self.work / "state.json", state)

    def _is_empty(self) -> bool:
        """Empty, or only the empty skeleton that a run killed before its first write leaves behind."""
        entries = list(self.out.iterdir())
        if not {e.name for e in entries} <= {"data", WORK} or not all(e.is_dir() for e in entries):
            return False
        return all(f.name.startswith(".") and f.name.endswith(".tmp") for e in entries for f in e.iterdir())

    def _only_ours(self) -> bool:
        """Holds nothing but what a stage writes (so --overwrite may delete it)."""
        return {e.name for e in self.out.iterdir()} <= {"data", WORK, MANIFEST, REJECTS}

    def _previous_state(self) -> dict[str, Any] | None:
        for f in (self.work / "state.json", self.out / MANIFEST):
            if f.is_file():
                try:
                    m = orjson.loads(f.read_bytes())
                except orjson.JSONDecodeError:
                    return None
                return {k: m.get(k) for k in ("stage", "config", "input_fingerprint")} | {
                    "num_shards": m.get("num_shards", len(m.get("shards", [])))
                }
        return None

    def shard_path(self, i: int) -> Path:
        return self.out / "data" / f"{self.split}-{i:05d}-of-{self.num_shards:05d}.parquet"

    def _rejects_path(self, i: int) -> Path:
        return self.work / f"rejects-{i:05d}.parquet"

    def is_done(self, i: int) -> bool:
        return self.shard_path(i).is_file() and self._rejects_path(i).is_file()

    def all_done(self) -> bool:
        return all(self.is_done(i) for i in range(self.num_shards))

    def claim_finish(self) -> bool:
        """True for exactly one of several processes sharing this directory (the one to finish)."""
        try:
            os.close(os.open(self.work / FINISH_LOCK, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
        except FileExistsError:
            return False
        return True

    def write_shard(self, i: int, table: pa.Table, rejects: pa.Table) -> None:
        """Rejects first, then the shard: the shard's rename is the commit point."""
        write_parquet_atomic(self._rejects_path(i), rejects.cast(REJECTS_SCHEMA))
        write_parquet_atomic(self.shard_path(i), table.cast(self.schema))

    def finish(
        self,
        records_in: int,
        timings: dict[str, float] | None = None,
        started: float | None = None,
        records_out: int | None = None,
        **extra: Any,
    ) -> Manifest:
        """Merge rejects, check records in = out + rejected, write the manifest (the completion mark).

        ``records_out`` is for stages whose rows are not their input records (one image → several
        SFT samples): the accounting then counts input records kept, and ``rows`` the rows written.
        """
        shards, out_count = [], 0
        for i in range(self.num_shards):
            rows = pq.read_metadata(self.shard_path(i)).num_rows
            shards.append({"path": str(self.shard_path(i).relative_to(self.out)), "rows": rows})
            out_count += rows
        parts = [pq.read_table(self._rejects_path(i)) for i in range(self.num_shards)]
        rejects = pa.concat_tables(parts) if parts else REJECTS_SCHEMA.empty_table()
        write_parquet_atomic(
            self.out / REJECTS, rejects.cast(with_features(REJECTS_SCHEMA, rejects_features()))
        )
        kept = out_count if records_out is None else records_out
        if kept + rejects.num_rows != records_in:
            raise RuntimeError(
                f"record accounting broke: {records_in} in, {kept} out, {rejects.num_rows} rejected"
            )
        counts = {"in": records_in, "out": kept, "rejected": rejects.num_rows}
        if records_out is not None:
            counts["rows"] = out_count
        manifest = Manifest(
            stage=self.stage,
            version=__version__,
            config=self.config,
            input_fingerprint=self.fingerprint,
            counts=counts,
            timings={**(timings or {}), "total_s": round(time.perf_counter() - (started or self.started), 4)},
            shards=shards,
            features=self.features,
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            extra={"resumed": self.resumed, **extra},
        )
        write_json_atomic(self.out / MANIFEST, asdict(manifest))
        shutil.rmtree(self.work, ignore_errors=True)
        return manifest


def read_table(path: Path | str, columns: list[str] | None = None) -> pa.Table:
    """All shards of a complete dataset directory as one Arrow table (no `datasets` import)."""
    manifest = read_manifest(path)
    files = [Path(path) / s["path"] for s in manifest.shards]
    return pa.concat_tables([pq.read_table(f, columns=columns) for f in files])


def open_dataset(path: Path | str, image_root: Path | str | None = None) -> Any:
    """The dataset as a `datasets.Dataset`, with relative image paths resolved against the image
    root recorded in the manifest (or ``image_root``), so that images decode from anywhere."""
    import datasets
    import pyarrow.compute as pc

    manifest = read_manifest(path)
    table = read_table(path)
    root = image_root or manifest.config.get("images")
    feats = dict(manifest.features)

    def resolve(image: pa.StructArray) -> pa.StructArray:
        paths = image.field("path")
        prefix = str(Path(root).resolve()) + "/"
        has_bytes = pc.is_valid(image.field("bytes"))
        joined = pc.binary_join_element_wise(prefix, paths, "")
        resolved = pc.if_else(pc.or_kleene(pc.is_null(paths), has_bytes), paths, joined)
        return pa.StructArray.from_arrays([image.field("bytes"), resolved], names=["bytes", "path"])

    if root and "image" in table.column_names:
        image = resolve(table.column("image").combine_chunks())
        table = table.set_column(table.column_names.index("image"), "image", image)
        feats["image"] = {"_type": "Image"}
    if root and "images" in table.column_names:
        lists = table.column("images").combine_chunks()
        off = lists.offsets
        values = resolve(lists.values.slice(off[0].as_py(), off[-1].as_py() - off[0].as_py()))
        offsets = pc.subtract(off, off[0])
        images = pa.ListArray.from_arrays(offsets, values, mask=lists.is_null())
        table = table.set_column(table.column_names.index("images"), "images", images)
        feats["images"] = {"feature": {"_type": "Image"}, "_type": "List"}
    return datasets.Dataset(
        table.cast(with_features(table.schema, feats)),
        info=datasets.DatasetInfo(features=datasets.Features.from_dict(feats)),
    )
