"""``hoidata show``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hoidata.cli.apps import examples, new_app
from hoidata.show import ShowOptions, write_site
from hoidata.show.serve import serve as serve_site

app = new_app()


@app.command(
    epilog=examples(
        "hoidata show data/demo",
        "hoidata show data/hico-test -o sites/hico-test --limit 2000",
        "hoidata show data/cot --filter status=answered --filter 'rewards.accuracy<1'",
        "hoidata show data/sft-cof --filter verb=ride --serve",
        "hoidata show report.json --pr-class 'ride bicycle' --pr-class 'hold cup'",
    )
)
def show(
    directory: Annotated[
        Path,
        typer.Argument(
            help="A dataset directory, a folder of them, or an evaluation report (JSON).", show_default=False
        ),
    ],
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Where the site goes (default: NAME-site beside a dataset or report, DIR/site in a "
            "folder of outputs).",
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int | None, typer.Option(help="Records shown per dataset at most (default: all).")
    ] = None,
    filters: Annotated[
        list[str] | None,
        typer.Option(
            "--filter",
            metavar="FIELD OP VALUE",
            help="Show only records with FIELD OP VALUE (OP: = != > >= < <= ~ contains); a dotted path "
            "(rewards.accuracy, interactions.verb) or a bare field (verb); repeat: all must hold.",
            show_default=False,
        ),
    ] = None,
    page_size: Annotated[int, typer.Option(help="Cards per page.")] = 100,
    workers: Annotated[
        int | None, typer.Option(help="Processes making thumbnails (default: the cores, at most 8; 0: none).")
    ] = None,
    pr_class: Annotated[
        list[str] | None,
        typer.Option(
            "--pr-class",
            metavar="CLASS",
            help="HICO-DET class (name or id) whose precision-recall curve a report draws (default: the "
            "six with the most ground truth); repeat for more.",
            show_default=False,
        ),
    ] = None,
    serve: Annotated[bool, typer.Option(help="Then serve the site on 127.0.0.1 until Ctrl-C.")] = False,
    port: Annotated[int, typer.Option(help="Port for --serve (0: any free one).")] = 8000,
) -> None:
    """Write a static HTML gallery of any hoidata directory (datasets, rollouts, pairs, rejects, reports).

    Canonical and boxes datasets (boxes, labels, interactions), SFT samples (the boxes written in
    the text decoded through the profile and drawn on the image as the model sees it), gen-cot
    rollouts (turns, tool crops, reward parts, kept or filtered), preference pairs, predictions,
    rejects and evaluation reports (charts), with a summary page. The site opens from disk: nothing
    is fetched from the network. Thumbnails are made in parallel and reused on a rerun.
    """
    options = ShowOptions(
        limit=limit, filters=filters or [], page_size=page_size, workers=workers, pr_classes=pr_class or []
    )
    site = write_site(directory, out, options)
    typer.echo(
        f"show: {site.cards:,} records on {site.pages:,} pages from {len(site.entries)} "
        f"{'entry' if len(site.entries) == 1 else 'entries'}; thumbnails {site.thumbnails_made:,} made, "
        f"{site.thumbnails_reused:,} up to date ({site.seconds:.2f} s)"
    )
    for entry, gallery in site.entries:
        for note in gallery.notes:
            typer.echo(f"  {entry.name}: {note}")
    if site.thumbnails_failed:
        typer.echo(f"  {len(site.thumbnails_failed):,} unreadable images, e.g. {site.thumbnails_failed[0]}")
    typer.echo(f"  site: {site.index}")
    if serve:
        serve_site(site.index.parent, port)
