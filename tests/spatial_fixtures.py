"""Shared pieces of the spatial-linking tests: spatial SFT data at the tiny models' budget, prompts
with images and boxes, and a run directory carrying a module (no training needed)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from PIL import Image

from hoidata.models.spatial_config import config_from_model
from hoidata.models.spatial_linking import attach_spatial_linking, save_spatial_linking
from hoidata.models.tiny import TINY_MAX_PIXELS, TINY_MIN_PIXELS
from hoidata.pipelines.boxes import BoxesConfig, boxes
from hoidata.pipelines.build_sft import BuildSftConfig, build_sft

FAMILIES = ("qwen2.5-vl", "qwen3-vl")
FRAMES = {"qwen2.5-vl": "resized-pixels", "qwen3-vl": "relative-1000"}
BUDGET = {"min_pixels": TINY_MIN_PIXELS, "max_pixels": TINY_MAX_PIXELS}


def spatial_dataset(canonical: Path, family: str, root: Path, task: str = "spatial") -> Path:
    """``build-sft TASK`` on the family's boxes of ``canonical``, at the tiny models' pixel budget."""
    boxed = root / f"boxes-{family}"
    if not (boxed / "manifest.json").is_file():
        boxes(canonical, boxed, BoxesConfig(profile=family, **BUDGET))
    out = root / f"sft-{task}-{family}"
    if not (out / "manifest.json").is_file():
        build_sft(boxed, out, BuildSftConfig(task=task))
    return out


def load(directory: Path) -> tuple[Any, Any]:
    from transformers import AutoModelForImageTextToText, AutoProcessor

    return AutoProcessor.from_pretrained(directory), AutoModelForImageTextToText.from_pretrained(
        directory
    ).eval()


def images() -> list[Image.Image]:
    """Two images of different sizes and colours (their grids differ)."""
    a = Image.new("RGB", (200, 150), (120, 60, 30))
    a.paste((20, 200, 40), (40, 30, 120, 110))
    b = Image.new("RGB", (140, 196), (10, 40, 180))
    b.paste((240, 240, 0), (70, 20, 130, 90))
    return [a, b]


def boxes_text(family: str, *boxes_: tuple[int, int, int, int]) -> str:
    """``<|box_start|>[..]<|box_end|>`` for each box; boxes given as fractions ×100 of the image."""
    out = []
    for x1, y1, x2, y2 in boxes_:
        if FRAMES[family] == "relative-1000":
            box = [10 * x1, 10 * y1, 10 * x2, 10 * y2]
        else:  # pixels of a 196×140-ish resized image: keep them inside the smallest one
            box = [round(1.2 * x1), round(1.2 * y1), round(1.2 * x2), round(1.2 * y2)]
        out.append(f"<|box_start|>[{box[0]}, {box[1]}, {box[2]}, {box[3]}]<|box_end|>")
    return " and ".join(out)


def chat(processor: Any, blocks: list[str | None], answer: str | None = None) -> str:
    """A user turn of images (None) and texts, with the generation prompt or an answer."""
    content = [{"type": "image"} if b is None else {"type": "text", "text": b} for b in blocks]
    messages: list[dict[str, Any]] = [{"role": "user", "content": content}]
    if answer is not None:
        messages.append({"role": "assistant", "content": [{"type": "text", "text": answer}]})
    return processor.apply_chat_template(messages, add_generation_prompt=answer is None)


def run_with_module(tiny: Path, family: str, out: Path, **settings: Any) -> Path:
    """A run directory: the tiny checkpoint with a fresh module saved beside it."""
    processor, model = load(tiny)
    processor.save_pretrained(out)
    model.save_pretrained(out)
    module = attach_spatial_linking(
        model, processor.tokenizer, config_from_model(model.config, FRAMES[family], **settings)
    )
    save_spatial_linking(module, out)
    return out
