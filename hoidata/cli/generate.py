"""What the generating commands (gen-cot, predict) share: ``--dp`` through the local executor, and
a worker's GPUs for any executor."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from hoidata.cli.options import RunOptions
from hoidata.cli.summary import print_summary
from hoidata.engines.options import EngineOptions, GenerationConfig
from hoidata.executors import LocalProcesses, without_options
from hoidata.io import read_manifest
from hoidata.io.stage import clear_output


def run_data_parallel(engine: str, options: EngineOptions, run: RunOptions, out: Path) -> None:
    """This same command as ``--dp`` processes, each on its own ``--tp`` GPUs and its part of
    ``--shard``, all into ``out``; the last one finishes it."""
    gpus_each = options.tp if engine == "vllm" else 0
    LocalProcesses(options.dp, gpus_each).run(child_argv(run, out), run.shard_spec)
    if (out / "manifest.json").is_file():
        print_summary(read_manifest(out), out)
    else:
        print_summary(None, out, shard=run.shard)


def child_argv(run: RunOptions, out: Path) -> list[str]:
    """This command line as each ``--dp`` process runs it (the executor adds its ``--shard``). An
    ``--overwrite`` clears the output here, once: each process writes a part of it."""
    if run.overwrite:
        clear_output(out)
    # --dp 1: a --config file naming dp must not make each child launch children of its own
    return [*without_options(sys.argv[1:], {"--dp": 1, "--shard": 1, "--overwrite": 0}), "--dp", "1"]


def failed_rows(out: Path) -> int:
    """Rows a complete run in ``out`` recorded as failed (its rerun makes them again); 0 for anything else."""
    if not (out / "manifest.json").is_file():
        return 0
    return int(read_manifest(out).counts.get("failed", 0))


def engine_gpus(configs: list[Any]) -> int:
    """A worker's GPUs: ``--tp`` for a vLLM engine; the others run on the CPU (hf) or a server."""
    engine = next((c.engine for c in configs if isinstance(c, GenerationConfig)), None)
    tp = next((c.tp for c in configs if isinstance(c, EngineOptions)), 1)
    return tp if engine == "vllm" else 0
