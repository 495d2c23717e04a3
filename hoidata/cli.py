"""The ``hoidata`` command line: one thin function per subcommand; heavy imports stay inside them."""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from hoidata.errors import HoidataError

# hoidata.tools.environment.TOOL_NAMES, spelled out: `hoidata --help` imports no tool code
ALL_TOOLS = "analyze_spatial,detect_humans,detect_objects,imagine,zoom_in"

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
        + (f", {counts['rows']:,} rows written" if "rows" in counts else "")
        + f" ({secs:.2f} s)\n  dataset: {out}"
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


class ProfileName(StrEnum):
    qwen2_vl = "qwen2-vl"
    qwen2_5_vl = "qwen2.5-vl"
    qwen3_vl = "qwen3-vl"


class NoObject(StrEnum):
    person = "person"
    null = "null"


class SftTask(StrEnum):
    referring = "referring"
    grounding = "grounding"
    detection = "detection"
    cof = "cof"
    spatial = "spatial"


class ImageMode(StrEnum):
    auto = "auto"
    embed = "embed"
    path = "path"
    resize = "resize"


InputDir = Annotated[Path, typer.Argument(help="Input dataset directory.", show_default=False)]


@app.command(
    "boxes",
    epilog="""Examples:

    hoidata boxes data/hico-train --profile qwen2.5-vl --out data/hico-train-boxes

    hoidata boxes data/hico-test --profile qwen3-vl --union-pad 8 --out data/hico-test-q3

    hoidata boxes data/swig-train --profile qwen3-vl --no-object null --max-pixels 1003520 -o data/swig-q3
""",
)
def boxes_cmd(
    input_dir: InputDir,
    out: Out,
    profile: Annotated[
        ProfileName, typer.Option(help="Model profile whose box frame to add.")
    ] = ProfileName.qwen2_5_vl,
    min_pixels: Annotated[
        int | None, typer.Option(help="Pixel budget floor (default: the profile's).")
    ] = None,
    max_pixels: Annotated[
        int | None, typer.Option(help="Pixel budget ceiling (default: the profile's).")
    ] = None,
    union_pad: Annotated[float, typer.Option(help="Pixels added on each side of the union box.")] = 0.0,
    union_pad_ratio: Annotated[
        float, typer.Option(help="Plus this share of the union's size on each side (0.1 = 10%).")
    ] = 0.0,
    no_object: Annotated[
        NoObject, typer.Option(help="Interactions without an object: use the person box, or leave null.")
    ] = NoObject.person,
    overwrite: Overwrite = False,
) -> None:
    """Add union ("interaction") boxes, refer boxes [person, object, union] and the profile's box frame."""
    from hoidata.pipelines.boxes import BoxesConfig, boxes

    cfg = BoxesConfig(
        profile=profile.value,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        union_pad=union_pad,
        union_pad_ratio=union_pad_ratio,
        no_object=no_object.value,
    )
    _print_summary(boxes(input_dir, out, cfg, overwrite=overwrite), out)


@app.command(
    "build-sft",
    epilog="""Examples:

    hoidata build-sft referring data/hico-train-boxes --out data/sft-referring

    hoidata build-sft grounding data/hico-train-boxes --out data/sft-grounding --images embed

    hoidata build-sft cof data/hico-train-boxes --tool-share 0.35 --images resize --out data/sft-cof

    hoidata build-sft cof data/hico-train-boxes --tools zoom_in --out data/sft-cof-zoom

    hoidata build-sft spatial data/hico-train-boxes --seed 1 --out data/sft-spatial
""",
)
def build_sft_cmd(
    task: Annotated[SftTask, typer.Argument(help="Which SFT task to build.", show_default=False)],
    input_dir: InputDir,
    out: Out,
    seed: Annotated[int, typer.Option(help="Seed of paraphrase choice and tool share (deterministic).")] = 0,
    images: Annotated[
        ImageMode,
        typer.Option(
            help="auto: as the input stores them; embed: original bytes; path: relative paths; "
            "resize: pre-resized to the profile's smart_resize size (same pixels for training and vLLM)."
        ),
    ] = ImageMode.auto,
    tool_share: Annotated[
        float, typer.Option(help="cof: share of samples that call the zoom-in tool.")
    ] = 0.35,
    tools: Annotated[
        str,
        typer.Option(
            help="cof: tools the prompt offers, comma-separated, zoom_in among them (as gen-cot --tools)."
        ),
    ] = ALL_TOOLS,
    overwrite: Overwrite = False,
) -> None:
    """Build a TRL-ready SFT dataset (`images` + `messages`) from a `hoidata boxes` dataset."""
    from hoidata.pipelines.build_sft import BuildSftConfig, build_sft

    cfg = BuildSftConfig(
        task=task.value, seed=seed, images=images.value, tool_share=tool_share, tools=_comma_list(tools)
    )
    _print_summary(build_sft(input_dir, out, cfg, overwrite=overwrite), out)


