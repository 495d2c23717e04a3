"""What every benchmark here shares: the median of a few timed runs in-process, and whole-process
figures (a fresh interpreter per run: imports, reading, writing, exit) with peak memory."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

HOIDATA = [sys.executable, "-c", "import sys; from hoidata.cli import main; sys.argv[0] = 'hoidata'; main()"]


def timed(fn: Callable[[], object], repeats: int = 5) -> float:
    """Median wall time of ``repeats`` calls, in seconds."""
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def timed_interleaved(fns: list[Callable[[], object]], repeats: int = 5) -> list[float]:
    """Median wall time of each of ``fns``, run in turn (A, B, A, B, ...) so that every side sees the
    same machine: on a noisy shared machine a ratio of medians taken minutes apart drifts."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times, strict=True):
            t = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t)
    return [statistics.median(t) for t in times]


@dataclass
class WholeProcess:
    """Wall seconds and peak resident memory (MiB) of each run of one command."""

    label: str
    seconds: list[float]
    peak_mib: list[float]

    def line(self) -> str:
        s = self.seconds
        return (
            f"  whole process, {self.label:<34} min {min(s):6.2f} s  median {statistics.median(s):6.2f} s  "
            f"max {max(s):6.2f} s   peak {max(self.peak_mib):6.0f} MiB"
        )


# Runs one command from a small interpreter of its own and writes "seconds peak_KiB exit_code" to the
# file named first. The command is forked from this small process, not from the benchmark (which may
# hold gigabytes): a child's peak memory counts the pages it starts with, so those stay ~10 MiB.
_SPAWN = """import os, sys, time
out, args = sys.argv[1], sys.argv[2:]
start = time.perf_counter()
pid = os.fork()
if pid == 0:
    try:
        os.execvp(args[0], args)
    finally:
        os._exit(127)
_, status, usage = os.wait4(pid, 0)
with open(out, "w") as f:
    f.write(f"{time.perf_counter() - start} {usage.ru_maxrss} {os.waitstatus_to_exitcode(status)}")
"""


def whole_process(label: str, args: Sequence[str], repeats: int = 5, warmup: int = 1) -> WholeProcess:
    """Run a command ``warmup + repeats`` times as a fresh process (output discarded; a failure
    raises): its wall time from fork to exit, and its peak resident memory by the kernel's count
    (which starts from the ~10 MiB of the small process it is forked from)."""
    seconds, peaks = [], []
    with tempfile.TemporaryDirectory() as tmp:
        figures, err = Path(tmp) / "figures", Path(tmp) / "stderr"
        for k in range(warmup + repeats):
            with open(err, "wb") as stderr:
                subprocess.run(
                    [sys.executable, "-c", _SPAWN, str(figures), *args],
                    stdout=subprocess.DEVNULL,
                    stderr=stderr,
                )
            elapsed, peak_kib, code = figures.read_text().split()
            if int(code):
                raise RuntimeError(f"{' '.join(args)} exited {code}: {err.read_text()[-2000:]}")
            if k >= warmup:
                seconds.append(float(elapsed))
                peaks.append(int(peak_kib) / 1024)  # KiB on Linux
    return WholeProcess(label, seconds, peaks)


def hoidata(*args: str | Path) -> list[str]:
    """The ``hoidata`` command line with this interpreter (the one whose hoidata is benchmarked)."""
    return [*HOIDATA, *map(str, args)]
