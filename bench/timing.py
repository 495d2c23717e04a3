"""What every benchmark here shares: the median of a few timed runs."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


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