class EngineName(StrEnum):
    vllm = "vllm"
    openai = "openai"
    hf = "hf"


ModelOpt = Annotated[str, typer.Option(help="Model name or local checkpoint.", show_default=False)]
EngineOpt = Annotated[EngineName, typer.Option(help="Generation engine.")]
BaseUrl = Annotated[
    str | None, typer.Option(help="openai: the server, e.g. http://127.0.0.1:8000/v1.", show_default=False)
]
ApiKey = Annotated[
    str | None,
    typer.Option(
        envvar="OPENAI_API_KEY", help="openai: API key (local servers need none).", show_default=False
    ),
]
Tp = Annotated[int, typer.Option("--tp", help="vllm: tensor-parallel GPUs per engine.")]


def _engine_factory(
    engine: EngineName,
    model: str,
    family: str | None,
    min_pixels: int | None,
    max_pixels: int | None,
    base_url: str | None,
    api_key: str | None,
    tp: int,
    *,
    seed: int = 0,
    concurrency: int = 32,
) -> Any:
    """A zero-argument engine constructor (the model loads only if there is work), checked now."""
    from hoidata.engines import get_engine

    options: dict[str, object]
    if engine is EngineName.openai:
        if not base_url:
            raise HoidataError("--engine openai needs --base-url")
        options = {"base_url": base_url, "api_key": api_key, "concurrency": concurrency}
    elif engine is EngineName.vllm:  # the pixel budget of the data, so vLLM sees what training sees
        options = {
            "family": family,
            "tp": tp,
            "seed": seed,
            "min_pixels": min_pixels,
            "max_pixels": max_pixels,
        }
    else:
        options = {"family": family}
    return lambda: get_engine(engine.value, model, **options)


class CotTask(StrEnum):
    referring = "referring"
    grounding = "grounding"
    detection = "detection"
    spatial = "spatial"


@app.command(
    "gen-cot",
    epilog="""Examples:

    hoidata gen-cot data/hico-train-boxes --engine vllm --model Qwen/Qwen2.5-VL-72B-Instruct --tp 4 --n 4 --out data/cot

    hoidata gen-cot data/hico-train-boxes --engine openai --model M --base-url http://localhost:8000/v1 --out data/cot

    hoidata gen-cot data/demo/boxes --engine hf --model runs/tiny --n 2 --max-turns 3 --out data/cot

    hoidata gen-cot data/hico-train-boxes --engine openai --model M --base-url URL --shard 1/4 --out data/cot-1
""",
)
def gen_cot_cmd(
    input_dir: InputDir,
    out: Out,
    model: ModelOpt,
    engine: EngineOpt = EngineName.vllm,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    concurrency: Annotated[int, typer.Option(help="openai: requests in flight.")] = 32,
    tp: Tp = 1,
    task: Annotated[
        CotTask, typer.Option(help="Which build-sft questions to ask (boxes input).")
    ] = CotTask.referring,
    n: Annotated[int, typer.Option(help="Rollouts per prompt.")] = 4,
    max_turns: Annotated[int, typer.Option(help="Model turns per rollout, tool-calling ones included.")] = 3,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 0.7,
    top_p: Annotated[float, typer.Option(help="Nucleus sampling.")] = 0.95,
    max_tokens: Annotated[int, typer.Option(help="Tokens per model turn.")] = 1024,
    seed: Annotated[int, typer.Option(help="Seed; with the sample id it fixes every rollout.")] = 0,
    shard_size: Annotated[int, typer.Option(help="Prompts per output shard (the unit of resume).")] = 256,
    shard: Annotated[
        str, typer.Option(help="i/N: run every N-th shard starting at i (several machines).")
    ] = "0/1",
    limit: Annotated[int | None, typer.Option(help="Only the first prompts (a trial run).")] = None,
    tools: Annotated[
        str,
        typer.Option(help="Tools offered, comma-separated (e.g. zoom_in for chain-of-focus data)."),
    ] = ALL_TOOLS,
    dp: Annotated[
        int, typer.Option("--dp", help="Data-parallel engine processes on this machine (--tp GPUs each).")
    ] = 1,
    overwrite: Overwrite = False,
) -> None:
    """Generate tool-augmented chain-of-thought rollouts, scored with the GRPO rewards; rerun to resume."""
    if dp > 1:
        _gen_cot_data_parallel(dp, tp if engine is EngineName.vllm else 0, shard, out)
        return
    from hoidata.io import read_manifest
    from hoidata.pipelines.gen_cot import GenCotConfig, gen_cot

    spec = read_manifest(input_dir).config.get("profile_spec") or {}
    factory = _engine_factory(
        engine,
        model,
        spec.get("name"),
        spec.get("min_pixels"),
        spec.get("max_pixels"),
        base_url,
        api_key,
        tp,
        seed=seed,
        concurrency=concurrency,
    )
    cfg = GenCotConfig(
        engine=engine.value,
        model=model,
        task=task.value,
        n=n,
        max_turns=max_turns,
        temperature=temperature,
        top_p=top_p,
        max_tokens=max_tokens,
        seed=seed,
        shard_size=shard_size,
        shard=shard,
        limit=limit,
        tools=_comma_list(tools),
    )
    manifest = gen_cot(input_dir, out, cfg, factory, overwrite=overwrite)
    if manifest is None:
        typer.echo(f"shard {shard} written to {out}; the dataset completes when every shard has run")
    else:
        _print_summary(manifest, out)


