"""Tiny offline Qwen-VL checkpoints and the project's tool-calling chat template, on real parts.

The tiny models stand in for the real ones in training tests, so what matters is that the plumbing
is the real plumbing: the processors resize with Qwen's rule and the project's ``smart_resize``
predicts the image token count, the model runs, and trl accepts the chat templates for tool use,
assistant-only loss and tool-call parsing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from tiny_fixtures import TinyVLM, cpu_grpo_config, scripted_generate
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import chat_template_utils as ctu

from hoidata.models.tiny import build_tiny_vlm
from hoidata.profiles.chat import load_template, use_tool_template
from hoidata.schemas.boxes import smart_resize

FACTORS = {"qwen2.5-vl": 28, "qwen3-vl": 32}
PATCHES = {"qwen2.5-vl": 14, "qwen3-vl": 16}
MIN_PIXELS, MAX_PIXELS = 28 * 28 * 4, 28 * 28 * 64  # build_tiny_vlm's defaults
VISION = "<|vision_start|><|image_pad|><|vision_end|>"

# (height, width): within the budget, above it (downscaled), below it (upscaled), elongated
SIZES = [(150, 200), (700, 1000), (30, 40), (60, 480)]


def _image(height: int, width: int, seed: int = 0) -> Image.Image:
    g = torch.Generator().manual_seed(seed)
    pixels = torch.randint(0, 256, (height, width, 3), generator=g, dtype=torch.uint8)
    return Image.fromarray(pixels.numpy())


def _pad_id(processor: Any) -> int:
    return processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")


def zoom_in(bbox_2d: list[int]) -> list[dict[str, Any]]:
    """Crop the image to a region and look at it enlarged.

    Args:
        bbox_2d: The region as [x1, y1, x2, y2] in pixels of the resized image.
    """
    return [{"type": "image", "image": _image(40, 60)}, {"type": "text", "text": "zoomed in"}]


def _zoom_conversation(first: Image.Image, crop: Image.Image, arguments: Any) -> list[dict[str, Any]]:
    """user(image + question) → assistant(zoom_in call) → tool(image + text) → assistant(answer)."""
    call = {"type": "function", "function": {"name": "zoom_in", "arguments": arguments}}
    return [
        {
            "role": "user",
            "content": [{"type": "image", "image": first}, {"type": "text", "text": "What is he doing?"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": ""}], "tool_calls": [call]},
        {
            "role": "tool",
            "name": "zoom_in",
            "content": [{"type": "image", "image": crop}, {"type": "text", "text": "crop"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "<answer>ride bicycle</answer>"}]},
    ]


@pytest.fixture(scope="module")
def tool_processor(tiny_vlm: TinyVLM) -> Any:
    """A tiny Qwen2.5-VL processor with the project's tool template installed."""
    return use_tool_template(AutoProcessor.from_pretrained(tiny_vlm("qwen2.5-vl")), "qwen2.5-vl")


# ---- the tiny checkpoints -------------------------------------------------------------------------


@pytest.mark.parametrize("family", ["qwen2.5-vl", "qwen3-vl"])
def test_loads_back_offline_with_qwen_token_layout(tiny_vlm: TinyVLM, family: str) -> None:
    path = tiny_vlm(family)
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    expected = {"qwen2.5-vl": "Qwen2_5_VL", "qwen3-vl": "Qwen3VL"}[family]
    assert type(model).__name__ == f"{expected}ForConditionalGeneration"
    assert type(processor).__name__ == f"{expected}Processor"
    assert sum(p.numel() for p in model.parameters()) < 1_000_000

    tok = processor.tokenizer
    # same offsets from <|endoftext|> as the real vocabulary (151643 → 151644, 151645, 151655, ...)
    base = tok.convert_tokens_to_ids("<|endoftext|>")
    offsets = {
        "<|im_start|>": 1,
        "<|im_end|>": 2,
        "<|box_start|>": 5,
        "<|vision_start|>": 9,
        "<|image_pad|>": 12,
    }
    assert {t: tok.convert_tokens_to_ids(t) - base for t in offsets} == offsets
    assert tok.eos_token == "<|im_end|>" and tok.pad_token == "<|endoftext|>"
    assert model.config.image_token_id == base + 12
    assert model.config.text_config.vocab_size == len(tok)
    # GRPO decodes with skip_special_tokens=True: the tool and answer tags must survive, box tokens not
    text = "<tool_call><think>a</think><answer>b</answer></tool_call><|box_start|>"
    assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text.removesuffix("<|box_start|>")
    # the stock template, byte-identical to trl's copy, so trl's template lookups recognise it
    stock = {"qwen2.5-vl": ctu.qwen2_5_vl_chat_template, "qwen3-vl": ctu.qwen3_vl_chat_template}[family]
    assert processor.chat_template == stock


