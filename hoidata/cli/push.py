"""``hoidata push``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from hoidata.cli.apps import examples, new_app
from hoidata.errors import HoidataError
from hoidata.publish import DEFAULT_MAX_SHARD_SIZE, format_tree
from hoidata.publish import push as push_dataset

app = new_app()


@app.command(
    epilog=examples(
        "hoidata push data/hico-train data/hico-test --repo-id org/hico-det --dry-run --out hub/hico-det",
        "hoidata push data/cot-sft --repo-id org/hico-cot-sft --private",
        "hoidata push data/hico-test --repo-id org/hico-det --revision v2 --max-shard-size 1GB",
    )
)
def push(
    dataset_dirs: Annotated[
        list[Path],
        typer.Argument(
            metavar="DATASET_DIR",
            help="Dataset directories to publish, one split each (e.g. train and test).",
            show_default=False,
        ),
    ],
    repo_id: Annotated[
        str, typer.Option("--repo-id", help="Hub dataset repository, NAMESPACE/NAME.", show_default=False)
    ],
    private: Annotated[bool, typer.Option("--private", help="Create the repository as private.")] = False,
    token: Annotated[
        str | None,
        typer.Option(
            help="Hub token (default: HF_TOKEN, else the cached login); never printed.", show_default=False
        ),
    ] = None,
    revision: Annotated[
        str | None, typer.Option(help="Branch to commit to (created if missing; default: main).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Build the repository tree into --out and upload nothing.")
    ] = False,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Where to build the tree: required with --dry-run; for an upload it is kept (default: a "
            "temporary folder under TMPDIR, which must hold a copy of the dataset with its images).",
        ),
    ] = None,
    max_shard_size: Annotated[
        str, typer.Option(help="Largest Parquet shard, e.g. 500MB or 2GB.")
    ] = DEFAULT_MAX_SHARD_SIZE,
    images: Annotated[
        Path | None, typer.Option("--images", "-i", help="Image root (default: the one in each manifest).")
    ] = None,
    license: Annotated[
        str | None, typer.Option(help="License id for the card, e.g. cc-by-4.0.", show_default=False)
    ] = None,
    examples: Annotated[int, typer.Option(help="Rendered examples in the card.")] = 3,
) -> None:
    """Publish dataset directories to the Hugging Face Hub.

    Parquet shards with embedded images and `datasets` Features, a dataset card with rendered
    examples, and the manifests.
    """
    if dry_run and out is None:
        raise HoidataError("--dry-run needs --out DIR (where the tree is built)")

    def show(tree: Path, files: list[Path]) -> None:
        typer.echo(f"repository tree for {repo_id} in {tree}:\n{format_tree(tree, files)}")

    result = push_dataset(
        dataset_dirs,
        repo_id,
        private=private,
        token=token,
        revision=revision,
        dry_run_dir=out if dry_run else None,
        staging_dir=out,
        max_shard_size=max_shard_size,
        examples=examples,
        image_root=images,
        license=license,
        on_built=show,
    )
    if result.url is None:
        typer.echo("dry run: nothing uploaded")
    else:
        commit = f" (commit {result.commit[:12]})" if result.commit else ""
        typer.echo(f"pushed to {result.url}{commit}")
