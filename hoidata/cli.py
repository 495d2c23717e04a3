"""The ``hoidata`` command line: one thin function per subcommand; heavy imports stay inside them."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from hoidata.errors import HoidataError

app = typer.Typer(
    name="hoidata",
    help="Human-object-interaction annotations → training data for vision-language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
    context_settings={"help_option_names": ["-h", "--help"]},
)
convert_app = typer.Typer(
    help="Convert raw annotations (HICO-DET, SWIG-HOI, HOI-QA) into a canonical HOI dataset directory.",
    no_args_is_help=True,
)
app.add_typer(convert_app, name="convert")


class HicoFormat(StrEnum):
    mat = "mat"
    ppdm = "ppdm"
    upt = "upt"


class HoiqaFormat(StrEnum):
    train = "train"
    test = "test"
    visor = "visor"


class Origin(StrEnum):
    one_based = "one-based"
    zero_based = "zero-based"
    continuous = "continuous"


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show full tracebacks on errors.")] = False,
) -> None:
    """hoidata: exact, resumable HOI data pipelines for Qwen-VL-style models."""


Annotations = Annotated[
    Path, typer.Option("--annotations", "-a", help="Annotation file.", show_default=False)
]
Images = Annotated[
    Path | None, typer.Option("--images", "-i", help="Image root; image paths are stored relative to it.")
]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output dataset directory.", show_default=False)]
Split = Annotated[
    str | None, typer.Option(help="Split name (default: 'train' or 'test' from the file name).")
]
BoxOriginOpt = Annotated[
    Origin | None,
    typer.Option(
        "--box-origin", help="Pixel convention of the file's boxes (default: per layout, see README)."
    ),
]
EmbedImages = Annotated[
    bool, typer.Option("--embed-images", help="Store each image's original bytes (no re-encoding).")
]
ImageCheck = Annotated[
    bool,
    typer.Option("--image-check/--no-image-check", help="Open each image header; reject missing/unreadable."),
]
ClipBoxes = Annotated[
    bool, typer.Option("--clip-boxes", help="Clamp boxes to the image instead of rejecting.")
]
ShardSize = Annotated[int, typer.Option(help="Records per Parquet shard.")]
Overwrite = Annotated[bool, typer.Option("--overwrite", help="Replace an existing output directory.")]


def _split_from_name(split: str | None, path: Path) -> str:
    if not path.exists():  # the first thing to tell, before any question about the split
        raise HoidataError("file not found", file=str(path))
    if split:
        return split
    name = path.name.lower()
    for candidate in ("test", "train", "val", "dev"):
        if candidate in name:
            return {"val": "validation", "dev": "validation"}.get(candidate, candidate)
    raise HoidataError("cannot tell the split from the file name: pass --split", file=str(path))


def _run_convert(
    source: str, annotations: Path, images: Path | None, split: str | None, **kwargs: object
) -> None:
    """Shared by the convert commands: plain values for the config, then convert and summarise."""
    from hoidata.pipelines.convert import ConvertConfig, convert

    out = kwargs.pop("out")
    overwrite = kwargs.pop("overwrite")
    options = {k: v.value if isinstance(v, StrEnum) else v for k, v in kwargs.items()}
    cfg = ConvertConfig(
        source=source,
        annotations=str(annotations),
        images=str(images) if images else None,
        split=_split_from_name(split, annotations),
        **options,  # type: ignore[arg-type]
    )
    manifest = convert(cfg, out, overwrite=bool(overwrite))  # type: ignore[arg-type]
    _print_summary(manifest, Path(out))  # type: ignore[arg-type]


def _print_summary(manifest: object, out: Path) -> None:
    from collections import Counter

    import pyarrow.parquet as pq

    counts = manifest.counts  # type: ignore[attr-defined]
    secs = manifest.timings.get("total_s", 0.0)  # type: ignore[attr-defined]
    typer.echo(
        f"{manifest.stage}: {counts['in']:,} records in → {counts['out']:,} out, {counts['rejected']:,} rejected"  # type: ignore[attr-defined]
        f" ({secs:.2f} s)\n  dataset: {out}"
    )
    if counts["rejected"]:
        rejects = pq.read_table(out / "rejects.parquet", columns=["field", "reason"]).to_pylist()
        top = Counter(r["reason"].split(":")[0] for r in rejects).most_common(3)
        typer.echo(f"  rejects: {out / 'rejects.parquet'} — " + "; ".join(f"{c} × {r}" for r, c in top))
    for note in manifest.extra.get("notes", []):  # type: ignore[attr-defined]
        typer.echo(f"  note: {note}")


@convert_app.command(
    "hico",
    epilog="""Examples:

    hoidata convert hico -a anno_bbox.mat --split test -i hico_20160224_det/images/test2015 -o data/hico-test

    hoidata convert hico -a test_hico.json -i images/test2015 -o data/hico-test --embed-images

    hoidata convert hico -a trainval_hico.json --box-origin zero-based -i images/train2015 -o data/hico-train
