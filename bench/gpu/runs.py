"""One training run measured two ways: through ``hoidata train`` (a recipe) and through plain TRL
with the same settings, the same processor and the same rows.

Settings are shared, not restated: the plain run gets exactly the TRL config fields hoidata's
``train`` would pass (its defaults for the method, then the recipe's ``trainer``), the same LoRA
(rank, alpha, dropout, the language model's linear layers) and the same frozen vision tower. What
differs is what hoidata adds around TRL: its data loading, its tool-aware collator (SFT), its
hierarchical reward (GRPO; the plain run scores every completion 0, the cheapest reward there is).

Throughput is TRL's own token count (``num_tokens``: every token of the batch for SFT, prompt and
completion tokens for GRPO) over wall time, after ``warmup`` steps; memory is the GPU's peak
allocation over the run (None on the CPU).
"""

from __future__ import annotations

import gc
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hoidata.io import open_dataset
from hoidata.profiles import get_profile
from hoidata.profiles.chat import use_tool_template
from hoidata.trainers.data import load_for
from hoidata.trainers.recipe import load_recipe
from hoidata.trainers.run import DEFAULTS, LANGUAGE_LINEAR, train

LORA = {"r": 64, "alpha": 128, "dropout": 0.05}


@dataclass
class Setting:
    """What one run trains: the method, LoRA or full, and the trainer fields both sides share."""

    method: str  # "sft" | "grpo"
    lora: bool
    trainer: dict[str, Any]

    @property
    def label(self) -> str:
        return f"{self.method} {'lora' if self.lora else 'full'}"


@dataclass
class Figures:
    tokens_per_s: float
    peak_gib: float | None
    steps: int


class Meter:
    """A trainer callback: the time and TRL's cumulative token count at every logged step."""

    def __init__(self) -> None:
        self.marks: list[tuple[float, float]] = []

    def callback(self) -> Any:
        from transformers import TrainerCallback

        marks = self.marks

        class OnLog(TrainerCallback):
            def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
                if logs and "num_tokens" in logs:
                    marks.append((time.perf_counter(), float(logs["num_tokens"])))

        return OnLog()

    def figures(self, warmup: int, peak_gib: float | None) -> Figures:
        """Tokens per second from the end of step ``warmup`` (at least 1) to the last step."""
        if len(self.marks) <= max(warmup, 1):
            raise RuntimeError(f"{len(self.marks)} logged steps, need more than the {warmup} warm-up ones")
        (t0, n0), (t1, n1) = self.marks[max(warmup, 1) - 1], self.marks[-1]
        return Figures((n1 - n0) / (t1 - t0), peak_gib, len(self.marks))


def _trl_fields(setting: Setting, out: Path, cuda: bool) -> dict[str, Any]:
    """The TRL config fields hoidata's ``train`` passes for this setting."""
    fields = {"output_dir": str(out), "report_to": [], **DEFAULTS[setting.method], **setting.trainer}
    return fields if cuda else fields | {"use_cpu": True, "bf16": False}


def _reset_peak() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gib() -> float | None:
    import torch

    return torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else None


def run_hoidata(
    setting: Setting, model: Path, family: str, data: Path, pixels: tuple[int, int], out: Path, warmup: int
) -> Figures:
    """The run as ``hoidata train sft|grpo`` makes it, from a recipe."""
    recipe = {
        "method": setting.method,
        "model": str(model),
        "profile": family,
        "min_pixels": pixels[0],
        "max_pixels": pixels[1],
        "data": [str(data)],
        "task": "referring",
        "tools": False,
        "lora": {**LORA, "target_modules": "all-linear"} if setting.lora else None,
        "freeze_vision": True,
        "trainer": {**setting.trainer, "output_dir": str(out), "report_to": []},
    }
    meter = Meter()
    _reset_peak()
    train(load_recipe(None, recipe), console=False, callbacks=[meter.callback()])
    return meter.figures(warmup, _peak_gib())


def run_trl(
    setting: Setting, model: Path, family: str, data: Path, pixels: tuple[int, int], out: Path, warmup: int
) -> Figures:
    """The same run written against TRL directly."""
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import GRPOConfig, GRPOTrainer, SFTConfig, SFTTrainer

    cuda = torch.cuda.is_available()
    profile = get_profile(family, *pixels)
    processor = AutoProcessor.from_pretrained(model)
    processor.image_processor.size = {"shortest_edge": profile.min_pixels, "longest_edge": profile.max_pixels}
    processor = use_tool_template(processor, family)
    _reset_peak()
    net = AutoModelForImageTextToText.from_pretrained(model, dtype=torch.bfloat16 if cuda else torch.float32)
    visual = getattr(net, "visual", None) or net.model.visual  # as hoidata's freeze_vision finds it
    for p in visual.parameters():
        p.requires_grad_(False)
    peft = (
        LoraConfig(
            r=LORA["r"],
            lora_alpha=LORA["alpha"],
            lora_dropout=LORA["dropout"],
            target_modules=LANGUAGE_LINEAR,
            task_type="CAUSAL_LM",
        )
        if setting.lora
        else None
    )
    fields = _trl_fields(setting, out, cuda)
    meter = Meter()
    if setting.method == "sft":
        rows = open_dataset(data).select_columns(["images", "messages"])
        trainer: Any = SFTTrainer(
            model=net,
            args=SFTConfig(**fields),
            train_dataset=rows,
            processing_class=processor,
            peft_config=peft,
        )
    else:
        rows = load_for("grpo", [str(data)], task="referring")

        def zero(completions: list[Any], **_: Any) -> list[float]:
            return [0.0] * len(completions)

        trainer = GRPOTrainer(
            model=net,
            reward_funcs=zero,
            args=GRPOConfig(**fields),
            train_dataset=rows,
            processing_class=processor,
            peft_config=peft,
        )
    trainer.add_callback(meter.callback())
    trainer.remove_callback(PrinterCallback)  # as hoidata's train(console=False): no per-step printing
    trainer.remove_callback(ProgressCallback)
    trainer.train()
    figures = meter.figures(warmup, _peak_gib())
    del trainer, net
    return figures
