"""What the generating commands (gen-cot, predict, imagine) share: ``--dp`` through the local
executor, and a worker's GPUs for any executor."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import typer

from hoidata.cli.apps import command_line
from hoidata.cli.options import RunOptions
from hoidata.cli.summary import print_summary
from hoidata.engines.options import EngineOptions, GenerationConfig
from hoidata.errors import HoidataError
from hoidata.executors import LocalProcesses, without_options
from hoidata.io import read_manifest
from hoidata.io.stage import clear_output, refuse_shared_overwrite


def run_data_parallel(
    engine: str, options: EngineOptions, run: RunOptions, input_dir: Path, out: Path
) -> None:
    """This same command as ``--dp`` processes, each on its own ``--tp`` GPUs and its part of
    ``--shard``, all into ``out``; the last one finishes it."""
    run_in_processes(options.dp, options.tp if engine == "vllm" else 0, run, input_dir, out)


def run_in_processes(processes: int, gpus_each: int, run: RunOptions, input_dir: Path, out: Path) -> None:
    """This same command as ``processes`` processes here (``--dp``), each its part of ``--shard``,
    all into ``out``. An ``--overwrite`` clears ``out`` here, once, before they start: each of them
    writes a part of it. ``--dry-run`` prints their command line and runs nothing."""
    read_manifest(input_dir)  # a missing or unfinished input: one line here, not one per process
    if out.exists() and not out.is_dir():
        raise HoidataError("the output is a file, not a dataset directory", file=str(out))
    refuse_shared_overwrite(run.overwrite, run.shard_spec.count > 1)
    # --dp 1: a --config file naming dp must not make each child launch children of its own;
    # --no-overwrite: nor an `overwrite: true` in it make each clear what the others write
    argv = [*without_options(command_line(), {"--dp": 1, "--shard": 1, "--overwrite": 0}), "--dp", "1"]
    if run.overwrite:
        argv.append("--no-overwrite")
    if run.dry_run:
        cleared = f"{out} cleared first; " if run.overwrite else ""
        typer.echo(
            f"--dp {processes}: {processes} processes on this machine, {gpus_each} GPUs each; {cleared}"
            f"every part runs: hoidata {shlex.join(argv)} --shard i/N"
        )
        return
    if run.overwrite:
        clear_output(out)
    LocalProcesses(processes, gpus_each).run(argv, run.shard_spec)
    if (out / "manifest.json").is_file():
        print_summary(read_manifest(out), out)
    else:
        print_summary(None, out, shard=run.shard)


def engine_gpus(configs: list[Any]) -> int:
    """A worker's GPUs: ``--tp`` for a vLLM engine; the others run on the CPU (hf) or a server."""
    engine = next((c.engine for c in configs if isinstance(c, GenerationConfig)), None)
    tp = next((c.tp for c in configs if isinstance(c, EngineOptions)), 1)
    return tp if engine == "vllm" else 0
