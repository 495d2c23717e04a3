"""What a stage command prints when it is done: counts, time, where the output and rejects are."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import typer

from hoidata.io import Manifest
from hoidata.io.files import read_parquet
from hoidata.io.manifest import REJECTS


def print_summary(manifest: Manifest | None, out: Path, *, shard: str = "0/1") -> None:
    """One line for a finished job left as it was; counts and rejects for one just written; what
    is still to come when this process ran only its own shards."""
    if manifest is None:
        typer.echo(f"shard {shard} written to {out}; the dataset completes when every shard has run")
        return
    failed = manifest.counts.get("failed", 0)
    if manifest.retried is not None:
        r = manifest.retried
        typer.echo(
            f"{manifest.stage}: retried {r['tried']:,} failed rows: {r['made']:,} made, "
            f"{r['failed']:,} still failed\n  dataset: {out}"
        )
        return
    if manifest.already_complete:
        retry = f"; {failed:,} failed rows: rerun without --shard to retry them" if failed else ""
        typer.echo(f"{manifest.stage}: {out} already complete, nothing to do{retry}")
        return
    counts, secs = manifest.counts, manifest.timings.get("total_s", 0.0)
    typer.echo(
        f"{manifest.stage}: {counts['in']:,} records in → {counts['out']:,} out, {counts['rejected']:,} rejected"
        + (f", {counts['rows']:,} rows written" if "rows" in counts else "")
        + f" ({secs:.2f} s)\n  dataset: {out}"
    )
    if counts["rejected"]:
        rejects = read_parquet(out / REJECTS, columns=["field", "reason"]).to_pylist()
        top = Counter(r["reason"].split(":")[0] for r in rejects).most_common(3)
        typer.echo(f"  rejects: {out / REJECTS} — " + "; ".join(f"{c} × {r}" for r, c in top))
    if failed:
        typer.echo(f"  failed: {failed:,} rows the engine failed on (error in each); rerun to retry them")
    for note in manifest.extra.get("notes", []):
        typer.echo(f"  note: {note}")


def show_report(report: Any, json_out: Path | None) -> None:
    """Print an eval report's table; write all of it as JSON when asked."""
    typer.echo(report.format_table())
    if json_out is not None:
        report.write_json(json_out)
        typer.echo(f"  report: {json_out}")
