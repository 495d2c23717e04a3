"""Progress bars: shown on a terminal, and on nothing else, where tqdm is not even imported."""

from __future__ import annotations

import io
import sys
from pathlib import Path

import pytest
from child_process import said

from hoidata.executors.watch import ShardWatch
from hoidata.io.progress import Progress
from hoidata.io.stage import WORK


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_a_bar_moves_on_a_terminal_and_writes_nothing_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    for stream, shows in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", stream)
        bar = Progress("convert", unit="img")
        bar.start(10)
        bar.update(3)
        bar.shard_done(10, {"pairs": 40.0})
        assert (bar.bar is not None) == shows
        if shows:
            assert bar.bar.n == 10 and "pairs_per_s" in bar.bar.postfix
        bar.close()
        written = stream.getvalue()
        assert ("convert" in written) == shows, written


def test_a_process_off_a_terminal_never_imports_tqdm() -> None:
    code = (
        "import sys\n"
        "from hoidata.io.progress import Progress\n"
        "from hoidata.executors.watch import ShardWatch\n"
        "bar = Progress('x'); bar.start(5); bar.update(5); bar.close()\n"
        "print('SAID', 'tqdm' in sys.modules)"
    )
    assert said(code) == ["False"]


def test_a_shard_watch_counts_written_shards_on_a_terminal_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / WORK).mkdir()
    (tmp_path / WORK / "state.json").write_text('{"num_shards": 3}')
    (tmp_path / "data").mkdir()
    for name in ("train-00000-of-00003.parquet", "train-00001-of-00003.parquet", ".partial.parquet"):
        (tmp_path / "data" / name).write_bytes(b"")
    for stream, shows in ((Terminal(), True), (io.StringIO(), False)):
        monkeypatch.setattr(sys, "stderr", stream)
        watch = ShardWatch(tmp_path, "gen-cot")
        watch.note(workers=2)
        watch.poll()
        assert (watch.bar is not None) == shows
        if shows:
            assert (watch.bar.n, watch.bar.total) == (2, 3)
        watch.close()
        assert ("gen-cot" in stream.getvalue()) == shows