def _gen_cot_data_parallel(dp: int, gpus_each: int, shard: str, out: Path) -> None:
    """Run this same command as ``dp`` processes, each on its own GPU group and every ``dp``-th
    shard (within this machine's ``--shard i/N``), all into ``out``; the last one finishes it."""
    import subprocess

    from hoidata.io import read_manifest
    from hoidata.pipelines.gen_cot import parse_shard

    index, count = parse_shard(shard)
    args = _without_options(sys.argv[1:], {"--dp": 1, "--shard": 1})
    procs = []
    for j in range(dp):
        env = dict(os.environ)
        if gpus_each:
            env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in range(j * gpus_each, (j + 1) * gpus_each))
        child = [*args, "--shard", f"{index * dp + j}/{count * dp}"]
        procs.append(subprocess.Popen([sys.executable, "-m", "hoidata", *child], env=env))
    failed = [j for j, p in enumerate(procs) if p.wait() != 0]
    if failed:
        raise HoidataError(
            f"data-parallel processes {failed} failed (see their output above); rerun to resume"
        )
    if (out / "manifest.json").is_file():
        _print_summary(read_manifest(out), out)
    else:
        typer.echo(f"shards written to {out}; the dataset completes when every machine's shards have run")


def _without_options(argv: list[str], drop: dict[str, int]) -> list[str]:
    """``argv`` without the named options (and their values; ``--opt=value`` too)."""
    out, skip = [], 0
    for token in argv:
        if skip:
            skip -= 1
            continue
        name = token.split("=", 1)[0]
        if name in drop:
            skip = 0 if "=" in token else drop[name]
            continue
        out.append(token)
    return out


@app.command(
    epilog="""Examples:

    hoidata predict data/hico-test --engine vllm --model runs/grpo --tp 4 --profile qwen2.5-vl --out preds/grpo

    hoidata predict data/hico-test --engine openai --base-url http://127.0.0.1:8000/v1 --model M --out preds/m

    hoidata predict data/hico-test --engine vllm --model runs/grpo-tools --tools zoom_in --max-turns 3 --out preds/t

    hoidata eval hico preds/grpo --gt data/hico-test
""",
)
def predict(
    input_dir: InputDir,
    out: Out,
    model: ModelOpt,
    profile: Annotated[
        ProfileName, typer.Option(help="How the model writes boxes and answers.")
    ] = ProfileName.qwen2_5_vl,
    engine: EngineOpt = EngineName.vllm,
    base_url: BaseUrl = None,
    api_key: ApiKey = None,
    tp: Tp = 1,
    min_pixels: Annotated[int | None, typer.Option(help="Pixel budget (default: the profile's).")] = None,
    max_pixels: Annotated[int | None, typer.Option(help="Pixel budget (default: the profile's).")] = None,
    max_tokens: Annotated[int, typer.Option(help="Tokens per answer.")] = 1024,
    temperature: Annotated[float, typer.Option(help="0: greedy.")] = 0.0,
    tools: Annotated[
        str,
        typer.Option(
            help="Tools offered at test time, comma-separated: zoom_in, imagine (none: one plain answer). "
            "The question then carries the gen-cot instruction."
        ),
    ] = "",
    max_turns: Annotated[int, typer.Option(help="With tools: model turns per image.")] = 3,
    overwrite: Overwrite = False,
) -> None:
    """Ask a model for every HOI in every image of a canonical dataset; write predictions for `eval hico`."""
    from hoidata.pipelines.predict import PredictConfig
    from hoidata.pipelines.predict import predict as run_predict
    from hoidata.profiles import get_profile

    budget = get_profile(profile.value, min_pixels, max_pixels)
    factory = _engine_factory(
        engine, model, profile.value, budget.min_pixels, budget.max_pixels, base_url, api_key, tp
    )
    cfg = PredictConfig(
        engine=engine.value,
        model=model,
        profile=profile.value,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        temperature=temperature,
        max_tokens=max_tokens,
        tools=_comma_list(tools),
        max_turns=max_turns,
    )
    _print_summary(run_predict(input_dir, out, cfg, factory, overwrite=overwrite), out)


