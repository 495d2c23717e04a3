"""``hoidata attention``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hoidata.cli.apps import examples, new_app
from hoidata.cli.params import Out
from hoidata.models.spatial_maps import MAPS, TABLE, draw_attention_maps

app = new_app()


@app.command(
    epilog=examples(
        "hoidata attention runs/sft-spatial data/sft-spatial-test -o maps/sft-spatial",
        "hoidata attention runs/sft-spatial data/sft-spatial-test -o maps/one --sample-id 'hico-det/test/X:spatial:0'",
    )
)
def attention(
    run: Annotated[
        Path, typer.Argument(help="A spatial-linking run (or merged model) directory.", show_default=False)
    ],
    dataset: Annotated[
        Path, typer.Argument(help="A `build-sft spatial` dataset directory.", show_default=False)
    ],
    out: Out,
    limit: Annotated[int, typer.Option(help="Spatial samples drawn, from the first.")] = 16,
    sample_id: Annotated[
        list[str] | None, typer.Option("--sample-id", help="Draw these samples instead (repeatable).")
    ] = None,
    device: Annotated[str, typer.Option(help="Where the model runs (cpu, cuda, cuda:1).")] = "cpu",
) -> None:
    """Draw spatial-linking attention maps: per sample, the person, object and union boxes' attention.

    Each box token's head-averaged attention over the visual tokens inside its box, upsampled onto
    the image: one PNG of three panels per sample in OUT/maps/, and OUT/attention.parquet listing them.
    """
    written = draw_attention_maps(run, dataset, out, limit=limit, sample_ids=sample_id, device=device)
    typer.echo(f"{written.samples} attention maps in {written.out / MAPS}; table {written.out / TABLE}")
