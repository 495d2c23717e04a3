"""``hoidata score``."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated

import typer

from hoidata.cli.apps import new_app
from hoidata.cli.params import Completions
from hoidata.cli.profile_option import ProfileOpt
from hoidata.errors import HoidataError
from hoidata.eval.score import score_file
from hoidata.rewards import RewardConfig

app = new_app()


@app.command(
    epilog="""Examples:

    hoidata score runs/grpo/completions.jsonl --gt data/sft-referring

    hoidata score preds/cot.parquet --gt data/hico-test --profile qwen2.5-vl --out preds/scores.parquet

    hoidata score cot.jsonl --gt data/sft-cof --weight tool=1.0 --weight spatial=0.25 --json
""",
)
def score(
    completions: Completions,
    gt: Annotated[
        Path,
        typer.Option(
            "--gt", help="The dataset the prompts came from: SFT (pairs) or canonical.", show_default=False
        ),
    ],
    profile: ProfileOpt = None,
    weight: Annotated[
        list[str] | None,
        typer.Option(
            metavar="NAME=VALUE", help="Reward weight (accuracy, format, tool, spatial); repeatable."
        ),
    ] = None,
    iou_threshold: Annotated[float, typer.Option(help="IoU both boxes of a pair must reach.")] = 0.5,
    no_think: Annotated[
        bool, typer.Option("--no-think", help="Format: do not require a think block before each turn.")
    ] = False,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Write per-completion scores to this Parquet file.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Score completions with the hierarchical reward GRPO trains with.

    Prints the mean of each part: R = accuracy + format + 1[accuracy > 0]·(tool + spatial), weighted.
    """
    weights: dict[str, float] = {}
    for item in weight or []:
        name, _, value = item.partition("=")
        if name not in ("accuracy", "format", "tool", "spatial"):
            raise HoidataError(f"--weight {item!r}: the parts are accuracy, format, tool and spatial")
        try:
            weights[name] = float(value)
        except ValueError:
            raise HoidataError(f"--weight {item!r}: the value must be a number") from None
    cfg = RewardConfig(**weights, iou_threshold=iou_threshold, require_think=not no_think)
    report = score_file(completions, gt, profile=profile.value if profile else None, config=cfg, out=out)
    if as_json:
        typer.echo(json.dumps(dataclasses.asdict(report), indent=2))
        return
    typer.echo(f"{report.scored:,} of {report.completions:,} completions scored ({report.profile})")
    if report.unmatched:
        typer.echo(f"  not in the dataset: {', '.join(report.unmatched)}")
    parts = ("accuracy", "format", "tool", "spatial", "total")
    typer.echo(f"  {'':<12}" + "".join(f"{p:>10}" for p in parts))
    typer.echo(f"  {'all':<12}" + "".join(f"{report.means[p]:>10.3f}" for p in parts))
    for task, means in report.by_task.items():
        typer.echo(f"  {task:<12}" + "".join(f"{means[p]:>10.3f}" for p in parts))
    if out is not None:
        typer.echo(f"  per-completion scores: {out}")