""",
)
def convert_hico(
    annotations: Annotations,
    out: Out,
    images: Images = None,
    split: Split = None,
    format: Annotated[
        HicoFormat | None, typer.Option("--format", help="Force a layout (default: detected).")
    ] = None,
    box_origin: BoxOriginOpt = None,
    embed_images: EmbedImages = False,
    image_check: ImageCheck = True,
    clip_boxes: ClipBoxes = False,
    shard_size: ShardSize = 20_000,
    overwrite: Overwrite = False,
) -> None:
    """HICO-DET: official `anno_bbox.mat`, PPDM/QPIC JSON or UPT JSON (auto-detected).

    Box origins by default: `mat` and `upt` one-based (official MATLAB pixels); `ppdm` one-based
    (true of `test_hico.json`; `trainval_hico.json` is believed to be zero-based: say so with
    `--box-origin zero-based`).
    """
    _run_convert(
        source="hico",
        annotations=annotations,
        images=images,
        split=split,
        format=format,
        box_origin=box_origin,
        embed_images=embed_images,
        image_check=image_check,
        clip_boxes=clip_boxes,
        shard_size=shard_size,
        out=out,
        overwrite=overwrite,
    )


@convert_app.command(
    "swig",
    epilog="""Examples:

    hoidata convert swig -a swig_trainval_1000.json -i swig/images_512 -o data/swig-train

    hoidata convert swig -a swig_test_1000.json -i swig/images_512 -o data/swig-test --embed-images
""",
)
def convert_swig(
    annotations: Annotations,
    out: Out,
    images: Images = None,
    split: Split = None,
    box_origin: BoxOriginOpt = None,
    embed_images: EmbedImages = False,
    image_check: ImageCheck = True,
    clip_boxes: ClipBoxes = False,
    shard_size: ShardSize = 20_000,
    overwrite: Overwrite = False,
) -> None:
    """SWIG-HOI JSON (`box_annotations`, `hoi_annotations`); boxes are continuous pixels by default."""
    _run_convert(
        source="swig",
        annotations=annotations,
        images=images,
        split=split,
        box_origin=box_origin,
        embed_images=embed_images,
        image_check=image_check,
        clip_boxes=clip_boxes,
        shard_size=shard_size,
        out=out,
        overwrite=overwrite,
    )


@convert_app.command(
    "hoiqa",
    epilog="""Examples:

    hoidata convert hoiqa -a epic-kitchens-train.json -i EPIC_Kitchens/frames -o data/hoiqa-epic-train

    hoidata convert hoiqa -a epic-visor-test.json -i VISOR -o data/hoiqa-visor --image-size 1920x1080
""",
)
def convert_hoiqa(
    annotations: Annotations,
    out: Out,
    images: Images = None,
    split: Split = None,
    format: Annotated[
        HoiqaFormat | None,
        typer.Option("--format", help="train (conversations), test (dict) or visor (list)."),
    ] = None,
    image_size: Annotated[
        str | None, typer.Option(help="WxH used when an image's size is unknown (e.g. 456x256 for EPIC).")
    ] = None,
    embed_images: EmbedImages = False,
    image_check: ImageCheck = True,
    shard_size: ShardSize = 20_000,
    overwrite: Overwrite = False,
) -> None:
    """HOI-QA (HOI-Ref): train conversations with `{<x1><y1><x2><y2>}` 0–100 boxes, test dicts, VISOR list."""
    size = None
    if image_size:
        try:
            w, h = (int(v) for v in image_size.lower().split("x"))
            size = (w, h)
        except ValueError:
            raise HoidataError(f"--image-size must look like 456x256, got {image_size!r}") from None
    _run_convert(
        source="hoiqa",
        annotations=annotations,
        images=images,
        split=split,
        format=format,
        image_size=size,
        embed_images=embed_images,
        image_check=image_check,
        shard_size=shard_size,
        out=out,
        overwrite=overwrite,
    )


@app.command(epilog="Example:\n\n    hoidata demo --out data/demo")
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Where the demo writes everything.")] = Path(
        "data/demo"
    ),
) -> None:
    """Run the whole chain on a small synthetic dataset that hoidata draws itself (CPU, about a minute)."""
    from hoidata.pipelines.demo import run_demo

    run_demo(out)


def main() -> None:
    """Entry point: user errors become one line on stderr and exit code 2 (``--debug`` shows the traceback)."""
    debug = "--debug" in sys.argv[1:] or bool(os.environ.get("HOIDATA_DEBUG"))
    try:
        app(args=[a for a in sys.argv[1:] if a != "--debug"])  # --debug is accepted anywhere on the line
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
    except KeyboardInterrupt:
        typer.echo("interrupted: rerun the same command to resume", err=True)
        sys.exit(130)
    except SystemExit as e:
        if e.code == 130:  # typer turns Ctrl-C inside a command into exit code 130, silently
            typer.echo("interrupted: rerun the same command to resume", err=True)
        raise


if __name__ == "__main__":
    main()
