"""Training throughput at real model sizes: ``hoidata train`` against plain TRL, side by side.

Qwen2.5-VL-3B and Qwen3-VL-8B are built from their published configs with random weights
(:mod:`models`; nothing is downloaded), on synthetic HOI scenes (``hoidata.demo``) made into a
referring SFT set and GRPO prompts at a fixed pixel budget. Each model runs ``train sft`` with LoRA
and in full, and ``train grpo`` (full), bf16 with gradient checkpointing, through hoidata and
through TRL directly with the same settings (:mod:`runs`), and prints tokens/s and peak GPU memory
of both and their ratio. Goal: hoidata / plain TRL ≥ 0.98.

    python bench/gpu/bench_gpu.py                 # a GPU machine: both models, every setting
    python bench/gpu/bench_gpu.py --models qwen2.5-vl-3b --steps 6
    python bench/gpu/bench_gpu.py --tiny          # the same code at CPU size (the tests run this)
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

from models import MODELS, build, parameters
from runs import Figures, Setting, run_hoidata, run_trl

from hoidata.demo import make_raw
from hoidata.models.tiny import TINY_MAX_PIXELS, TINY_MIN_PIXELS
from hoidata.pipelines.boxes import BoxesConfig, boxes
from hoidata.pipelines.build_sft import BuildSftConfig, build_sft
from hoidata.pipelines.convert import ConvertConfig, convert

SETTINGS = ("sft-lora", "sft-full", "grpo-full")
PIXELS = (401_408, 401_408)  # every image resized to ~400k pixels: 512 visual tokens on Qwen2.5-VL


def settings(tiny: bool, steps: int) -> list[Setting]:
    common = {
        "max_steps": steps,
        "per_device_train_batch_size": 2 if tiny else 4,
        "gradient_accumulation_steps": 1,
        "learning_rate": 1e-5,
        "logging_steps": 1,
        "save_strategy": "no",
        "bf16": True,
        "gradient_checkpointing": True,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
        "seed": 0,
    }
    sft = common | {"max_length": None}
    grpo = common | {
        "num_generations": 2 if tiny else 4,
        "max_completion_length": 8 if tiny else 128,
        "temperature": 1.0,
        "beta": 0.0,
        "log_completions": False,
    }
    return [Setting("sft", True, sft), Setting("sft", False, sft), Setting("grpo", False, grpo)]


def prepare_data(root: Path, family: str, pixels: tuple[int, int], n_images: int) -> dict[str, Path]:
    """Synthetic scenes → canonical → boxes (this family's budget) → referring SFT."""
    raw = root / "raw"
    if not (root / "canonical").is_dir():
        files = make_raw(raw, n_train=n_images, n_test=1)
        cfg = ConvertConfig(
            source="hico",
            annotations=str(files["train"]),
            split="train",
            images=str(raw / "images" / "train"),
        )
        convert(cfg, root / "canonical", progress=False)
    boxed = root / f"boxes-{family}"
    boxes(root / "canonical", boxed, BoxesConfig(profile=family, min_pixels=pixels[0], max_pixels=pixels[1]))
    build_sft(boxed, root / f"sft-{family}", BuildSftConfig(task="referring"))
    return {"sft": root / f"sft-{family}", "grpo": boxed}


def cell(f: Figures) -> str:
    memory = f"{f.peak_gib:6.1f} GiB" if f.peak_gib is not None else "     -    "
    return f"{f.tokens_per_s:9,.0f} tok/s {memory}"


def main(argv: list[str] | None = None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="CPU-sized models (the tests run this)")
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps per run (default 8; tiny 3)")
    parser.add_argument(
        "--warmup", type=int, default=None, help="steps left out of the rate (default 2; tiny 1)"
    )
    parser.add_argument("--json", type=Path, default=None, help="write the figures here")
    parser.add_argument(
        "--work", type=Path, default=None, help="working directory (default: a temporary one)"
    )
    args = parser.parse_args(argv)
    import torch

    cuda = torch.cuda.is_available()
    if not (cuda or args.tiny):
        sys.exit("no GPU here: run on a GPU machine, or with --tiny for the CPU-sized check")
    steps, warmup = args.steps or (3 if args.tiny else 8), args.warmup or (1 if args.tiny else 2)
    pixels = (TINY_MIN_PIXELS, TINY_MAX_PIXELS) if args.tiny else PIXELS
    work = args.work or Path(tempfile.mkdtemp(prefix="hoidata-gpu-bench-"))
    device = torch.cuda.get_device_name(0) if cuda else "CPU"
    where = "cuda" if cuda else "cpu"
    print(f"training throughput, hoidata vs plain TRL, on {device}{' (tiny models)' if args.tiny else ''}")
    results = []
    try:
        for name in args.models:
            family = MODELS[name]["family"]
            data = prepare_data(work / "data", family, pixels, n_images=8 if args.tiny else 64)
            ckpt = build(
                name, work / name, tiny=args.tiny, min_pixels=pixels[0], max_pixels=pixels[1], device=where
            )
            print(f"{name}: {parameters(ckpt):,} parameters")
            for setting in (
                s for s in settings(args.tiny, steps) if s.label.replace(" ", "-") in args.settings
            ):
                run_args = (setting, ckpt, family, data[setting.method], pixels)
                ours = run_hoidata(*run_args, work / "runs" / "hoidata", warmup)
                plain = run_trl(*run_args, work / "runs" / "trl", warmup)
                ratio = ours.tokens_per_s / plain.tokens_per_s
                print(
                    f"  {setting.label:<9} hoidata {cell(ours)}   plain TRL {cell(plain)}   ratio {ratio:5.3f}"
                )
                results.append(
                    {
                        "model": name,
                        "setting": setting.label,
                        "device": device,
                        "hoidata": vars(ours),
                        "trl": vars(plain),
                        "ratio": ratio,
                    }
                )
            shutil.rmtree(ckpt)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print("goal: hoidata / plain TRL ≥ 0.98 (tokens/s)")
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2))
    return results


if __name__ == "__main__":
    main()
