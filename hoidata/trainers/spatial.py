"""Training with a spatial-linking module: data checks, attaching, saving, resuming.

The module is registered inside the model before the trainer wraps it, so the optimizer, DeepSpeed
(ZeRO-2/3 partition it like any submodule) and accelerate see it; PEFT freezes every non-adapter
weight, so the module is made trainable again once the trainer is built. It is saved as
``spatial_linking.safetensors`` + ``spatial_linking.json`` beside the adapter (or the full model,
whose own checkpoint leaves it out), in every ``checkpoint-N`` too, from which ``--resume`` reloads it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hoidata.errors import HoidataError
from hoidata.models.spatial_config import WEIGHTS_FILE, config_from_model, settings_text
from hoidata.profiles import Profile
from hoidata.sft.spatial_prompt import RELATIVE, box_problem, frame_extent, prompt_boxes
from hoidata.trainers.recipe import Recipe

PROMPT_COLUMN = {"sft": "messages", "grpo": "prompt", "dpo": "prompt"}
EXCLUDE_FROM_LORA = r".*spatial_linking\..*"  # the module trains fully: no adapters on its layers


def check_spatial_data(recipe: Recipe, data: Any, profile: Profile) -> int:
    """One line naming the sample and field for prompts the module cannot link: box tokens that do
    not pair up (with each other, or with ``refer_boxes``), a box outside the image, boxes in another
    pixel budget's frame; and an error when no prompt links any box (the module would never train).
    Returns how many samples link boxes."""
    if recipe.method == "grpo" and recipe.trainer.get("use_vllm"):
        raise HoidataError(
            "spatial_linking with trainer.use_vllm: vLLM would generate the rollouts without the module; "
            "train with transformers generation (use_vllm: false)",
            field="spatial_linking",
        )
    column = PROMPT_COLUMN[recipe.method]
    wanted = [column, "sample_id", "refer_boxes", "width", "height", "resized_width", "resized_height"]
    rows = data.select_columns([c for c in wanted if c in data.column_names])
    linked = 0
    for k, row in enumerate(rows):
        sample = str(row.get("sample_id", k))
        try:
            boxes = prompt_boxes(row[column])
        except ValueError as e:
            raise HoidataError(str(e), record=sample, field=column) from None
        if not boxes:
            continue
        linked += 1
        _pairs_with_refer_boxes(boxes, row.get("refer_boxes"), sample)
        _inside_frame(boxes, row, profile, sample, column)
    if not linked:
        raise HoidataError(
            "spatial_linking is on, but no prompt holds <|box_start|>…<|box_end|>: the module would never "
            "train (build the data with `hoidata build-sft spatial`)",
            file=", ".join(recipe.data),
            field=column,
        )
    return linked


def _pairs_with_refer_boxes(boxes: list[list[float]], refer: Any, sample: str) -> None:
    if not refer:
        return
    if len(boxes) not in (1, len(refer)) or any(
        [float(v) for v in refer[k]] != box for k, box in enumerate(boxes)
    ):
        raise HoidataError(
            f"the prompt's boxes {boxes} do not pair up with refer_boxes {[list(r) for r in refer]}",
            record=sample,
            field="refer_boxes",
        )


def _inside_frame(
    boxes: list[list[float]], row: dict[str, Any], profile: Profile, sample: str, column: str
) -> None:
    if not (row.get("width") and row.get("height")):
        return  # no size stored: the forward checks each box against its image grid
    rw, rh = profile.resized([row["width"]], [row["height"]])
    stored = (row.get("resized_width"), row.get("resized_height"))
    if profile.frame != RELATIVE and stored[0] and stored != (int(rw[0]), int(rh[0])):
        raise HoidataError(
            f"the boxes are on a {stored[0]}x{stored[1]} image, the recipe's pixel budget resizes it to "
            f"{rw[0]}x{rh[0]}: build the data with the training budget",
            record=sample,
            field="resized_width",
        )
    width, height = frame_extent(str(profile.frame), rw[0], rh[0])
    for k, box in enumerate(boxes):
        problem = box_problem(box, width, height, str(profile.frame))
        if problem:
            raise HoidataError(f"box {k}: {problem}", record=sample, field=column)


def attach_for_training(recipe: Recipe, model: Any, processor: Any, profile: Profile) -> Any:
    """Attach a fresh module (the recipe's settings, the profile's box frame) to ``model``."""
    from hoidata.models.spatial_linking import attach_spatial_linking  # imports torch

    settings = recipe.spatial_linking
    assert settings is not None
    cfg = config_from_model(
        model.config,
        str(profile.frame),
        heads=settings.heads,
        mlp_ratio=settings.mlp_ratio,
        attn_dim=settings.attn_dim,
        identity_init=settings.identity_init,
    )
    return attach_spatial_linking(model, processor.tokenizer, cfg, seed=recipe.trainer.get("seed", 42))


def prepare_trainer(trainer: Any, module: Any, output_dir: Path, resume: bool) -> None:
    """Make the module trainable (PEFT froze it), save it with every checkpoint, reload it on resume,
    and say its size."""
    from transformers.trainer_utils import get_last_checkpoint

    from hoidata.models.spatial_linking import load_weights_into

    for p in module.parameters():
        p.requires_grad_(True)
    trainer.add_callback(_checkpoint_callback(module))
    if trainer.is_world_process_zero():
        print(settings_text(module.config), flush=True)
    last = get_last_checkpoint(str(output_dir)) if resume and output_dir.is_dir() else None
    if last is not None:
        if not (Path(last) / WEIGHTS_FILE).is_file():
            raise HoidataError(
                f"the checkpoint has no {WEIGHTS_FILE}: it was trained without the module", file=last
            )
        load_weights_into(module, last)


def save_module(module: Any, directory: Path | str, *, main_process: bool = True) -> None:
    """Write the module beside a checkpoint. Every process calls this: weights partitioned by ZeRO-3
    or sharded by FSDP are gathered first; the main process writes."""
    from hoidata.models.spatial_linking import full_state, save_spatial_linking

    params = list(module.parameters())
    if any(hasattr(p, "ds_id") for p in params):  # ZeRO-3: partitioned, gather the full tensors
        import deepspeed

        with deepspeed.zero.GatheredParameters(params, modifier_rank=None):
            state = full_state(module)
    else:
        state = full_state(module)
    if main_process:
        save_spatial_linking(module, directory, state)


def _checkpoint_callback(module: Any) -> Any:
    from transformers import TrainerCallback

    class SaveSpatialLinking(TrainerCallback):
        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            directory = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            save_module(module, directory, main_process=state.is_world_process_zero)

    return SaveSpatialLinking()
