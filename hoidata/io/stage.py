"""The stage loop, in one place. A stage writes one dataset directory:

    out/
      data/{split}-00000-of-00003.parquet   shards, each written atomically
      rejects.parquet                        every input record not kept, with its reason
      manifest.json                          written last: its presence means "complete"
      .work/                                 while running: state and per-shard rejects

A stage supplies what it writes (:class:`Output`), how many input records each output shard
covers, and a function from a shard's number to its rows and rejects; :func:`run_stage` does the
rest: this process's shards (``--shard i/N``), skipping finished ones, atomic writes, progress,
record accounting (in = out + rejected) and the manifest.

Rerunning the same stage with the same config and input resumes an interrupted run (finished shards
are kept; shards are a pure function of their input, so a resumed run equals an uninterrupted one)
and leaves a complete one untouched, except for rows an engine failed on, which it makes again
(:mod:`hoidata.io.retry`). A different job in the same directory is refused unless ``overwrite``.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hoidata import __version__
from hoidata.errors import HoidataError
from hoidata.io.files import parquet_rows, read_parquet, write_json_atomic, write_parquet_atomic
from hoidata.io.manifest import DATA, MANIFEST, REJECTS, Manifest, read_manifest
from hoidata.io.progress import Progress
from hoidata.io.retry import ROW_ID, Retry, retry_failed
from hoidata.schemas.canonical import REJECTS_SCHEMA, rejects_features, with_features

WORK = ".work"
FINISH_LOCK = "finish.lock"


@dataclass(frozen=True)
class ShardSpec:
    """``i/N``: this process runs output shards i, i+N, i+2N, ... of a job that others share."""

    index: int = 0
    count: int = 1

    @classmethod
    def parse(cls, text: str) -> ShardSpec:
        try:
            index, count = (int(x) for x in text.split("/"))
        except ValueError:
            raise HoidataError(f"--shard must look like i/N (e.g. 0/4), got {text!r}") from None
        if not 0 <= index < count:
            raise HoidataError(f"--shard {text}: need 0 <= i < N")
        return cls(index, count)

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def owns(self, shard: int) -> bool:
        return shard % self.count == self.index

    def part(self, j: int, parts: int) -> ShardSpec:
        """Part ``j`` of ``parts`` of this process's shards (a data-parallel child): every
        ``parts``-th of them, so that the parts of ``i/N`` split exactly what ``i/N`` owns, whatever
        other machines run with the other ``/N`` parts (with or without ``--dp``)."""
        return ShardSpec(self.index + self.count * j, self.count * parts)


ALL_SHARDS = ShardSpec()  # one process runs them all


@dataclass(frozen=True)
class Output:
    """What a stage writes: its name and config (the job's identity, with the input fingerprint)
    and the schema of its rows."""

    stage: str
    config: dict[str, Any]
    input_fingerprint: str
    features: dict[str, Any]
    schema: pa.Schema
    split: str
    row_group_size: int | None = None  # small groups let readers fetch a few rows (imagine caches)


# a shard's rows and rejects, and optionally counters (see run_stage)
ShardResult = tuple[pa.Table, pa.Table] | tuple[pa.Table, pa.Table, dict[str, float]]
ShardWork = Callable[[int], ShardResult]


def run_stage_on_shards(
    input_dir: Path | str,
    out: Path | str,
    output: Output,
    transform: Callable[[pa.Table, str], ShardResult],
    *,
    columns: list[str] | None = None,
    retry: Retry | None = None,
    **options: Any,
) -> Manifest | None:
    """The common case of :func:`run_stage`: output shard ``k`` is ``transform(table, path)`` of
    the input dataset's shard ``k`` (``columns`` of it); ``options`` as :func:`run_stage` takes them.
    ``retry`` (without ``redo``): failed rows are made again from their input records' rows
    (named by ``sample_id``) of the same shard."""
    files = read_manifest(input_dir).shard_files(input_dir)

    def work(k: int) -> ShardResult:
        return transform(read_parquet(files[k], columns=columns), str(files[k]))

    def redo(k: int, ids: set[str]) -> ShardResult:
        table = read_parquet(files[k], columns=columns)
        return transform(table.filter(pc.is_in(table[ROW_ID], pa.array(sorted(ids)))), str(files[k]))

    if retry is not None:
        retry = replace(retry, redo=redo)
    return run_stage(out, output, parquet_rows(files), work, retry=retry, **options)


def run_stage(
    out: Path | str,
    output: Output,
    sizes: Sequence[int],
    work: ShardWork,
    *,
    shard: ShardSpec = ALL_SHARDS,
    overwrite: bool = False,
    rows_are_records: bool = True,
    progress: str | Progress | None = None,
    timings: dict[str, float] | None = None,
    started: float | None = None,
    retry: Retry | None = None,
    **extra: Any,
) -> Manifest | None:
    """Write output shard ``k`` as ``work(k)`` for every ``k`` this process owns and has not written.

    ``sizes[k]``: the input records shard ``k`` covers. ``work`` returns the shard's rows and its
    rejects (and optionally counters, summed over shards: ``*_s`` ones become timings, others
    rates on the progress bar). ``progress``: the bar's label, or a :class:`Progress` the work
    moves itself; None: no bar. ``rows_are_records``: each kept record is one row; otherwise
    (one image -> several samples) the manifest counts kept records and rows apart.
    ``retry``: which rows are failures (counted in the manifest), and, with ``redo``, how to make
    them again when the same job is rerun on its complete directory (in one process: a ``--shard``
    part leaves them to such a rerun).
    Returns the manifest, or None when other processes still have shards to write.
    """
    started = time.perf_counter() if started is None else started
    run = StageRun(out, output, num_shards=len(sizes), overwrite=overwrite, shared=shard.count > 1)
    if run.complete:
        manifest = read_manifest(out)
        if retry is None or retry.redo is None or not manifest.counts.get("failed") or shard.count > 1:
            return replace(manifest, already_complete=True)
        bar = Progress(progress) if isinstance(progress, str) else progress
        if bar is not None:
            bar.start(manifest.counts["failed"])
        done = retry_failed(
            Path(out),
            manifest,
            retry,
            run.schema,
            row_group_size=output.row_group_size,
            progress=None if bar is None else lambda n: bar.shard_done(n, {}),
        )
        if bar is not None:
            bar.close()
        return done
    todo = [k for k in range(len(sizes)) if shard.owns(k) and not run.is_done(k)]
    totals: dict[str, float] = dict(timings or {})
    bar = Progress(progress) if isinstance(progress, str) else progress
    if bar is not None:
        bar.start(sum(sizes[k] for k in todo))
    for k in todo:
        rows, rejects, *more = work(k)
        t = time.perf_counter()
        run.write_shard(k, rows, rejects)
        totals["write_s"] = totals.get("write_s", 0.0) + time.perf_counter() - t
        for name, value in (more[0] if more else {}).items():
            totals[name] = totals.get(name, 0.0) + value
        if bar is not None:
            bar.shard_done(sizes[k], {n: v for n, v in totals.items() if not n.endswith("_s")})
    if bar is not None:
        bar.close()
    if not run.all_done() or (shard.count > 1 and not run.claim_finish()):
        return None
    kept_timings = {n: round(v, 4) for n, v in totals.items() if n.endswith("_s")}
    failed = None if retry is None else retry.count([run.shard_path(i) for i in range(len(sizes))])
    return run.finish(
        sum(sizes), kept_timings, started, rows_are_records=rows_are_records, failed=failed, **extra
    )


class StageRun:
    """The directory of one job: resumes it, refuses another job's directory, writes shards and
    rejects atomically, and finishes with the manifest."""

    def __init__(
        self,
        out_dir: Path | str,
        output: Output,
        *,
        num_shards: int,
        overwrite: bool = False,
        shared: bool = False,
    ) -> None:
        """``shared``: several processes (``--shard i/N``) write disjoint shards of this one
        directory at once, so none may delete another's half-written files; whichever finds every
        shard done claims the finish (:meth:`claim_finish`)."""
        refuse_shared_overwrite(overwrite, shared)
        self.out, self.output, self.num_shards = Path(out_dir), output, num_shards
        self.schema = with_features(output.schema, output.features)
        self.work = self.out / WORK
        state = {
            "stage": output.stage,
            "config": orjson.loads(
                orjson.dumps(output.config)
            ),  # as the manifest reads back: tuples are lists
            "input_fingerprint": output.input_fingerprint,
            "num_shards": num_shards,
        }
        self.resumed = self.complete = False
        if overwrite:
            clear_output(self.out)
        if (self.out / MANIFEST).exists() or (self.out.exists() and not _is_empty(self.out)):
            previous = _previous_state(self.out)
            if previous == state and (self.out / MANIFEST).exists():
                self.complete = True
                return
            elif previous == state:
                self.resumed = True
            else:
                raise HoidataError(
                    "output directory is not empty and holds another job (pass --overwrite to replace it)",
                    file=str(self.out),
                )
        (self.out / DATA).mkdir(parents=True, exist_ok=True)
        self.work.mkdir(exist_ok=True)
        if not shared:  # half-written files of an interrupted run, and a finish it never made
            for d in (self.out / DATA, self.work):
                for tmp in d.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)
            (self.work / FINISH_LOCK).unlink(missing_ok=True)
        write_json_atomic(self.work / "state.json", state)

    def shard_path(self, i: int) -> Path:
        return self.out / DATA / f"{self.output.split}-{i:05d}-of-{self.num_shards:05d}.parquet"

    def rejects_path(self, i: int) -> Path:
        return self.work / f"rejects-{i:05d}.parquet"

    def is_done(self, i: int) -> bool:
        return self.shard_path(i).is_file() and self.rejects_path(i).is_file()

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
        write_parquet_atomic(self.rejects_path(i), rejects.cast(REJECTS_SCHEMA))
        write_parquet_atomic(self.shard_path(i), table.cast(self.schema), self.output.row_group_size)

    def finish(
        self,
        records_in: int,
        timings: dict[str, float],
        started: float,
        *,
        rows_are_records: bool = True,
        failed: int | None = None,
        **extra: Any,
    ) -> Manifest:
        """Merge rejects, check records in = out + rejected, write the manifest (the completion mark)."""
        shards, rows = [], 0
        for i in range(self.num_shards):
            n = pq.read_metadata(self.shard_path(i)).num_rows
            shards.append({"path": str(self.shard_path(i).relative_to(self.out)), "rows": n})
            rows += n
        parts = [read_parquet(self.rejects_path(i)) for i in range(self.num_shards)]
        rejects = pa.concat_tables(parts) if parts else REJECTS_SCHEMA.empty_table()
        write_parquet_atomic(
            self.out / REJECTS, rejects.cast(with_features(REJECTS_SCHEMA, rejects_features()))
        )
        kept = rows if rows_are_records else records_in - rejects.num_rows
        if kept + rejects.num_rows != records_in or kept < 0:
            raise RuntimeError(
                f"record accounting broke: {records_in} in, {kept} out, {rejects.num_rows} rejected"
            )
        counts = {"in": records_in, "out": kept, "rejected": rejects.num_rows}
        if not rows_are_records:
            counts["rows"] = rows
        if failed is not None:  # rows an engine failed on: a rerun makes them again
            counts["failed"] = failed
        manifest = Manifest(
            stage=self.output.stage,
            version=__version__,
            config=self.output.config,
            input_fingerprint=self.output.input_fingerprint,
            counts=counts,
            timings={**timings, "total_s": round(time.perf_counter() - started, 4)},
            shards=shards,
            features=self.output.features,
            created=time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            extra={"resumed": self.resumed, **extra},
        )
        manifest.write(self.out)
        shutil.rmtree(self.work, ignore_errors=True)
        return manifest


def refuse_shared_overwrite(overwrite: bool, shared: bool) -> None:
    """A part of a job that other processes share (``--shard i/N``) may not clear its output."""
    if overwrite and shared:
        raise HoidataError("--overwrite cannot be combined with --shard i/N (other shards may be running)")


def clear_output(out: Path | str) -> None:
    """What ``--overwrite`` does first: delete an earlier job's directory, refusing one that is not a
    hoidata dataset directory. The parent of ``--dp`` processes does it once, before they start:
    each of them writes a part, and none may delete the others'."""
    out = Path(out)
    if not out.exists() or _is_empty(out):  # an empty --out (a mount, a link) is kept as it is
        return
    if _previous_state(out) is None and not _only_ours(out):
        raise HoidataError(
            "output directory is not empty and is not a hoidata dataset directory: refusing to "
            "replace it, even with --overwrite (choose another --out)",
            file=str(out),
        )
    shutil.rmtree(out)


def _is_empty(out: Path) -> bool:
    """Empty, or only the empty skeleton that a run killed before its first write leaves behind."""
    entries = list(out.iterdir())
    if not {e.name for e in entries} <= {DATA, WORK} or not all(e.is_dir() for e in entries):
        return False
    return all(f.name.startswith(".") and f.name.endswith(".tmp") for e in entries for f in e.iterdir())


def _only_ours(out: Path) -> bool:
    """Holds nothing but what a stage writes (so --overwrite may delete it)."""
    return {e.name for e in out.iterdir()} <= {DATA, WORK, MANIFEST, REJECTS}


def _previous_state(out: Path) -> dict[str, Any] | None:
    """The job an existing directory holds (its state while running, its manifest when done)."""
    for f in (out / WORK / "state.json", out / MANIFEST):
        if f.is_file():
            try:
                m = orjson.loads(f.read_bytes())
            except orjson.JSONDecodeError:
                return None
            return {k: m.get(k) for k in ("stage", "config", "input_fingerprint")} | {
                "num_shards": m.get("num_shards", len(m.get("shards", [])))
            }
    return None