def test_same_seed_same_checkpoint(tiny_vlm: TinyVLM, tmp_path: Path) -> None:
    again = build_tiny_vlm("qwen2.5-vl", tmp_path / "a", seed=0)
    other = build_tiny_vlm("qwen2.5-vl", tmp_path / "b", seed=1)
    first = tiny_vlm("qwen2.5-vl")
    for name in ("model.safetensors", "tokenizer.json", "config.json", "processor_config.json"):
        assert (again / name).read_bytes() == (first / name).read_bytes(), name
    assert (other / "model.safetensors").read_bytes() != (first / "model.safetensors").read_bytes()


def test_rejects_unknown_family(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown family"):
        build_tiny_vlm("llava", tmp_path)


@pytest.mark.parametrize("family", ["qwen2.5-vl", "qwen3-vl"])
def test_image_tokens_follow_smart_resize(tiny_vlm: TinyVLM, family: str) -> None:
    processor = AutoProcessor.from_pretrained(tiny_vlm(family))
    factor, patch = FACTORS[family], PATCHES[family]
    for height, width in SIZES:
        messages = [
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": _image(height, width)},
                    {"type": "text", "text": "Who?"},
                ],
            }
        ]
        out = processor.apply_chat_template(messages, tokenize=True, return_dict=True, return_tensors="pt")
        h, w = smart_resize(height, width, factor, MIN_PIXELS, MAX_PIXELS)
        assert MIN_PIXELS <= h * w <= MAX_PIXELS
        assert out["image_grid_thw"].tolist() == [[1, h // patch, w // patch]], (height, width)
        assert int((out["input_ids"] == _pad_id(processor)).sum()) == (h // factor) * (w // factor)


@pytest.mark.parametrize("family", ["qwen2.5-vl", "qwen3-vl"])
def test_forward_pass_gives_finite_loss(tiny_vlm: TinyVLM, family: str) -> None:
    path = tiny_vlm(family)
    processor = AutoProcessor.from_pretrained(path)
    model = AutoModelForImageTextToText.from_pretrained(path)
    messages = [
        {
            "role": "user",
            "content": [{"type": "image", "image": _image(150, 200)}, {"type": "text", "text": "Verb?"}],
        },
        {"role": "assistant", "content": [{"type": "text", "text": '{"bbox_2d": [1, 2, 30, 40]} ride'}]},
    ]
    inputs = processor.apply_chat_template(messages, tokenize=True, return_dict=True, return_tensors="pt")
    with torch.no_grad():
        out = model(**inputs, labels=inputs["input_ids"])
    assert torch.isfinite(out.loss)
    assert out.logits.shape[-1] == len(processor.tokenizer)


# ---- the tool template ----------------------------------------------------------------------------


def test_trl_tool_support_needs_our_template_for_qwen25_only(tiny_vlm: TinyVLM, tool_processor: Any) -> None:
    stock = AutoProcessor.from_pretrained(tiny_vlm("qwen2.5-vl"))
    assert not ctu.supports_tool_calling(stock)
    assert ctu.supports_tool_calling(tool_processor)
    assert tool_processor.chat_template == load_template("qwen2_5_vl_tools.jinja")
    assert tool_processor.tokenizer.chat_template == tool_processor.chat_template

    qwen3 = AutoProcessor.from_pretrained(tiny_vlm("qwen3-vl"))
    assert ctu.supports_tool_calling(qwen3)
    use_tool_template(qwen3, "qwen3-vl")
    assert qwen3.chat_template == ctu.qwen3_vl_chat_template  # keeps its own
    assert qwen3.tokenizer.response_template is not None  # parsing set by trl's own lookup


def test_trl_training_checks_accept_our_template(tool_processor: Any) -> None:
    # GRPO's tool loop needs prefix preservation; SFT's assistant_only_loss needs generation markers
    # that include the end-of-turn token. With all three, trl uses the template as it is.
    assert ctu.is_chat_template_prefix_preserving(tool_processor)
    assert ctu.has_generation_markers(tool_processor.chat_template)
    assert ctu.is_chat_template_stop_token_trained(tool_processor)
    assert ctu.get_training_chat_template(tool_processor) is None


@pytest.mark.parametrize(
    "kwargs",
    [{}, {"add_generation_prompt": True}, {"add_vision_id": True}],
    ids=["plain", "prompt", "vision-id"],
)
def test_without_tools_renders_like_stock(tiny_vlm: TinyVLM, tool_processor: Any, kwargs: dict) -> None:
    stock = AutoProcessor.from_pretrained(tiny_vlm("qwen2.5-vl"))
    image = _image(30, 40)
    conversations = [
        [
            {
                "role": "user",
                "content": [{"type": "image", "image": image}, {"type": "text", "text": "Who?"}],
            },
            {"role": "assistant", "content": [{"type": "text", "text": "A man."}]},
            {
                "role": "user",
                "content": [{"type": "text", "text": "And?"}, {"type": "image", "image": image}],
            },
        ],
        [
            {"role": "system", "content": [{"type": "text", "text": "Be brief."}]},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello"},
        ],
    ]
    for messages in conversations:
        assert tool_processor.apply_chat_template(messages, **kwargs) == stock.apply_chat_template(
            messages, **kwargs
        )


def test_zoom_conversation_renders_two_images_and_qwen_tool_format(tool_processor: Any) -> None:
    first, crop = _image(150, 200), _image(700, 1000, seed=1)
    text = tool_processor.apply_chat_template(
        _zoom_conversation(first, crop, {"bbox_2d": [10, 20, 110, 120]}), tools=[zoom_in], add_vision_id=True
    )
    assert text.count(VISION) == 2
    assert "Picture 1: " + VISION + "What is he doing?" in text
    call = '<tool_call>\n{"name": "zoom_in", "arguments": {"bbox_2d": [10, 20, 110, 120]}}\n</tool_call>'
    assert f"<|im_start|>assistant\n{call}<|im_end|>\n" in text
    assert f"<|im_start|>user\n<tool_response>\nPicture 2: {VISION}crop\n</tool_response><|im_end|>\n" in text
    assert text.endswith("<|im_start|>assistant\n<answer>ride bicycle</answer><|im_end|>\n")
    # tools as one JSON object per line inside <tools></tools> in the (default) system turn
    system = text.split("<|im_end|>")[0]
    assert system.startswith("<|im_start|>system\nYou are a helpful assistant.\n\n# Tools")
    schemas = system.split("<tools>\n")[1].split("\n</tools>")[0].splitlines()
    assert [json.loads(s)["function"]["name"] for s in schemas] == ["zoom_in"]

    # JSON-string arguments (what an Arrow-friendly dataset stores) render exactly like a mapping
    as_string = tool_processor.apply_chat_template(
        _zoom_conversation(first, crop, '{"bbox_2d": [10, 20, 110, 120]}'),
        tools=[zoom_in],
        add_vision_id=True,
    )
    assert as_string == text

    # the processor expands each placeholder by its own image's smart_resize grid
    out = tool_processor.apply_chat_template(
        _zoom_conversation(first, crop, {"bbox_2d": [10, 20, 110, 120]}),
        tokenize=True,
        return_dict=True,
        return_tensors="pt",
    )
    grids = [smart_resize(h, w, 28, MIN_PIXELS, MAX_PIXELS) for h, w in ((150, 200), (700, 1000))]
    assert out["image_grid_thw"].tolist() == [[1, h // 14, w // 14] for h, w in grids]
    assert int((out["input_ids"] == _pad_id(tool_processor)).sum()) == sum(
        (h // 28) * (w // 28) for h, w in grids
    )


def test_consecutive_tool_results_share_one_user_turn(tool_processor: Any) -> None:
    calls = [
        {"type": "function", "function": {"name": "zoom_in", "arguments": {"bbox_2d": [0, 0, 5, 5]}}},
        {"type": "function", "function": {"name": "zoom_in", "arguments": {"bbox_2d": [5, 5, 9, 9]}}},
    ]
    messages = [
        {"role": "user", "content": "Look twice."},
        {"role": "assistant", "content": "Sure.", "tool_calls": calls},
        {"role": "tool", "name": "zoom_in", "content": "one"},
        {"role": "tool", "name": "zoom_in", "content": "two"},
    ]
    text = tool_processor.apply_chat_template(messages, add_generation_prompt=True)
    assert "<|im_start|>assistant\nSure.\n<tool_call>\n" in text
    assert "</tool_call>\n<tool_call>\n" in text
    assert text.endswith(
        "<|im_start|>user\n<tool_response>\none\n</tool_response>\n<tool_response>\ntwo\n</tool_response>"
        "<|im_end|>\n<|im_start|>assistant\n"
    )


def test_assistant_mask_covers_calls_and_answer_not_tool_results(tool_processor: Any) -> None:
    messages = _zoom_conversation(_image(150, 200), _image(30, 40, seed=1), {"bbox_2d": [1, 2, 3, 4]})
    out = tool_processor.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True, return_tensors="pt"
    )
    ids, mask = out["input_ids"][0], out["assistant_masks"][0].bool()
    tok = tool_processor.tokenizer
    assert tok.decode(ids[mask]) == (
        '<tool_call>\n{"name": "zoom_in", "arguments": {"bbox_2d": [1, 2, 3, 4]}}\n</tool_call><|im_end|>\n'
        "<answer>ride bicycle</answer><|im_end|>\n"
    )
    unmasked = tok.decode(ids[~mask])
    assert "<tool_response>\n" in unmasked and "crop\n</tool_response>" in unmasked
    assert not mask[ids == _pad_id(tool_processor)].any()


def test_trl_sft_collator_masks_tool_results(tool_processor: Any) -> None:
    from trl.trainer.sft_trainer import DataCollatorForVisionLanguageModeling

    # trl fills the `images` column into user/assistant/system placeholders only: a tool result's
    # image must already be in its message.
    crop = _image(30, 40, seed=1)
    messages = _zoom_conversation(_image(150, 200), crop, '{"bbox_2d": [1, 2, 3, 4]}')
    messages[0]["content"][0] = {"type": "image"}
    collator = DataCollatorForVisionLanguageModeling(tool_processor, assistant_only_loss=True)
    batch = collator([{"images": [_image(150, 200)], "messages": messages}])
    labels, ids = batch["labels"][0], batch["input_ids"][0]
    assert batch["image_grid_thw"].shape[0] == 2
    trained = tool_processor.tokenizer.decode(ids[labels != -100])
    assert trained.startswith("<tool_call>\n") and trained.endswith(
        "<answer>ride bicycle</answer><|im_end|>\n"
    )
    assert "tool_response" not in trained


def test_trl_parses_tool_calls_from_completions(tool_processor: Any) -> None:
    tok = tool_processor.tokenizer
    prompt = [
        {
            "role": "user",
            "content": [{"type": "image", "image": _image(150, 200)}, {"type": "text", "text": "?"}],
        }
    ]
    prompt_ids = tool_processor.apply_chat_template(
        prompt, tools=[zoom_in], add_generation_prompt=True, tokenize=True, return_dict=False
    )[0]
    call = '{"name": "zoom_in", "arguments": {"bbox_2d": [5, 6, 70, 80]}}'
    completion = f"Let me look.\n<tool_call>\n{call}\n</tool_call>"
    ids = tok(completion + "<|im_end|>")["input_ids"]
    parsed = ctu.parse_response(tok, ids, prefix=prompt_ids, tools=[zoom_in])
    assert parsed["content"] == "Let me look."
    assert parsed["tool_calls"] == [
        {"type": "function", "function": {"name": "zoom_in", "arguments": {"bbox_2d": [5, 6, 70, 80]}}}
    ]
    answer = ctu.parse_response(tok, tok("<answer>ride</answer><|im_end|>")["input_ids"], prefix=prompt_ids)
    assert answer == {"role": "assistant", "content": "<answer>ride</answer>"}


def test_grpo_runs_a_zoom_tool_loop(tiny_vlm: TinyVLM, tmp_path: Path) -> None:
    """GRPOTrainer accepts the processor with tools, parses the call, runs the tool, feeds its image back."""
    from datasets import Dataset
    from trl import GRPOTrainer

    path = tiny_vlm("qwen2.5-vl")
    # a fresh processor: the trainer may change the one it is given
    processor = use_tool_template(AutoProcessor.from_pretrained(path), "qwen2.5-vl")
    model = AutoModelForImageTextToText.from_pretrained(path)
    tok = processor.tokenizer
    response_id = tok.convert_tokens_to_ids("<tool_response>")
    call = '<tool_call>\n{"name": "zoom_in", "arguments": {"bbox_2d": [10, 20, 110, 120]}}\n</tool_call><|im_end|>'

    def next_text(prompt: torch.Tensor) -> str:
        # a random model never emits a tool call: call the tool first, answer once a result is in the prompt
        return "<answer>ride bicycle</answer><|im_end|>" if (prompt == response_id).any() else call

    model.generate = scripted_generate(tok, next_text)
    seen: list[Any] = []

    def reward(completions: list, **_: Any) -> list[float]:
        seen.extend(completions)
        return [float("ride" in c[-1]["content"]) for c in completions]

    image = _image(150, 200)
    data = Dataset.from_list(
        [{"prompt": [{"role": "user", "content": "What is he doing?"}], "image": image}] * 2
    )
    args = cpu_grpo_config(tmp_path)
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=reward,
        args=args,
        train_dataset=data,
        processing_class=processor,
        tools=[zoom_in],
    )
    assert trainer.chat_template is None  # our template is used as is
    trainer.train()
    assert len(seen) == 2
    first_turn, tool_turn, last_turn = seen[0]
    assert first_turn["tool_calls"][0]["function"] == {
        "name": "zoom_in",
        "arguments": {"bbox_2d": [10, 20, 110, 120]},
    }
    assert tool_turn["role"] == "tool" and tool_turn["content"][0]["type"] == "image"
    assert last_turn["content"] == "<answer>ride bicycle</answer>"