train_app = typer.Typer(
    help="Train Qwen VL models on TRL from a YAML recipe (sft, grpo, dpo), and merge LoRA.",
    no_args_is_help=True,
)
app.add_typer(train_app, name="train")


class TrainBackend(StrEnum):
    ddp = "ddp"
    zero2 = "zero2"
    zero3 = "zero3"
    fsdp = "fsdp"


def _train(
    method: str,
    ctx: typer.Context,
    config: Path | None,
    resume: bool,
    num_gpus: int,
    nodes: int,
    node_rank: int,
    main_process_ip: str | None,
    backend: TrainBackend | None,
    print_only: bool,
) -> None:
    import subprocess

    from hoidata.trainers.launch import format_command, launch_command, needs_launcher, validate_command
    from hoidata.trainers.recipe import load_recipe

    recipe = load_recipe(config, list(ctx.args), method=method)
    if not needs_launcher(num_gpus, nodes):
        if print_only:
            typer.echo(f"python -m hoidata.trainers.run {config} (one process)")
            return
        from hoidata.trainers.run import train

        result = train(recipe, resume=resume)
        typer.echo(
            f"{result.global_step} steps, loss {result.training_loss:.4f}; saved to {recipe.output_dir}"
        )
        return
    effective = recipe.output_dir / "recipe.yaml"
    recipe.save(effective)  # every process reads the same effective recipe
    argv = launch_command(
        effective,
        num_gpus=num_gpus,
        backend=backend.value if backend else None,
        nodes=nodes,
        node_rank=node_rank,
        main_process_ip=main_process_ip,
    )
    if resume:
        argv.append("--resume")
    validate_command(argv)
    typer.echo(format_command(argv))
    if not print_only:
        raise typer.Exit(subprocess.call(argv))


_TRAIN_EXAMPLES = """Examples:

    hoidata train {m} --config recipes/{m}.yaml

    hoidata train {m} --config recipes/{m}.yaml --trainer.learning_rate 1e-5 --data data/other

    hoidata train {m} --config recipes/{m}.yaml --num-gpus 8 --backend zero3

    hoidata train {m} --config recipes/{m}.yaml --resume
"""
Config = Annotated[Path | None, typer.Option("--config", "-c", help="YAML recipe.", show_default=False)]
Resume = Annotated[bool, typer.Option(help="Continue from the last checkpoint in output_dir.")]
NumGpus = Annotated[int, typer.Option(help="GPUs per node; more than one launches through accelerate.")]
Nodes = Annotated[int, typer.Option(help="Machines (run the printed command on each, with its --node-rank).")]
NodeRank = Annotated[int, typer.Option(help="This machine's rank among --nodes.")]
MainIp = Annotated[str | None, typer.Option(help="Address of node 0 (multi-node).", show_default=False)]
Backend = Annotated[
    TrainBackend | None,
    typer.Option(help="ddp, DeepSpeed zero2/zero3 or fsdp (default: zero3 on several GPUs)."),
]
PrintOnly = Annotated[bool, typer.Option("--print-only", help="Print the launch command; run nothing.")]
EXTRA = {"allow_extra_args": True, "ignore_unknown_options": True}


