"""Command-line options derived from config dataclasses (see :mod:`hoidata.options`).

A command declares one parameter per config it needs, typed with the config class; this module
replaces those parameters with one Typer option per field (default and help from the field) and a
``--config FILE.yaml``, and hands the command the built configs. Values come from the dataclass
defaults, then the YAML file, then flags given on the command line.

A stage command (one taking :class:`RunOptions`) also runs where ``--executor`` says: with several
workers, or on Ray or Slurm, this process launches the same command line over the job's parts
(see :mod:`hoidata.executors`) and finishes the dataset instead of running the stage itself.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import inspect
import io
import os
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from hoidata.cli.apps import command_line
from hoidata.cli.main import app
from hoidata.cli.summary import print_summary
from hoidata.errors import HoidataError
from hoidata.executors import (
    KEEP_ENGINES,
    Executor,
    LocalProcesses,
    RayExecutor,
    ShardWatch,
    SlurmArray,
    array_task,
    without_options,
)
from hoidata.io import ShardSpec, read_manifest
from hoidata.io.manifest import MANIFEST
from hoidata.options import (
    ConfigField,
    build_config,
    config_fields,
    is_tuple_of_str,
    non_optional,
    option,
    read_config_file,
)

CONFIG_FILE = "config_file"
CONTEXT = "typer_context"
EXECUTORS = ("local", "ray", "slurm")


@dataclass
class RunOptions:
    """How a stage runs, not what it writes: never recorded in the manifest."""

    shard: str = option(
        "0/1", "i/N: run every N-th output shard starting at i (several processes or machines)."
    )
    overwrite: bool = option(
        False, "Replace an existing output directory (another job's, or a finished one)."
    )
    executor: str = option(
        "local",
        "Where the job runs: local (processes here), ray (actors of a Ray cluster), slurm (an sbatch "
        "array and a merge job; inside an array task, that task's part).",
        choices=EXECUTORS,
    )
    workers: int = option(
        1, "Workers sharing the job: processes here, Ray actors or Slurm array tasks (--dp too).", minimum=1
    )
    gpus_per_worker: int | None = option(
        None, "GPUs each worker holds (default: --tp with vllm, else 0).", minimum=0
    )
    cpus_per_worker: int = option(1, "CPUs each Ray actor or Slurm task holds.", minimum=0)
    ray_address: str | None = option(
        None, "ray: the cluster, host:6379, ray://host:10001 or auto (default: start one here)."
    )
    ray_retries: int = option(
        2, "ray: how often a part whose worker failed is retried on another.", minimum=0
    )
    slurm_partition: str | None = option(None, "slurm: the partition.")
    slurm_time: str | None = option(None, "slurm: each task's time limit, e.g. 12:00:00.")
    slurm_options: tuple[str, ...] = option(
        (), "slurm: more sbatch options, comma-separated, e.g. account=A,qos=high."
    )
    slurm_setup: str | None = option(
        None, "slurm: shell commands each task runs first, e.g. 'module load cuda'."
    )
    dry_run: bool = option(False, "Print what would run (slurm: the sbatch scripts), run nothing.")

    @property
    def shard_spec(self) -> ShardSpec:
        return ShardSpec.parse(self.shard)


def cli_fields(cls: type, exclude: tuple[str, ...] = ()) -> list[ConfigField]:
    return [f for f in config_fields(cls) if f.info.cli and f.name not in exclude]


def choice_enum(name: str, choices: tuple[str, ...]) -> Any:
    """An enum of ``choices`` (values as given), the form Typer offers choices in."""
    return StrEnum(name, {c: c for c in choices})


def typer_parameter(f: ConfigField, choices: tuple[str, ...] | None = None) -> inspect.Parameter:
    """The Typer parameter of one config field."""
    info, choices = f.info, choices or f.info.choices
    base = non_optional(f.type)
    default = None if info.required else f.default
    kwargs: dict[str, Any] = {"help": info.help + (" [required]" if info.required else "")}
    if choices:
        base = choice_enum(f.name.title().replace("_", ""), choices)
    elif info.parse is not None or is_tuple_of_str(base):  # given as text: "456x256", "a,b"
        base = str
        if default is not None:
            default = info.show(default) if info.show else ",".join(default)
    if info.envvar:
        kwargs["envvar"] = info.envvar
    if info.secret or info.required or default is None:
        kwargs["show_default"] = False
    tp = base | None if default is None else base
    if info.argument:  # positional: always given on the command line
        kwargs.pop("show_default", None)
        param = typer.Argument(**kwargs)
        return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[tp, param])
    long = info.flag or "--" + f.name.replace("_", "-")
    decls = [f"{long}/--no-{long[2:]}"] if base is bool else [long]  # --no-x undoes a config file's x
    if info.short:
        decls.append(info.short)
    param = typer.Option(*decls, **kwargs)
    return inspect.Parameter(
        f.name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[tp, param], default=default
    )


def _value(f: ConfigField, given: Any) -> Any:
    value = given.value if isinstance(given, StrEnum) else given
    return f.from_text(value)


def with_config_options(
    *,
    fixed: dict[str, Any] | None = None,
    choices: dict[str, tuple[str, ...]] | None = None,
    exclude: tuple[str, ...] = (),
    gpus: Callable[[list[Any]], int] | None = None,
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Turn a command's config-typed parameters into options (see the module docstring).

    ``fixed``: fields the command sets itself (``source="hico"``); ``choices``: narrower choices
    for this command; ``exclude``: fields this command does not offer (they keep their default);
    ``gpus``: a worker's GPUs from the built configs, when ``--gpus-per-worker`` is not given.
    """
    fixed, choices = fixed or {}, choices or {}
    hidden = (*exclude, *fixed)

    def decorate(func: Callable[..., None]) -> Callable[..., None]:
        hints = typing.get_type_hints(func, include_extras=True)
        signature = inspect.signature(func)
        configs = {n: hints[n] for n in signature.parameters if dataclass_type(hints.get(n))}
        own = [
            p.replace(annotation=hints[p.name], kind=inspect.Parameter.KEYWORD_ONLY)
            for p in signature.parameters.values()
            if p.name not in configs
        ]
        generated = [
            typer_parameter(f, choices.get(f.name))
            for cls in configs.values()
            for f in cli_fields(cls, hidden)
        ]
        config_file = inspect.Parameter(
            CONFIG_FILE,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[
                Path | None,
                typer.Option(
                    "--config",
                    "-c",
                    help="YAML file of these options (names as here, - or _); flags given here override it.",
                    show_default=False,
                ),
            ],
            default=None,
        )

        @functools.wraps(func)
        def command(**kwargs: Any) -> None:
            ctx = kwargs.pop(CONTEXT)
            path = kwargs.pop(CONFIG_FILE)
            from_file = read_config_file(path) if path else {}
            offered = {f.name for cls in configs.values() for f in cli_fields(cls, hidden)}
            stray = sorted(set(from_file) - offered)
            if stray:
                raise HoidataError(f"unknown option {stray[0]!r} for this command", file=str(path))
            built = {}
            for name, cls in configs.items():
                values = {f.name: from_file[f.name] for f in config_fields(cls) if f.name in from_file}
                for f in cli_fields(cls, hidden):
                    if given_on_command_line(ctx, f.name):
                        values[f.name] = _value(f, kwargs[f.name])
                    elif f.info.required and f.name not in values:
                        flag = f.info.flag or "--" + f.name.replace("_", "-")
                        raise HoidataError(f"missing option {flag} (or {f.name}: in --config)")
                values |= {k: v for k, v in fixed.items() if k in {f.name for f in config_fields(cls)}}
                built[name] = build_config(cls, values, source=str(path or ""))
                for f in config_fields(cls):
                    kwargs.pop(f.name, None)
            run = next((c for c in built.values() if isinstance(c, RunOptions)), None)
            if run is None:
                func(**kwargs, **built)
                return
            stage = Stage(lambda configs: func(**kwargs, **configs), built, kwargs.get("out"), ctx)
            stage.start(run, gpus)

        arguments = [p for p in generated if p.default is inspect.Parameter.empty]
        options = [p for p in generated if p.default is not inspect.Parameter.empty]
        context = inspect.Parameter(CONTEXT, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        command.__signature__ = inspect.Signature([context, *arguments, *own, *options, config_file])  # type: ignore[attr-defined]
        command.__annotations__ = {}
        return command

    return decorate


def given_on_command_line(ctx: typer.Context, name: str) -> bool:
    """Not a default (nor a default of a missing value): the command line (or its env var) gave it."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


def dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "__dataclass_fields__")


class Stage:
    """A stage command about to run: here, or launched over workers by an executor."""

    def __init__(
        self,
        call: Callable[[dict[str, Any]], None],
        configs: dict[str, Any],
        out: Path | None,
        ctx: typer.Context,
    ) -> None:
        self.call, self.configs, self.out = call, configs, None if out is None else Path(out)
        self.name = "-".join(ctx.command_path.split())  # hoidata-gen-cot, hoidata-convert-hico
        self.offers_dp = any(hasattr(c, "dp") for c in configs.values())

    def start(self, run: RunOptions, gpus: Callable[[list[Any]], int] | None) -> None:
        task = array_task() if run.executor == "slurm" else None
        if task is not None:  # inside a Slurm array: this task's part of the job, here
            self.call(self.with_run(run, shard=str(run.shard_spec.part(*task))))
            return
        dp = next((c.dp for c in self.configs.values() if hasattr(c, "dp")), 1)
        workers = run.workers if run.workers != 1 else (dp if run.executor != "local" else 1)
        if run.workers != 1 and dp not in (1, run.workers):
            raise HoidataError(f"--workers {run.workers} and --dp {dp} disagree: give one of them")
        if run.executor == "local" and workers == 1:
            self.call(self.configs)  # the stage itself (its own --dp, if it has one)
            return
        if workers < 1 or run.cpus_per_worker < 0 or (run.gpus_per_worker or 0) < 0:
            raise HoidataError("--workers must be at least 1, and a worker's CPUs and GPUs at least 0")
        if run.overwrite:
            raise HoidataError(
                f"--overwrite cannot be combined with --workers or --executor {run.executor} (several "
                f"processes write the output): remove {self.out or 'the output directory'} first"
            )
        if self.out is not None and run.shard_spec.count == 1 and not run.dry_run and failed_rows(self.out):
            self.call(self.with_run(run, shard="0/1"))  # a finished job's failed rows: retried here
            return
        each = run.gpus_per_worker
        if each is None:
            each = gpus(list(self.configs.values())) if gpus is not None else 0
        self.launch(run, workers, each)

    def launch(self, run: RunOptions, workers: int, gpus_each: int) -> None:
        argv = self.worker_argv()
        executor: Executor
        if run.executor == "slurm":
            if self.out is None:
                raise HoidataError("--executor slurm needs the command's --out")
            slurm = SlurmArray(
                workers,
                self.out,
                gpus_each,
                run.cpus_per_worker,
                run.slurm_partition,
                run.slurm_time,
                run.slurm_options,
                run.slurm_setup,
                run.dry_run,
            )
            slurm.run([*argv, "--shard", run.shard], run.shard_spec, self.name)
            return
        argv = [*argv, "--executor", "local"]
        if run.dry_run:
            self.print_plan(run, workers, gpus_each, argv)
            return
        watch = None  # local workers show their own progress; Ray's run elsewhere
        if run.executor == "ray" and self.out is not None:
            watch = ShardWatch(self.out, self.name.removeprefix("hoidata-"))
        if run.executor == "ray":
            executor = RayExecutor(
                workers,
                run_worker,
                gpus_each,
                run.cpus_per_worker,
                run.ray_address,
                run.ray_retries,
                watch.poll if watch else None,
            )
        else:
            executor = LocalProcesses(workers, gpus_each)
        try:
            executor.run(argv, run.shard_spec)
        finally:
            if watch is not None:
                watch.close()
        self.finish(run)

    def finish(self, run: RunOptions) -> None:
        """Every part has run: write the manifest if no worker has (a worker killed while finishing
        leaves its claim behind), or show what the last one wrote."""
        if self.out is None:
            return
        if (self.out / MANIFEST).is_file():
            print_summary(read_manifest(self.out), self.out)
        elif run.shard_spec.count == 1:
            self.call(self.with_run(run, shard="0/1"))
        else:
            print_summary(None, self.out, shard=run.shard)

    def with_run(self, run: RunOptions, shard: str) -> dict[str, Any]:
        """The configs for running ``shard`` in this process: one worker, the local executor."""
        here = dataclasses.replace(run, shard=shard, executor="local", workers=1)
        return {
            name: here
            if c is run
            else (dataclasses.replace(c, dp=1) if dataclasses.is_dataclass(c) and hasattr(c, "dp") else c)
            for name, c in self.configs.items()
        }

    def worker_argv(self) -> list[str]:
        """This command line as each worker runs it: no executor options but one worker (a worker
        runs its part itself, whatever a --config file says); the executor adds ``--executor`` and
        the worker's ``--shard``."""
        drop = {
            f.info.flag or "--" + f.name.replace("_", "-"): 0 if non_optional(f.type) is bool else 1
            for f in cli_fields(RunOptions)
        }
        if self.offers_dp:  # the generating stages' name for --workers
            drop["--dp"] = 1
        argv = [*without_options(command_line(), drop), "--workers", "1"]
        return [*argv, "--dp", "1"] if self.offers_dp else argv

    def print_plan(self, run: RunOptions, workers: int, gpus_each: int, argv: list[str]) -> None:
        where = (run.ray_address or "a new local cluster") if run.executor == "ray" else "this machine"
        typer.echo(
            f"{run.executor}: {workers} workers on {where}, {run.cpus_per_worker} CPUs and {gpus_each} GPUs "
            f"each; every part runs: hoidata {' '.join(argv)} --shard i/N"
        )


def run_worker(argv: list[str]) -> None:
    """One part of a job in this process (a Ray actor's): the command line as a worker runs it,
    quietly (the driver reports), keeping its engine loaded for the next part."""
    os.environ[KEEP_ENGINES] = "1"
    with contextlib.redirect_stdout(io.StringIO()):
        app(args=[a for a in argv if a != "--debug"], standalone_mode=False)


def failed_rows(out: Path) -> int:
    """Rows a complete run in ``out`` recorded as failed (its rerun makes them again); 0 for anything else."""
    if not (out / "manifest.json").is_file():
        return 0
    return int(read_manifest(out).counts.get("failed", 0))
