"""Progress bars on long work (tqdm, silent when output is not a terminal)."""

from __future__ import annotations

import sys
from typing import Any


def terminal_bar(**options: Any) -> Any:
    """A tqdm bar on stderr when it is a terminal, else None. tqdm (0.02 s to import, most of it
    reading its own version from the installed metadata) is imported only for a bar that shows."""
    isatty = getattr(sys.stderr, "isatty", None)
    if isatty is None or not isatty():
        return None
    from tqdm import tqdm

    return tqdm(file=sys.stderr, leave=False, **options)


class Progress:
    """A bar over a stage's input records. :func:`~hoidata.io.stage.run_stage` sizes it and moves
    it one shard at a time; a shard's work may move it finer (``update``, as tqdm's), and the stage
    loop then adds only what the work did not."""

    def __init__(self, desc: str, unit: str = "record") -> None:
        self.desc, self.unit = desc, unit
        self.bar: Any = None
        self.moved = 0  # by the current shard's work

    def start(self, total: int) -> None:
        if total:
            self.bar = terminal_bar(total=total, desc=self.desc, unit=self.unit)

    def update(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)
            self.moved += n

    def shard_done(self, size: int, rates: dict[str, float]) -> None:
        """The rest of a finished shard's records, and the stage's rates per second."""
        if self.bar is None:
            return
        self.bar.update(max(size - self.moved, 0))
        self.moved = 0
        elapsed = max(self.bar.format_dict["elapsed"], 1e-9)
        if rates:
            self.bar.set_postfix({f"{n}_per_s": f"{v / elapsed:.0f}" for n, v in rates.items()})

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
