"""``hoidata train sft|grpo|dpo|merge``."""

from __future__ import annotations

import subprocess
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from hoidata.cli.apps import examples, new_app
from hoidata.cli.params import Out
from hoidata.trainers.launch import format_command, launch_command, needs_launcher, validate_command
from hoidata.trainers.merge import merge_lora
from hoidata.trainers.recipe import load_recipe
from hoidata.trainers.run import train


class TrainBackend(StrEnum):
    ddp = "ddp"
    zero2 = "zero2"
    zero3 = "zero3"
    fsdp = "fsdp"


app = new_app(help="Train Qwen VL models on TRL from a YAML recipe (sft, grpo, dpo), and merge LoRA.")


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
    recipe = load_recipe(config, list(ctx.args), method=method)
    if not needs_launcher(num_gpus, nodes):
        if print_only:
            typer.echo(f"python -m hoidata.trainers.run {config} (one process)")
            return
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


def _train_examples(m: str) -> str:
    return examples(
        f"hoidata train {m} --config recipes/{m}.yaml",
        f"hoidata train {m} --config recipes/{m}.yaml --trainer.learning_rate 1e-5 --data data/other",
        f"hoidata train {m} --config recipes/{m}.yaml --num-gpus 8 --backend zero3",
        f"hoidata train {m} --config recipes/{m}.yaml --resume",
    )


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
    app.command(method, context_settings=EXTRA, epilog=_train_examples(method))(command)


_train_command(
    "sft", "Supervised fine-tuning on build-sft / filter sft data (tool turns and crops included)."
)
_train_command(
    "grpo", "GRPO with the HOI tool environment and the hierarchical reward, on boxes or SFT prompts."
)
_train_command("dpo", "DPO on filter prefs pairs.")


@app.command("merge", epilog=examples("hoidata train merge runs/sft-lora --out runs/sft-merged"))
def train_merge(
    adapter: Annotated[Path, typer.Argument(help="A LoRA run's output directory.", show_default=False)],
    out: Out,
    base_model: Annotated[str | None, typer.Option(help="Base model (default: the adapter's).")] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing output directory.")
    ] = False,
) -> None:
    """Merge LoRA weights into the base model and save it with the run's processor."""
    merged = merge_lora(adapter, out, base_model=base_model, overwrite=overwrite)
    typer.echo(f"merged model saved to {merged}")
