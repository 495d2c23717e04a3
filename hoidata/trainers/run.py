"""Train from a recipe: ``python -m hoidata.trainers.run RECIPE.yaml [--resume]``.

The same entry point runs in a single process and under ``accelerate launch`` (every process runs
it). Everything that can be checked without a GPU is checked first (columns, batch sizes, image
tokens cut by ``max_length``, the extras), so a bad recipe fails in seconds, not after the model
has loaded. The effective recipe is saved next to the checkpoints.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path
from typing import Any

from hoidata.errors import HoidataError
from hoidata.imagine import live_backend
from hoidata.profiles import get_profile
from hoidata.profiles.chat import use_tool_template
from hoidata.rewards import RewardConfig, reward_funcs
from hoidata.tools.environment import HoiEnvironment
from hoidata.trainers.data import load_for
from hoidata.trainers.merge import merge_lora
from hoidata.trainers.recipe import Recipe, load_recipe
from hoidata.trainers.spatial import (
    EXCLUDE_FROM_LORA,
    attach_for_training,
    check_spatial_data,
    prepare_trainer,
    save_module,
)

DEFAULTS: dict[str, dict[str, Any]] = {
    "sft": {
        "max_length": None,
        "assistant_only_loss": True,  # learn the model's turns, not the tool schemas or the tool's answers
        "logging_steps": 1,
        "remove_unused_columns": False,  # the collator needs the tools column, which TRL would drop
    },
    "grpo": {
        "num_generations": 4,
        "max_completion_length": 512,
        "beta": 0.0,
        "log_completions": True,
        "logging_steps": 1,
        "max_tool_calling_iterations": 3,
    },
    "dpo": {"max_length": None, "logging_steps": 1, "remove_unused_columns": False},  # tools, as for SFT
}


def train(
    recipe: Recipe, *, resume: bool = False, on_log: Any = None, console: bool = True, callbacks: Any = ()
) -> Any:
    """Run the recipe's trainer; returns TRL's ``TrainOutput``. ``on_log(logs)`` sees every log;
    ``console=False`` keeps the per-step log lines and progress bars off the terminal; ``callbacks``:
    more transformers ``TrainerCallback`` objects."""
    _require_extras()
    import torch

    profile = get_profile(recipe.profile, recipe.min_pixels, recipe.max_pixels)
    use_vllm = recipe.method == "grpo" and bool(recipe.trainer.get("use_vllm"))
    if use_vllm:
        _check_vllm_budget(recipe.model, profile)
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise HoidataError("trainer.use_vllm needs vLLM on a GPU machine: pip install 'hoidata[gen]'")
    args = _config(recipe, cuda=torch.cuda.is_available())
    data = load_for(
        recipe.method,
        recipe.data,
        task=recipe.task,
        max_samples=recipe.max_samples,
        resize_to=profile if use_vllm else None,
        mix=recipe.data_mix,
        seed=int(recipe.trainer.get("seed", 0)),
    )
    _check(recipe, args, data, profile)
    if recipe.spatial_linking is not None:
        check_spatial_data(recipe, data, profile)
    processor = _processor(recipe, profile)
    model = _model(recipe, bf16=bool(getattr(args, "bf16", False)))
    linking = attach_for_training(recipe, model, processor, profile) if recipe.spatial_linking else None
    peft_config = _lora(recipe)
    trainer = _trainer(recipe, model, processor, args, data, profile, peft_config)
    if linking is not None:
        prepare_trainer(trainer, linking, Path(args.output_dir), resume)
    if on_log is not None:
        trainer.add_callback(_log_hook(on_log))
    for callback in callbacks:
        trainer.add_callback(callback)
    if not console:
        from transformers.trainer_callback import PrinterCallback, ProgressCallback

        trainer.remove_callback(PrinterCallback)
        trainer.remove_callback(ProgressCallback)
    out = Path(args.output_dir)
    recipe.save(out / "recipe.yaml")
    checkpoint = resume and any(out.glob("checkpoint-*"))
    result = trainer.train(resume_from_checkpoint=True if checkpoint else None)
    trainer.save_model(str(out))
    processor.save_pretrained(str(out))  # the pixel budget and template travel with the weights
    if linking is not None:
        save_module(linking, out, main_process=trainer.is_world_process_zero())
    return result


# ---- pieces ---------------------------------------------------------------------------------------
def _require_extras() -> None:
    for name in ("torch", "transformers", "trl", "peft"):
        try:
            __import__(name)
        except ImportError:
            raise HoidataError(f"training needs {name}: pip install 'hoidata[train]'") from None


def _config(recipe: Recipe, *, cuda: bool) -> Any:
    from trl import DPOConfig, GRPOConfig, SFTConfig

    cls = {"sft": SFTConfig, "grpo": GRPOConfig, "dpo": DPOConfig}[recipe.method]
    fields = set(cls.__dataclass_fields__)
    unknown = sorted(set(recipe.trainer) - fields)
    if unknown:
        raise HoidataError(f"unknown {cls.__name__} fields in trainer: {unknown}")
    kwargs = {"output_dir": str(recipe.output_dir), "report_to": ["tensorboard"], **DEFAULTS[recipe.method]}
    kwargs |= recipe.trainer
    if not cuda:  # TRL's defaults assume a GPU (bf16); the CPU runs tests and tiny trials
        kwargs |= {"use_cpu": True, "bf16": False}
    try:
        return cls(**kwargs)
    except (ValueError, TypeError, ImportError) as e:  # TRL's own checks (batch vs num_generations,
        raise HoidataError(f"{cls.__name__}: {str(e).splitlines()[0]}") from None  # vLLM missing), one line


def _check(recipe: Recipe, args: Any, data: Any, profile: Any) -> None:
    """The mistakes that otherwise surface after the model has loaded, or silently."""
    if recipe.method == "grpo":
        world = int(getattr(args, "world_size", 1) or 1)
        batch = args.per_device_train_batch_size * args.gradient_accumulation_steps * world
        if batch % args.num_generations:
            raise HoidataError(
                f"the effective batch ({args.per_device_train_batch_size} per device × "
                f"{args.gradient_accumulation_steps} accumulation × {world} processes = {batch}) must be a "
                f"multiple of num_generations ({args.num_generations})"
            )
    if recipe.method == "dpo" and "tools" in data.column_names:
        lists = set(data.unique("tools"))
        if len(lists) > 1:
            raise HoidataError(
                f"the preference data lists {len(lists)} different tool sets (rollouts of several gen-cot runs?); "
                "a DPO batch renders one: train them separately, or regenerate with the same tools"
            )
    max_length = getattr(args, "max_length", None)
    if recipe.method in ("sft", "dpo") and max_length is not None:
        worst, where = _image_tokens(data, profile)
        if worst >= max_length:
            raise HoidataError(
                f"max_length {max_length} would cut image tokens: sample {where} holds {worst} "
                f"(set trainer.max_length larger, or null)"
            )


def _check_vllm_budget(model: str, profile: Any) -> None:
    """vLLM inside GRPO reads the pixel budget from the checkpoint, not from our processor: a
    different budget silently corrupts the image tokens (trl #6401, #6294). Refuse it up front."""
    found = [Path(model) / n for n in ("preprocessor_config.json", "processor_config.json")]
    config = next((f for f in found if f.is_file()), None)
    if config is None:
        return  # a Hub id: vLLM reads its own copy; the recipe's comment says to keep them equal
    raw = json.loads(config.read_text())
    raw = raw.get("image_processor", raw)  # transformers 5 nests it in processor_config.json
    size = raw.get("size") or {}
    low = size.get("shortest_edge", raw.get("min_pixels"))
    high = size.get("longest_edge", raw.get("max_pixels"))
    if (low, high) != (profile.min_pixels, profile.max_pixels):
        raise HoidataError(
            f"use_vllm: the checkpoint's preprocessor_config.json has pixel budget {low}..{high}, the recipe "
            f"trains with {profile.min_pixels}..{profile.max_pixels}; vLLM would see other pixels. Set "
            f"min_pixels/max_pixels to the checkpoint's, or save the processor with the recipe's budget",
            file=str(config),
        )


def _image_tokens(data: Any, profile: Any, limit: int = 2000) -> tuple[int, str]:
    """The most image tokens any of the first ``limit`` samples holds, from image headers."""
    import io

    from PIL import Image

    worst, where = 0, ""
    raw = data.select(range(min(limit, len(data)))).cast_column("images", _undecoded(data))
    for k, row in enumerate(raw):
        total = 0
        for image in row["images"] or []:
            if image.get("bytes"):
                size = Image.open(io.BytesIO(image["bytes"])).size
            elif image.get("path"):
                size = Image.open(image["path"]).size
            else:
                continue
            total += profile.image_tokens(*size)
        if total > worst:
            worst, where = total, str(row.get("sample_id", k))
    return worst, where


def _undecoded(data: Any) -> Any:
    from datasets import Image, List

    return List(Image(decode=False))


def environment_factory(recipe: Recipe, profile: Any) -> Any:
    """GRPO's ``environment_factory``: the tools the recipe offers (none: None), the imagine tool
    answering from ``imagine_cache`` first, then from ``imagine_backend``."""
    if not recipe.tools:
        return None
    offered = recipe.tools if isinstance(recipe.tools, list) else None  # true: all of them
    return HoiEnvironment.factory(
        offered,
        profile=profile,
        imagine_backend=live_backend(recipe.imagine_backend),
        imagine_cache=recipe.imagine_cache,
    )


def starting_weights(recipe: Recipe) -> str:
    """The model to start from. A LoRA run (e.g. DPO stage 1 for stage 2) is merged once into
    ``output_dir/start`` (as ``train merge`` would), so this run's own adapter, saved against that
    directory, loads back onto exactly the weights it was trained on."""
    adapter = adapter_run(recipe.model)
    if adapter is None:
        return recipe.model
    start = recipe.output_dir / "start"
    if not (start / "config.json").is_file():
        merge_lora(adapter, start, overwrite=True)
    return str(start)


def adapter_run(model: str) -> Path | None:
    """The directory when ``model`` is a hoidata LoRA run (an adapter beside its processor), else None."""
    path = Path(model)
    return path if (path / "adapter_config.json").is_file() else None


def _processor(recipe: Recipe, profile: Any) -> Any:
    from transformers import AutoProcessor

    processor = AutoProcessor.from_pretrained(recipe.model)
    processor.image_processor.size = {"shortest_edge": profile.min_pixels, "longest_edge": profile.max_pixels}
    return use_tool_template(processor, profile.name)


def _model(recipe: Recipe, *, bf16: bool) -> Any:
    import torch
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(
        starting_weights(recipe), dtype=torch.bfloat16 if bf16 else torch.float32
    )
    if recipe.freeze_vision:
        visual = getattr(model, "visual", None) or getattr(getattr(model, "model", None), "visual", None)
        if visual is None:
            raise HoidataError(f"freeze_vision: {type(model).__name__} has no vision tower named 'visual'")
        for p in visual.parameters():
            p.requires_grad_(False)
    return model


# the language model's linear layers in Qwen VL checkpoints (vision blocks excluded)
LANGUAGE_LINEAR = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"


def _lora(recipe: Recipe) -> Any:
    if recipe.lora is None:
        return None
    from peft import LoraConfig

    targets: Any = recipe.lora.target_modules
    if targets == "all-linear" and recipe.freeze_vision:
        targets = LANGUAGE_LINEAR  # all-linear would put adapters on the frozen vision tower too
    return LoraConfig(
        r=recipe.lora.r,
        lora_alpha=recipe.lora.alpha,
        lora_dropout=recipe.lora.dropout,
        target_modules=targets,
        exclude_modules=EXCLUDE_FROM_LORA if recipe.spatial_linking and targets != LANGUAGE_LINEAR else None,
        task_type="CAUSAL_LM",
    )


def _trainer(
    recipe: Recipe, model: Any, processor: Any, args: Any, data: Any, profile: Any, peft: Any
) -> Any:
    if recipe.method == "sft":
        from trl import SFTTrainer

        from hoidata.trainers.collate import ToolAwareCollator  # imports torch and trl

        collator = ToolAwareCollator(
            processor=processor,
            max_length=args.max_length,
            completion_only_loss=args.completion_only_loss,
            assistant_only_loss=args.assistant_only_loss,
            pad_to_multiple_of=args.pad_to_multiple_of,
            dataset_text_field=args.dataset_text_field,
        )
        trainer = SFTTrainer(
            model=model,
            args=args,
            train_dataset=data,
            processing_class=processor,
            data_collator=collator,
            peft_config=peft,
        )
        # with assistant_only_loss, TRL picks a template with {% generation %} markers when the
        # processor's has none (stock Qwen3-VL); its own collator gets it, so ours must too
        collator.chat_template = trainer.chat_template
        return trainer
    if recipe.method == "dpo":
        from trl import DPOTrainer

        from hoidata.trainers.collate import ToolAwarePreferenceCollator  # imports torch and trl

        reference = None if peft is not None else copy.deepcopy(model)
        return DPOTrainer(
            model=model,
            ref_model=reference,
            args=args,
            data_collator=ToolAwarePreferenceCollator(
                processor=processor, max_length=args.max_length, pad_to_multiple_of=args.pad_to_multiple_of
            ),
            train_dataset=data,
            processing_class=processor,
            peft_config=peft,
        )
    from trl import GRPOTrainer

    rewards = reward_funcs(profile, RewardConfig(**recipe.rewards))
    environment = environment_factory(recipe, profile)
    return GRPOTrainer(
        model=model,
        reward_funcs=rewards,
        args=args,
        train_dataset=data,
        processing_class=processor,
        peft_config=peft,
        environment_factory=environment,
    )


def _log_hook(fn: Any) -> Any:
    """A trainer callback that hands each log dict to ``fn`` (tests, the demo's console)."""
    from transformers import TrainerCallback

    class LogHook(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if logs:
                fn(dict(logs))

    return LogHook()


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        raise SystemExit("usage: python -m hoidata.trainers.run RECIPE.yaml [--resume] [--key value ...]")
    resume = "--resume" in argv
    rest = [a for a in argv[1:] if a != "--resume"]
    result = train(load_recipe(argv[0], rest), resume=resume)
    print(json.dumps({"global_step": result.global_step, "training_loss": result.training_loss}))


if __name__ == "__main__":
    main()