def _train_command(method: str, doc: str) -> None:
    """Register ``train METHOD``: the three methods share their options and their launcher."""

    def command(
        ctx: typer.Context,
        config: Config = None,
        resume: Resume = False,
        num_gpus: NumGpus = 1,
        nodes: Nodes = 1,
        node_rank: NodeRank = 0,
        main_process_ip: MainIp = None,
        backend: Backend = None,
        print_only: PrintOnly = False,
    ) -> None:
        _train(method, ctx, config, resume, num_gpus, nodes, node_rank, main_process_ip, backend, print_only)

    command.__doc__ = doc + (
        " Any `--key value` after the options overrides the recipe (dotted keys: `--trainer.max_steps 10`)."
    )
    train_app.command(method, context_settings=EXTRA, epilog=_TRAIN_EXAMPLES.format(m=method))(command)


_train_command(
    "sft", "Supervised fine-tuning on build-sft / filter sft data (tool turns and crops included)."
)
_train_command(
    "grpo", "GRPO with the HOI tool environment and the hierarchical reward, on boxes or SFT prompts."
)
_train_command("dpo", "DPO on filter prefs pairs.")


@train_app.command("merge", epilog="Example:\n\n    hoidata train merge runs/sft-lora --out runs/sft-merged")
def train_merge(
    adapter: Annotated[Path, typer.Argument(help="A LoRA run's output directory.", show_default=False)],
    out: Out,
    base_model: Annotated[str | None, typer.Option(help="Base model (default: the adapter's).")] = None,
    overwrite: Overwrite = False,
) -> None:
    """Merge LoRA weights into the base model and save it with the run's processor."""
    from hoidata.trainers.merge import merge_lora

    merged = merge_lora(adapter, out, base_model=base_model, overwrite=overwrite)
    typer.echo(f"merged model saved to {merged}")


filter_app = typer.Typer(
    help="Select gen-cot rollouts: verified ones for SFT, or preference pairs.", no_args_is_help=True
)
app.add_typer(filter_app, name="filter")


@filter_app.command(
    "sft",
    epilog="""Examples:

    hoidata filter sft data/cot --out data/cot-sft

    hoidata filter sft data/cot --min-accuracy 1 --min-tool 0.5 --per-prompt 2 --out data/cot-sft
""",
)
def filter_sft_cmd(
    input_dir: InputDir,
    out: Out,
    min_accuracy: Annotated[float | None, typer.Option(help="Lowest accuracy reward kept.")] = 1.0,
    min_format: Annotated[float | None, typer.Option(help="Lowest format reward kept.")] = 1.0,
    min_tool: Annotated[float | None, typer.Option(help="Lowest tool reward kept.")] = None,
    min_spatial: Annotated[float | None, typer.Option(help="Lowest spatial reward kept.")] = None,
    min_total: Annotated[float | None, typer.Option(help="Lowest total reward kept.")] = None,
    per_prompt: Annotated[int, typer.Option(help="Rollouts kept per prompt at most (best first).")] = 1,
    keep_duplicates: Annotated[bool, typer.Option(help="Keep identical rollouts of a prompt.")] = False,
    overwrite: Overwrite = False,
) -> None:
    """Keep rollouts whose rewards pass the thresholds, as a TRL SFT dataset (tool turns included)."""
    from hoidata.pipelines.filter import FilterSftConfig, filter_sft

    cfg = FilterSftConfig(
        min_accuracy, min_format, min_tool, min_spatial, min_total, per_prompt, not keep_duplicates
    )
    _print_summary(filter_sft(input_dir, out, cfg, overwrite=overwrite), out)


@filter_app.command(
    "prefs",
    epilog="""Example:

    hoidata filter prefs data/cot --min-margin 1.0 --out data/cot-dpo
""",
)
def filter_prefs_cmd(
    input_dir: InputDir,
    out: Out,
    min_margin: Annotated[float, typer.Option(help="Chosen total reward minus rejected, at least.")] = 0.5,
    min_chosen_accuracy: Annotated[
        float, typer.Option(help="Accuracy reward the chosen rollout needs.")
    ] = 1.0,
    pairs_per_prompt: Annotated[int, typer.Option(help="Pairs per prompt at most.")] = 1,
    overwrite: Overwrite = False,
) -> None:
    """Pair a high-reward and a low-reward rollout of each prompt, as a TRL DPO dataset.

    Turns both rollouts share (the same zoom and its crop) join the prompt; each completion runs
    from where they differ to its next tool image, since TRL's DPO gives images to the prompt only.
    """
    from hoidata.pipelines.filter import FilterPrefsConfig, filter_prefs

    cfg = FilterPrefsConfig(min_margin, min_chosen_accuracy, pairs_per_prompt)
    _print_summary(filter_prefs(input_dir, out, cfg, overwrite=overwrite), out)


