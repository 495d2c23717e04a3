"""Tiny, randomly initialised Qwen-VL checkpoints built fully offline.

Tests and the demo need a real processor + model pair (real image processor, real chat template,
real token ids for the vision placeholders) without reaching the Hugging Face Hub. The weights are
random and small (well under a million parameters), so training steps run in seconds on a CPU; only
the plumbing is realistic, never the outputs.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

from hoidata.sft.cof import TOOLS_JSON

FAMILIES: dict[str, dict[str, Any]] = {
    # patch size and the trl chat template that the stock checkpoints ship byte-identically
    "qwen2.5-vl": {"patch_size": 14, "template": "qwen2_5_vl.jinja"},
    "qwen3-vl": {"patch_size": 16, "template": "qwen3_vl.jinja"},
}
MERGE_SIZE = 2

# Added tokens in the order of the real Qwen2.5 / Qwen3 vocabularies (151643, 151644, ...), so relative
# ids match even though the absolute ones are small. The flag says whether the real tokenizer marks the
# token special: special tokens vanish under ``skip_special_tokens=True``, the others survive decoding.
ADDED_TOKENS: tuple[tuple[str, bool], ...] = (
    ("<|endoftext|>", True),
    ("<|im_start|>", True),
    ("<|im_end|>", True),
    ("<|object_ref_start|>", True),
    ("<|object_ref_end|>", True),
    ("<|box_start|>", True),
    ("<|box_end|>", True),
    ("<|quad_start|>", True),
    ("<|quad_end|>", True),
    ("<|vision_start|>", True),
    ("<|vision_end|>", True),
    ("<|vision_pad|>", True),
    ("<|image_pad|>", True),
    ("<|video_pad|>", True),
    ("<tool_call>", False),
    ("</tool_call>", False),
    ("<|fim_prefix|>", False),
    ("<|fim_middle|>", False),
    ("<|fim_suffix|>", False),
    ("<|fim_pad|>", False),
    ("<|repo_name|>", False),
    ("<|file_sep|>", False),
    ("<tool_response>", False),
    ("</tool_response>", False),
    ("<think>", False),
    ("</think>", False),
    # not in Qwen's vocabulary: the project's answer format, kept as single tokens
    ("<answer>", False),
    ("</answer>", False),
)

# Qwen2's pre-tokenisation rule: single digits, words with one leading non-letter, punctuation runs.
_PRETOKENIZE_REGEX = (
    r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+"""
    r"""|\s+(?!\S)|\s+"""
)

_VERBS = ("ride", "hold", "eat", "throw", "sit on", "feed", "carry", "kick", "wash", "cut", "walk", "hug")
_OBJECTS = ("bicycle", "horse", "pizza", "frisbee", "chair", "dog", "umbrella", "ball", "car", "cake", "cat")


def _corpus() -> list[str]:
    """Text the BPE is trained on: chat scaffolding, answers, boxes and tool calls as the data uses them.

    The tool schemas are in it so that the system prompt of tool-using samples takes hundreds of tokens,
    not thousands: training and generation steps on CPU stay short."""

    lines = [
        TOOLS_JSON,
        TOOLS_JSON,
        "system\nYou are a helpful assistant.",
        "user\nassistant\n",
        "# Tools\n\nYou may call one or more functions to assist with the user query.",
        "You are provided with function signatures within <tools></tools> XML tags:",
        "For each function call, return a json object with function name and arguments",
        '{"type": "function", "function": {"name": "zoom_in", "description": "Zoom into a region.", '
        '"parameters": {"type": "object", "properties": {"bbox_2d": {"type": "array"}}, "required": []}}}',
        "What is the person doing? Which object does the person interact with?",
        "Locate every person and the object they interact with. Answer in JSON.",
    ]
    for i, verb in enumerate(_VERBS):
        for j, obj in enumerate(_OBJECTS):
            x1, y1 = (37 * i + 11 * j) % 500, (53 * j + 7 * i) % 400
            box = [x1, y1, x1 + 40 + 3 * j, y1 + 60 + 5 * i]
            lines.append(f"The person is going to {verb} the {obj}. A person can {verb} a {obj}.")
            lines.append(f'{{"bbox_2d": {box}, "label": "{obj}"}} {{"verb": "{verb}", "object": "{obj}"}}')
            lines.append(
                f'<tool_call>\n{{"name": "zoom_in", "arguments": {{"bbox_2d": {box}}}}}\n</tool_call>'
            )
            lines.append(f"<think>I see a person and a {obj}.</think> <answer>{verb} {obj}</answer>")
    return lines


def _build_tokenizer(vocab_size: int) -> Any:
    """A byte-level BPE with Qwen's normaliser, pre-tokeniser and added tokens, trained in memory."""
    from tokenizers import (
        AddedToken,
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        trainers,
    )
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.normalizer = normalizers.NFC()
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(_PRETOKENIZE_REGEX), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    backend.train_from_iterator(_corpus(), trainer=trainer)
    # One at a time so ids follow ADDED_TOKENS' order whatever the special flag.
    for content, special in ADDED_TOKENS:
        token = AddedToken(content, special=special, normalized=False)
        if special:
            backend.add_special_tokens([token])
        else:
            backend.add_tokens([token])
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        unk_token=None,
        bos_token=None,
        model_max_length=32768,
        padding_side="right",
        clean_up_tokenization_spaces=False,
    )


