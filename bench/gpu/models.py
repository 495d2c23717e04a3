"""Qwen2.5-VL-3B and Qwen3-VL-8B as their published configs, built with random weights.

Nothing is downloaded: the dimensions below are those of ``Qwen/Qwen2.5-VL-3B-Instruct`` and
``Qwen/Qwen3-VL-8B-Instruct`` (``config.json``), the processor and tokenizer are hoidata's tiny
offline ones (the real Qwen processor classes, a small BPE vocabulary; the embedding keeps the real
151,936 rows). ``tiny=True`` keeps every structural feature (windowed and full vision attention,
M-RoPE sections, DeepStack, tied or untied head) at sizes a CPU trains in seconds.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

from hoidata.models.tiny import build_tiny_vlm

MODELS: dict[str, dict[str, Any]] = {
    "qwen2.5-vl-3b": {
        "family": "qwen2.5-vl",
        "tie_word_embeddings": True,
        "text": {
            "vocab_size": 151_936,
            "hidden_size": 2048,
            "intermediate_size": 11_008,
            "num_hidden_layers": 36,
            "num_attention_heads": 16,
            "num_key_value_heads": 2,
            "max_position_embeddings": 128_000,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 1_000_000.0,
                "mrope_section": [16, 24, 24],
            },
        },
        "vision": {
            "depth": 32,
            "hidden_size": 1280,
            "intermediate_size": 3420,
            "num_heads": 16,
            "out_hidden_size": 2048,
            "patch_size": 14,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "window_size": 112,
            "fullatt_block_indexes": [7, 15, 23, 31],
            "tokens_per_second": 2,
        },
    },
    "qwen3-vl-8b": {
        "family": "qwen3-vl",
        "tie_word_embeddings": False,
        "text": {
            "vocab_size": 151_936,
            "hidden_size": 4096,
            "intermediate_size": 12_288,
            "num_hidden_layers": 36,
            "num_attention_heads": 32,
            "num_key_value_heads": 8,
            "head_dim": 128,
            "max_position_embeddings": 262_144,
            "rms_norm_eps": 1e-6,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5_000_000.0,
                "mrope_section": [24, 20, 20],
                "mrope_interleaved": True,
            },
        },
        "vision": {
            "depth": 27,
            "hidden_size": 1152,
            "intermediate_size": 4304,
            "num_heads": 16,
            "out_hidden_size": 4096,
            "patch_size": 16,
            "spatial_merge_size": 2,
            "temporal_patch_size": 2,
            "num_position_embeddings": 2304,
            "deepstack_visual_indexes": [8, 16, 24],
            "hidden_act": "gelu_pytorch_tanh",
        },
    },
}

# the same structure at CPU size: head_dim 8 (M-RoPE sections summing to 4), two of everything
TINY_TEXT = {"hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4}
TINY_TEXT |= {"num_key_value_heads": 2, "vocab_size": 2048, "max_position_embeddings": 4096}
TINY_VISION = {"depth": 2, "hidden_size": 32, "intermediate_size": 64, "num_heads": 4, "out_hidden_size": 32}
TINY_SECTIONS = [2, 1, 1]
TINY_LAYER_INDEXES = {
    "fullatt_block_indexes": [1],
    "deepstack_visual_indexes": [1],
    "num_position_embeddings": 64,
}


def spec(name: str, tiny: bool) -> dict[str, Any]:
    """The text and vision config of ``name``, shrunk when ``tiny``."""
    full = MODELS[name]
    text, vision = dict(full["text"]), dict(full["vision"])
    if tiny:
        text |= TINY_TEXT
        text["rope_parameters"] = {**text["rope_parameters"], "mrope_section": TINY_SECTIONS}
        if "head_dim" in text:
            text["head_dim"] = TINY_TEXT["hidden_size"] // TINY_TEXT["num_attention_heads"]
        vision |= TINY_VISION | {k: v for k, v in TINY_LAYER_INDEXES.items() if k in vision}
        vision["out_hidden_size"] = text["hidden_size"]
    return {
        "family": full["family"],
        "tie_word_embeddings": full["tie_word_embeddings"],
        "text": text,
        "vision": vision,
    }


def model_config(name: str, tiny: bool, base: Any = None) -> Any:
    """The transformers config of ``name`` (``base``: a config whose token ids to keep, e.g. the tiny
    processor's; by default the class's own)."""
    from transformers import Qwen2_5_VLConfig, Qwen3VLConfig

    s = spec(name, tiny)
    cls = Qwen2_5_VLConfig if s["family"] == "qwen2.5-vl" else Qwen3VLConfig
    base = base if base is not None else cls()
    keys = ("image_token_id", "video_token_id", "vision_start_token_id", "vision_end_token_id")
    ids = {k: getattr(base, k) for k in keys}
    # layer_types follows num_hidden_layers: left out, the config derives it again
    text = {k: v for k, v in base.text_config.to_dict().items() if k != "layer_types"} | s["text"]
    vision = base.vision_config.to_dict() | s["vision"]
    return cls(text_config=text, vision_config=vision, tie_word_embeddings=s["tie_word_embeddings"], **ids)


def count_parameters(name: str, tiny: bool = False) -> int:
    """Parameters of ``name`` built on the meta device: no memory, no weights."""
    import torch
    from transformers import AutoModelForImageTextToText

    with torch.device("meta"):
        model = AutoModelForImageTextToText.from_config(model_config(name, tiny))
    return sum(p.numel() for p in model.parameters())


def build(name: str, out: Path, *, tiny: bool, min_pixels: int, max_pixels: int, device: str = "cpu") -> Path:
    """A checkpoint of ``name`` with random weights (bfloat16 on a GPU, float32 on the CPU), with
    the processor's pixel budget set, saved to ``out``."""
    import torch
    from transformers import AutoConfig, AutoModelForImageTextToText, GenerationConfig

    family = MODELS[name]["family"]
    build_tiny_vlm(family, out, min_pixels=min_pixels, max_pixels=max_pixels)  # processor and tokenizer
    config = model_config(name, tiny, AutoConfig.from_pretrained(out))
    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForImageTextToText.from_config(config, dtype=dtype)
    model.generation_config = GenerationConfig.from_pretrained(out)
    model.save_pretrained(out)
    del model
    return out


def parameters(out: Path) -> int:
    """How many parameters the saved checkpoint holds (from its safetensors headers)."""
    total = 0
    for f in Path(out).glob("*.safetensors"):
        with open(f, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        for key, meta in header.items():
            if key != "__metadata__":
                size = 1
                for d in meta["shape"]:
                    size *= d
                total += size
    return total
