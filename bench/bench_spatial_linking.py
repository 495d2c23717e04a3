"""Forward cost of the spatial-linking module against the base model, as a ratio.

A batch of four prompts, each one image and three linked boxes (person, object, union), through a
tiny Qwen2.5-VL and Qwen3-VL on CPU: the base forward, then the same with the module attached
(Xavier init, so it really computes). Goal at tiny size: at most 1.10x. At tiny size the ratio is
mostly fixed costs (finding the boxes in the token ids); at real sizes it is arithmetic:

    module FLOPs per box ≈ 2·(d·a + 2·n·d·a + 2·n·a + a·d + 2·d·h)     (n: cells inside the box)
    base FLOPs per prompt ≈ 2·P·T                                      (P: LM parameters, T: tokens)
    ratio = 1 + boxes · module FLOPs per box / base FLOPs

printed below for Qwen2.5-VL-7B (d = a = 3584, h = d/2, P ≈ 7.6e9) with a 640×480 image (391 visual
tokens, T ≈ 450) and three boxes of 60, 40 and 150 cells.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from PIL import Image
from timing import timed_interleaved

from hoidata.models.spatial_config import config_from_model, parameter_count
from hoidata.models.spatial_linking import attach_spatial_linking
from hoidata.models.tiny import build_tiny_vlm

FRAMES = {"qwen2.5-vl": "resized-pixels", "qwen3-vl": "relative-1000"}
BOXES = {
    "resized-pixels": ("[20, 10, 90, 120]", "[100, 60, 160, 130]", "[20, 10, 160, 130]"),
    "relative-1000": ("[100, 80, 450, 850]", "[520, 400, 820, 900]", "[100, 80, 820, 900]"),
}


def module_flops(d: int, a: int, h: int, cells: int) -> float:
    return 2.0 * (d * a + 2 * cells * d * a + 2 * cells * a + a * d + 2 * d * h)


def real_size_ratio() -> float:
    d, params, tokens = 3584, 7.6e9, 450
    module = sum(module_flops(d, d, d // 2, n) for n in (60, 40, 150))
    return 1 + module / (2 * params * tokens)


def forward(model: Any, inputs: Any) -> Callable[[], None]:
    def run() -> None:
        with torch.no_grad():
            model(**inputs)

    return run


def measure(family: str, frame: str, root: Path) -> str:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    path = build_tiny_vlm(family, root / family)
    processor = AutoProcessor.from_pretrained(path)
    person, obj, union = BOXES[frame]
    text = (
        f"Look at the person <|box_start|>{person}<|box_end|>, the cup <|box_start|>{obj}<|box_end|> "
        f"and the region around both <|box_start|>{union}<|box_end|>. What is the person doing?"
    )
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": text}]}]
    prompt = processor.apply_chat_template(messages, add_generation_prompt=True)
    image = Image.new("RGB", (200, 150), (120, 60, 30))
    inputs = processor(text=[prompt] * 4, images=[image] * 4, return_tensors="pt", padding=True)
    base_model = AutoModelForImageTextToText.from_pretrained(path).eval()
    linked_model = AutoModelForImageTextToText.from_pretrained(path).eval()
    cfg = config_from_model(linked_model.config, frame)
    attach_spatial_linking(linked_model, processor.tokenizer, cfg)
    base, linked = forward(base_model, inputs), forward(linked_model, inputs)
    base(), linked()  # warm up
    t_base, t_linked = timed_interleaved([base, linked], repeats=30)
    return (
        f"{family}: base forward {t_base * 1e3:.1f} ms, with the module {t_linked * 1e3:.1f} ms "
        f"(4 prompts, 12 boxes; module {parameter_count(cfg.hidden_size):,} parameters): "
        f"{t_linked / t_base:.2f}x (goal <= 1.10x)"
    )


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        for family, frame in FRAMES.items():
            print(measure(family, frame, Path(tmp)), flush=True)
    print(f"Qwen2.5-VL-7B, 640x480 image, 3 boxes: {real_size_ratio():.4f}x by the FLOPs formula")


if __name__ == "__main__":
    main()