@app.command(epilog="Examples:\n\n    hoidata demo --out data/demo\n\n    hoidata demo --cold-start")
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
    """Run the whole chain on a small synthetic dataset that hoidata draws itself (CPU, about a minute)."""
    from hoidata.pipelines.demo import run_demo

    run_demo(out, cold=cold_start)


@app.command(
    epilog="""Examples:

    hoidata push data/hico-train data/hico-test --repo-id org/hico-det --dry-run --out hub/hico-det

    hoidata push data/cot-sft --repo-id org/hico-cot-sft --private

    hoidata push data/hico-test --repo-id org/hico-det --revision v2 --max-shard-size 1GB
""",
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
    max_shard_size: Annotated[str, typer.Option(help="Largest Parquet shard, e.g. 500MB or 2GB.")] = "500MB",
    images: Annotated[
        Path | None, typer.Option("--images", "-i", help="Image root (default: the one in each manifest).")
    ] = None,
    license: Annotated[
        str | None, typer.Option(help="License id for the card, e.g. cc-by-4.0.", show_default=False)
    ] = None,
    examples: Annotated[int, typer.Option(help="Rendered examples in the card.")] = 3,
) -> None:
    """Publish dataset directories to the Hugging Face Hub: Parquet shards with embedded images and
    `datasets` Features, a dataset card with rendered examples, and the manifests."""
    from hoidata.pipelines.publish import format_tree
    from hoidata.pipelines.publish import push as push_dataset

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


Completions = Annotated[
    Path,
    typer.Argument(
        help="JSONL or Parquet with `sample_id` and `completion` (text, or a list of messages).",
        show_default=False,
    ),
]
SkipMissing = Annotated[
    bool, typer.Option("--skip-missing", help="Leave out samples without a completion (default: misses).")
]


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
    profile: Annotated[
        ProfileName | None, typer.Option(help="Model profile (default: the one the dataset was built for).")
    ] = None,
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
    """Score completions with the hierarchical reward GRPO trains with, and print the mean of each part:
    R = accuracy + format + 1[accuracy > 0]·(tool + spatial), weighted."""
    import dataclasses
    import json

    from hoidata.pipelines.score import score_file
    from hoidata.rewards import RewardConfig

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


eval_app = typer.Typer(help="Evaluate predictions against a ground-truth dataset.", no_args_is_help=True)
app.add_typer(eval_app, name="eval")


class HicoVariant(StrEnum):
    official = "official"
    numpy_arange = "numpy-arange"
    decimal = "decimal"
    qpic = "qpic"
    upt = "upt"
    thid = "thid"


class HicoSetting(StrEnum):
    default = "default"
    known_object = "known-object"


class ZeroShotSplit(StrEnum):
    rare_first = "rare_first"
    non_rare_first = "non_rare_first"
    unseen_object = "unseen_object"
    unseen_verb = "unseen_verb"


class PredFormat(StrEnum):
    auto = "auto"
    hoidata = "hoidata"
    ppdm = "ppdm"


class Ranking(StrEnum):
    score = "score"
    rank = "rank"


class PpdmIds(StrEnum):
    coco91 = "coco91"
    coco80 = "coco80"


