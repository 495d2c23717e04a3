"""``hoidata demo``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hoidata.cli.apps import examples, new_app
from hoidata.demo import run_demo

app = new_app(no_args_is_help=False)


@app.command(epilog=examples("hoidata demo --out data/demo", "hoidata demo --cold-start"))
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the demo writes everything.")] = Path(
        "data/demo"
    ),
    cold_start: Annotated[
        bool,
        typer.Option(
            help="Generate with a tiny model first trained on one scene's chain-of-focus data (about 1.5 "
            "min more), so that verified traces pass the filters; a random one writes noise."
        ),
    ] = False,
) -> None:
    """Run the whole chain on a small synthetic dataset (CPU, about a minute).

    The dataset is drawn by hoidata itself: convert, boxes, build-sft, gen-cot, filter, train,
    predict, eval and a dry-run push, one line each.
    """
    run_demo(out, cold=cold_start)
