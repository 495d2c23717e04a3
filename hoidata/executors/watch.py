"""The driver's view of a job spread over workers: output shards written so far, read from the
output directory itself (the one place every worker reports to, whatever executor runs them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson

from hoidata.io.manifest import DATA, MANIFEST
from hoidata.io.progress import terminal_bar
from hoidata.io.stage import WORK


def shards_written(out: Path) -> tuple[int, int | None]:
    """(shards written, shards in the job or None while no worker has started it)."""
    manifest = out / MANIFEST
    state = manifest if manifest.is_file() else out / WORK / "state.json"
    try:
        total = orjson.loads(state.read_bytes()).get("num_shards")
    except (OSError, orjson.JSONDecodeError):
        total = None
    if manifest.is_file() and total is None:
        total = len(orjson.loads(manifest.read_bytes()).get("shards", []))
    data = out / DATA
    written = sum(1 for f in data.glob("*.parquet") if not f.name.startswith(".")) if data.is_dir() else 0
    return written, total


class ShardWatch:
    """A progress bar over a job's output shards, moved by :meth:`poll` (silent off a terminal)."""

    def __init__(self, out: Path, desc: str) -> None:
        self.out, self.desc = Path(out), desc
        self.bar: Any = None
        self.notes: dict[str, object] = {}

    def poll(self) -> None:
        written, total = shards_written(self.out)
        if total is None:
            return
        if self.bar is None:
            self.bar = terminal_bar(total=total, desc=self.desc, unit="shard")
            if self.bar is None:
                return
        self.bar.update(written - self.bar.n)
        if self.notes:
            self.bar.set_postfix(self.notes, refresh=False)

    def note(self, **values: object) -> None:
        self.notes.update(values)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