@eval_app.command(
    "hico",
    epilog="""Examples:

    hoidata eval hico preds/ --gt data/hico-test

    hoidata eval hico preds.parquet --gt data/hico-test --setting known-object --json report.json

    hoidata eval hico preds.parquet --gt data/hico-test --zero-shot rare_first --variant qpic

    hoidata eval hico ppdm_results.json --gt data/hico-test --box-origin zero-based
""",
)
def eval_hico_cmd(
    predictions: Annotated[
        Path,
        typer.Argument(
            help="hoidata predictions (dataset directory or Parquet) or PPDM/QPIC result JSON.",
            show_default=False,
        ),
    ],
    gt: Annotated[
        Path, typer.Option("--gt", help="Converted HICO-DET dataset directory.", show_default=False)
    ],
    setting: Annotated[HicoSetting, typer.Option(help="Default, or Known-Object.")] = HicoSetting.default,
    zero_shot: Annotated[
        ZeroShotSplit | None, typer.Option("--zero-shot", help="Also report Seen / Unseen for this split.")
    ] = None,
    variant: Annotated[
        HicoVariant, typer.Option(help="official (MATLAB), or a named Python-port variant.")
    ] = HicoVariant.official,
    ranking: Annotated[
        Ranking, typer.Option(help="score: given scores (answer rank when none); rank: answer order only.")
    ] = Ranking.score,
    format: Annotated[
        PredFormat, typer.Option("--format", help="Predictions format (auto: .json is PPDM).")
    ] = PredFormat.auto,
    box_origin: Annotated[
        Origin, typer.Option("--box-origin", help="PPDM JSON: pixel convention of the boxes.")
    ] = Origin.one_based,
    ids: Annotated[
        PpdmIds, typer.Option(help="PPDM JSON: coco91 ids + verbs 1..117, or coco80 indices + verbs 0..116.")
    ] = PpdmIds.coco91,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the full report (every per-class AP) here.")
    ] = None,
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Write per-class AP against training frequency as a PNG.")
    ] = None,
    train: Annotated[
        Path | None,
        typer.Option(
            help="Converted training set, for --plot's frequencies (default: test pairs per class)."
        ),
    ] = None,
) -> None:
    """HICO-DET mAP (Full / Rare / Non-Rare, Seen / Unseen) with the official MATLAB protocol by default."""
    from hoidata.eval.hico import eval_hico

    report = eval_hico(
        predictions,
        gt,
        variant=variant.value,
        setting=setting.value,
        zero_shot=zero_shot.value if zero_shot else None,
        ranking=ranking.value,
        format=format.value,
        box_origin=box_origin.value,
        ids=ids.value,
    )
    typer.echo(report.format_table())
    if json_out is not None:
        report.write_json(json_out)
        typer.echo(f"  report: {json_out}")
    if plot is not None:
        from hoidata.eval.plot import plot_ap_vs_frequency, training_frequency

        freq = training_frequency(train, len(report.ap)) if train else report.npos
        label = (
            "training pairs per class (+1, log scale)" if train else "test pairs per class (+1, log scale)"
        )
        full = report.map.get("full") or 0.0
        title = f"HICO-DET per-class AP ({report.protocol.name}, {report.setting}): mAP {100 * full:.2f}"
        plot_ap_vs_frequency(report.ap, freq, report.rare, report.scored, plot, title=title, x_label=label)
        typer.echo(f"  plot: {plot}")


@eval_app.command(
    "grounding",
    epilog="""Examples:

    hoidata eval grounding preds/grounding.jsonl --gt data/sft-grounding

    hoidata eval grounding preds/grounding.parquet --gt data/sft-grounding --coco --json report.json
""",
)
def eval_grounding_cmd(
    completions: Completions,
    gt: Annotated[
        Path,
        typer.Option("--gt", help="The grounding SFT dataset the prompts came from.", show_default=False),
    ],
    coco: Annotated[
        bool,
        typer.Option(
            "--coco", help="COCO-style AR (per category, first 100 answers) instead of pooled recall."
        ),
    ] = False,
    profile: Annotated[
        ProfileName | None, typer.Option(help="Model profile (default: the one the dataset was built for).")
    ] = None,
    skip_missing: SkipMissing = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the full report (per threshold and category) here.")
    ] = None,
) -> None:
    """Grounding AR over IoU 0.50:0.05:0.95 (AR@0.5, AR@0.75, by object size); pooled recall by default."""
    from hoidata.eval.grounding import eval_grounding

    report = eval_grounding(
        completions, gt, coco=coco, profile=profile.value if profile else None, skip_missing=skip_missing
    )
    typer.echo(report.format_table())
    if json_out is not None:
        report.write_json(json_out)
        typer.echo(f"  report: {json_out}")