def _model_config(family: str, tokenizer: Any) -> Any:
    """Configs small enough for CPU tests but with every structural feature of the real model."""
    ids = {
        "image_token_id": tokenizer.convert_tokens_to_ids("<|image_pad|>"),
        "video_token_id": tokenizer.convert_tokens_to_ids("<|video_pad|>"),
        "vision_start_token_id": tokenizer.convert_tokens_to_ids("<|vision_start|>"),
        "vision_end_token_id": tokenizer.convert_tokens_to_ids("<|vision_end|>"),
    }
    text = {
        "vocab_size": len(tokenizer),
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 4096,
        "bos_token_id": tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
        "tie_word_embeddings": False,
    }
    vision = {
        "depth": 2,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 4,
        "out_hidden_size": text["hidden_size"],
        "patch_size": FAMILIES[family]["patch_size"],
        "spatial_merge_size": MERGE_SIZE,
        "temporal_patch_size": 2,
    }
    if family == "qwen2.5-vl":
        from transformers import Qwen2_5_VLConfig

        # head_dim 8: the three M-RoPE sections (time, height, width) must sum to head_dim / 2
        text["rope_parameters"] = {
            "rope_type": "default",
            "rope_theta": 1_000_000.0,
            "mrope_section": [2, 1, 1],
        }
        vision |= {"fullatt_block_indexes": [1], "window_size": 112, "tokens_per_second": 2}
        return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)

    from transformers import Qwen3VLConfig

    text |= {"head_dim": 8}
    text["rope_parameters"] = {
        "rope_type": "default",
        "rope_theta": 5_000_000.0,
        "mrope_section": [2, 1, 1],
        "mrope_interleaved": True,
    }
    # a 8x8 learned position grid, interpolated to each image's patch grid like the real 48x48 one
    vision |= {
        "num_position_embeddings": 64,
        "deepstack_visual_indexes": [1],
        "hidden_act": "gelu_pytorch_tanh",
    }
    return Qwen3VLConfig(text_config=text, vision_config=vision, **ids)


def _processor(family: str, tokenizer: Any, min_pixels: int, max_pixels: int) -> Any:
    """The real Qwen processor classes with the requested pixel budget and trl's copy of the stock template."""
    patch = FAMILIES[family]["patch_size"]
    size = {"shortest_edge": min_pixels, "longest_edge": max_pixels}
    chat_template = (resources.files("trl") / "chat_templates" / FAMILIES[family]["template"]).read_text(
        encoding="utf-8"
    )
    common = {"patch_size": patch, "merge_size": MERGE_SIZE, "temporal_patch_size": 2}
    if family == "qwen2.5-vl":
        from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

        image_processor = Qwen2VLImageProcessor(size=size, **common)
        video_processor = Qwen2VLVideoProcessor(size=size, cap_pixels_per_frame=True, **common)
        return Qwen2_5_VLProcessor(
            image_processor=image_processor,
            tokenizer=tokenizer,
            video_processor=video_processor,
            chat_template=chat_template,
        )

    from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

    half = [0.5, 0.5, 0.5]  # Qwen3-VL normalises to [-1, 1] instead of CLIP's statistics
    image_processor = Qwen2VLImageProcessor(size=size, image_mean=half, image_std=half, **common)
    video_processor = Qwen3VLVideoProcessor(size=size, image_mean=half, image_std=half, **common)
    return Qwen3VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=chat_template,
    )


TINY_MIN_PIXELS, TINY_MAX_PIXELS = 28 * 28 * 4, 28 * 28 * 64  # small images: few visual tokens on CPU


def build_tiny_vlm(
    family: str,
    out_dir: str | Path,
    *,
    min_pixels: int = TINY_MIN_PIXELS,
    max_pixels: int = TINY_MAX_PIXELS,
    seed: int = 0,
) -> Path:
    """Write a tiny random ``family`` checkpoint (model, processor, chat template) to ``out_dir``.

    ``family`` is ``"qwen2.5-vl"`` (resize factor 28) or ``"qwen3-vl"`` (factor 32). The pixel budget
    is stored in the image processor, so images resize as ``smart_resize(h, w, factor, min_pixels,
    max_pixels)``. The same ``seed`` gives the same weights. Load back with ``AutoProcessor`` and
    ``AutoModelForImageTextToText``; nothing touches the network.
    """
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; expected one of {sorted(FAMILIES)}")
    if not 0 < min_pixels <= max_pixels:
        raise ValueError(f"need 0 < min_pixels <= max_pixels, got {min_pixels}, {max_pixels}")

    import torch
    from transformers import AutoModelForImageTextToText, GenerationConfig

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer = _build_tokenizer(vocab_size=1024)
    config = _model_config(family, tokenizer)
    torch.manual_seed(seed)
    model = AutoModelForImageTextToText.from_config(config, dtype=torch.float32)
    model.generation_config = GenerationConfig(
        bos_token_id=config.text_config.bos_token_id,
        eos_token_id=[tokenizer.eos_token_id, tokenizer.pad_token_id],
        pad_token_id=tokenizer.pad_token_id,
        do_sample=True,  # as the real checkpoints ship it: a server asked for a temperature samples
    )
    model.save_pretrained(out)
    _processor(family, tokenizer, min_pixels, max_pixels).save_pretrained(out)
    return out
