"""The ``hoidata`` app. Commands are listed here in pipeline order with their one-line summaries,
and a command's module is imported only when that command runs, so ``hoidata --help`` stays light.
A new command: a module in this package with an ``app`` (see :mod:`hoidata.cli.boxes`), and a line
in :data:`COMMANDS`."""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Annotated, Any, NamedTuple

import typer
from typer.core import TyperGroup

from hoidata.cli.apps import new_app, remember_command_line
from hoidata.cli.startup import (
    KEEP_DEFAULTS,
    collect_less,
    command_of,
    skip_final_collections,
    skip_pandas_probe,
)
from hoidata.errors import HoidataError


class Command(NamedTuple):
    module: str
    summary: str  # the command's docstring's first line (a test holds them equal)


COMMANDS = {
    "convert": Command(
        "convert", "Convert raw annotations (HICO-DET, SWIG-HOI, HOI-QA) into a canonical dataset."
    ),
    "qa": Command(
        "qa", "Write HOI-Ref-style referral questions about every person-object pair into the qa column."
    ),
    "boxes": Command("boxes", "Add union, refer and model-frame boxes to a canonical dataset."),
    "build-sft": Command(
        "build_sft", "Build a TRL-ready SFT dataset (images + messages) from a boxes dataset."
    ),
    "gen-cot": Command(
        "gen_cot", "Generate tool-augmented chain-of-thought rollouts, scored with the GRPO rewards."
    ),
    "gen-prefs": Command(
        "gen_prefs",
        "Sample boxes, crops and answers from a box-then-answer policy, judged: preferences for DPO.",
    ),
    "imagine": Command(
        "imagine", "Imagine views of a dataset's regions ahead of time: a cache the imagine tool serves."
    ),
    "filter": Command(
        "filter", "Select gen-cot rollouts: verified ones for SFT, or preference pairs for DPO."
    ),
    "score": Command("score", "Score completions with the hierarchical reward GRPO trains with."),
    "train": Command(
        "train", "Train Qwen VL models on TRL from a YAML recipe (sft, grpo, dpo), and merge LoRA."
    ),
    "predict": Command("predict", "Ask a model for every HOI in every image; write predictions for eval."),
    "eval": Command("eval", "Evaluate predictions against a ground-truth dataset."),
    "attention": Command(
        "attention",
        "Draw spatial-linking attention maps: per sample, the person, object and union boxes' attention.",
    ),
    "show": Command(
        "show",
        "Write a static HTML gallery of any hoidata directory (datasets, rollouts, pairs, rejects, reports).",
    ),
    "push": Command("push", "Publish dataset directories to the Hugging Face Hub."),
    "demo": Command("demo", "Run the whole chain on a small synthetic dataset (CPU, about a minute)."),
}


class LazyGroup(TyperGroup):
    """Lists :data:`COMMANDS` without importing them; imports one when it is asked for."""

    def list_commands(self, ctx: typer.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: typer.Context, cmd_name: str) -> Any:
        if cmd_name not in COMMANDS:
            return None
        module = importlib.import_module(f"hoidata.cli.{COMMANDS[cmd_name].module}")
        command = typer.main.get_command(module.app)
        command.name = cmd_name
        return command

    def format_commands(self, ctx: typer.Context, formatter: Any) -> None:
        with formatter.section("Commands"):
            formatter.write_dl([(name, c.summary) for name, c in COMMANDS.items()])


app = new_app(
    cls=LazyGroup,
    name="hoidata",
    help="Human-object-interaction annotations → training data for vision-language models.",
)


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """hoidata: exact, resumable HOI data pipelines for Qwen-VL-style models."""


def main(argv: list[str] | None = None) -> Any:
    """Entry point: user errors become one line on stderr and exit code 2 (``--debug`` shows the traceback)."""
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args or bool(os.environ.get("HOIDATA_DEBUG"))
    # numpy asks the kernel for huge pages for every array of 4 MiB or more; where the kernel then
    # compacts memory on the fault (THP defrag "madvise", a common default) that stalls the stages'
    # large, short-lived arrays: `eval hico` on a 250 MB result file took 1 s longer. Set to 1 to keep them.
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")
    command = command_of(args)
    remember_command_line(args)
    # this process is the command (hoidata.cli.startup): pyarrow's start without pandas (0.26 s),
    # cycles collected less often, and no collection walks every object as it ends
    lighter = argv is None and command in COMMANDS and command not in KEEP_DEFAULTS
    if lighter:
        skip_pandas_probe()
        collect_less()
    signal.signal(signal.SIGTERM, _terminate)  # a scheduler's stop: as clean as Ctrl-C
    try:
        app(args=[a for a in args if a != "--debug"])  # --debug is accepted anywhere on the line
    except HoidataError as e:
        if debug:
            raise
        typer.echo(f"error: {e}", err=True)
        sys.exit(2)
    except OSError as e:
        if debug:
            raise
        where = f"{e.filename}: " if e.filename else ""
        typer.echo(f"error: {where}{e.strerror or e}", err=True)
        sys.exit(2)
    except Terminated:
        typer.echo("terminated: finished shards are kept; rerun the same command to resume", err=True)
        sys.exit(143)
    except KeyboardInterrupt:
        typer.echo("interrupted: rerun the same command to resume", err=True)
        sys.exit(130)
    except SystemExit as e:
        if e.code == 130:  # typer turns Ctrl-C inside a command into exit code 130, silently
            typer.echo("interrupted: rerun the same command to resume", err=True)
        raise
    finally:
        if lighter:
            skip_final_collections()


class Terminated(BaseException):
    """SIGTERM, raised where the process is: written shards stay, the one being written never
    appears (shards are renamed into place when complete). A BaseException, like Ctrl-C's, so no
    ``except Exception`` on the way swallows it."""


def _terminate(signum: int, frame: Any) -> None:
    raise Terminated