@eval_app.command(
    "referring",
    epilog="""Examples:

    hoidata eval referring preds/referring.jsonl --gt data/sft-referring

    hoidata eval referring preds/referring.parquet --gt data/sft-referring --json report.json

    hoidata eval referring preds.jsonl --gt data/sft-referring --bertscore-model models/roberta-large
""",
)
def eval_referring_cmd(
    completions: Completions,
    gt: Annotated[
        Path,
        typer.Option("--gt", help="The referring SFT dataset the prompts came from.", show_default=False),
    ],
    skip_missing: SkipMissing = False,
    bertscore_model: Annotated[
        str | None,
        typer.Option(help="Local model directory for BERTScore (needs the bert_score package; no download)."),
    ] = None,
    bertscore_layers: Annotated[
        int | None, typer.Option(help="BERTScore: the layer to use (roberta-large: 17).")
    ] = None,
    bertscore_rescale: Annotated[
        bool, typer.Option("--bertscore-rescale", help="BERTScore: rescale with the model's baseline.")
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the full report (every verb's counts) here.")
    ] = None,
) -> None:
    """Referring: exact match of the named verb set, verb precision/recall/F1, optional BERTScore."""
    from hoidata.eval.referring import eval_referring

    report = eval_referring(
        completions,
        gt,
        skip_missing=skip_missing,
        bertscore_model=bertscore_model,
        bertscore_layers=bertscore_layers,
        bertscore_rescale=bertscore_rescale,
    )
    typer.echo(report.format_table())
    if json_out is not None:
        report.write_json(json_out)
        typer.echo(f"  report: {json_out}")


class SwigVariant(StrEnum):
    choir = "choir"
    thid = "thid"


class TieOrder(StrEnum):
    reversed = "reversed"
    input = "input"


@eval_app.command(
    "swig",
    epilog="""Examples:

    hoidata eval swig preds.parquet --gt data/swig-test

    hoidata eval swig preds/ --gt data/swig-test --variant thid --json report.json
""",
)
def eval_swig_cmd(
    predictions: Annotated[
        Path,
        typer.Argument(help="hoidata predictions (dataset directory or Parquet).", show_default=False),
    ],
    gt: Annotated[
        Path, typer.Option("--gt", help="Converted SWIG-HOI dataset directory.", show_default=False)
    ],
    variant: Annotated[
        SwigVariant,
        typer.Option(help="choir (the benchmark's own evaluator; Full without novel) or thid (Full = all)."),
    ] = SwigVariant.choir,
    ranking: Annotated[
        Ranking, typer.Option(help="score: given scores (answer rank when none); rank: answer order only.")
    ] = Ranking.score,
    ties: Annotated[
        TieOrder | None,
        typer.Option(help="Equal scores: reversed input order (both reference evaluators) or input order."),
    ] = None,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the full report (every per-class AP) here.")
    ] = None,
) -> None:
    """SWIG-HOI mAP (Full / Rare / Non-rare / Novel over the 5,539 evaluation classes)."""
    from hoidata.eval.swig import eval_swig

    report = eval_swig(
        predictions, gt, variant=variant.value, ranking=ranking.value, ties=ties.value if ties else None
    )
    typer.echo(report.format_table())
    if json_out is not None:
        report.write_json(json_out)
        typer.echo(f"  report: {json_out}")


@eval_app.command(
    "hoiqa",
    epilog="""Examples:

    hoidata eval hoiqa preds/hoiqa.jsonl --gt data/hoiqa-visor

    hoidata eval hoiqa preds.jsonl --gt data/hoiqa-epic-test --image-size 1920x1080 --json report.json
""",
)
def eval_hoiqa_cmd(
    completions: Annotated[
        Path,
        typer.Argument(
            help="JSONL or Parquet with `sample_id` (row id + `#` + QA item index) and `completion`.",
            show_default=False,
        ),
    ],
    gt: Annotated[Path, typer.Option("--gt", help="Converted HOI-QA dataset directory.", show_default=False)],
    skip_missing: SkipMissing = False,
    image_size: Annotated[
        str | None,
        typer.Option(help="WxH for rows without a size (reference: 1920x1080 EPIC/VISOR, 1440x1080 Ego4D)."),
    ] = None,
    truncate: Annotated[
        bool, typer.Option("--truncate", help="Truncate rescaled boxes to integer pixels, as the reference.")
    ] = False,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Write the full report (every item) here.")
    ] = None,
) -> None:
    """HOI-QA: noun accuracy, box accuracy (IoU > 0.5) and mean IoU; ho_ref / i_ref and 8 subsets."""
    from hoidata.eval.hoiqa import eval_hoiqa

    size = None
    if image_size:
        try:
            w, h = (int(v) for v in image_size.lower().split("x"))
            size = (w, h)
        except ValueError:
            raise HoidataError(f"--image-size must look like 1920x1080, got {image_size!r}") from None
    report = eval_hoiqa(completions, gt, skip_missing=skip_missing, image_size=size, truncate=truncate)
    typer.echo(report.format_table())
    if json_out is not None:
        report.write_json(json_out)
        typer.echo(f"  report: {json_out}")


def _comma_list(text: str) -> tuple[str, ...]:
    """``"zoom_in, imagine"`` → ``("zoom_in", "imagine")``."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


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
