"""How a process that runs a data stage starts and ends: without pyarrow's look for pandas, and
with Python's cyclic collector run less often and not at the end.

pyarrow imports pandas (about 0.26 s here, more than a third of a small stage's start) the first
time it converts anything, to ask whether the values are pandas objects (apache/arrow#34994). A
stage hands it none. :func:`skip_pandas_probe` lets that first look fail: pyarrow then takes pandas
for absent in such checks, and imports it only where pandas is asked for by name (``to_pandas``,
``Table.from_pandas``). ``import pandas`` itself works as before once the look is over.

What differs, for the rest of the process: pyarrow's C++ side looks for pandas once and keeps the
answer, so pandas' missing-value markers inside object data (``pd.NA``, ``pd.NaT`` in an object
column) are not recognised (``ArrowInvalid``); and until something asks for pandas by name, a pandas
Series given to ``pa.array`` is converted as the plain sequence of values it is (NaN stays NaN, not
null). No data stage hands pyarrow pandas objects.

Python collects reference cycles every 700 net allocations of container objects. A stage's objects
die by reference counting (a record's dicts and lists, a tool call's results), so those collections
find nothing and cost 10% of gen-cot's loop and 0.05-0.1 s of ``eval hico``'s start (imports and
numba's registries): :func:`collect_less` runs them every :data:`GEN0_THRESHOLD` instead. Cycles are
still collected, later. And as the process ends, :func:`skip_final_collections` spares the
interpreter's shutdown a walk through every object (unless a model runtime was loaded).

Commands that run ``datasets`` or TRL (:data:`KEEP_DEFAULTS`; their cycles may hold tensors) keep
Python's and pyarrow's defaults, and so does a program that calls :func:`hoidata.cli.main` with its
own arguments (tests, notebooks).
"""

from __future__ import annotations

import gc
import sys
from typing import Any

KEEP_DEFAULTS = frozenset({"train", "push", "demo"})  # they run datasets and TRL in process
GEN0_THRESHOLD = 50_000  # net container allocations between two young-generation collections


class _PandasAbsent:
    """An import finder that refuses pandas (and only pandas), while pyarrow looks for it."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pandas" or name.startswith("pandas."):
            raise ImportError("pandas is left out of pyarrow's start (hoidata.cli.startup)")


def skip_pandas_probe() -> None:
    """Make pyarrow's first look for pandas now, with pandas refused; a no-op where pandas is
    already imported (pyarrow then finds it, as always) or where pyarrow has looked before."""
    if "pandas" in sys.modules:
        return
    absent = _PandasAbsent()
    sys.meta_path.insert(0, absent)
    try:
        import pyarrow as pa

        pa.array([0])  # pyarrow's lazy pandas check runs here, once per process
    finally:
        sys.meta_path.remove(absent)


def collect_less() -> None:
    """Collect reference cycles every :data:`GEN0_THRESHOLD` allocations, not every 700 (the older
    generations keep their ratios); never more often than the process already does."""
    gen0, gen1, gen2 = gc.get_threshold()
    if gen0:  # 0: collection is off, and stays so
        gc.set_threshold(max(gen0, GEN0_THRESHOLD), gen1, gen2)


def skip_final_collections() -> None:
    """Freeze every object alive now, as the command's process ends: the interpreter's shutdown then
    does not walk them all looking for cycles (0.1-0.25 s after ``eval hico``), and the kernel takes
    the memory back as it would. atexit handlers still run; a file left open in a reference cycle
    would not be flushed, and no stage leaves one (each writes through ``with`` blocks and renames).
    A process that loaded torch (a model engine: transformers, vLLM, diffusers) ends as Python ends
    it: those runtimes may clean up (worker processes, devices) in finalizers of objects in cycles."""
    if "torch" not in sys.modules:
        gc.freeze()


def command_of(args: list[str]) -> str | None:
    """The command a command line names: its first word that is not an option."""
    return next((a for a in args if not a.startswith("-")), None)
