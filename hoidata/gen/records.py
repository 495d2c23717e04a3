"""Rollouts as dataset rows: the SFT schema (so a kept rollout is already TRL SFT data) plus what
generated it, how it ended, its token counts and its rewards.

Images are real images: the scene as the input stored it, then every image a tool returned (PNG
bytes), in the order the conversation shows them. Tool results are the user turns Qwen's chat
templates render a tool message as; assistant tool calls become structured ``tool_calls`` (an
unreadable call stays in the text, as the model wrote it).
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
from PIL import Image

from hoidata.engines.messages import with_tool_turns_as_user
from hoidata.gen.loop import Trace
from hoidata.gen.media import CropEncoder, png_bytes
from hoidata.rewards import COMPONENTS, Scores
from hoidata.rewards.completions import TOOL_CALL_BLOCK, parse_tool_call
from hoidata.sft.messages import IMAGE_BLOCK, message, text
from hoidata.sft.schema import SFT_SCHEMA, sft_features

REWARD_FIELDS = (*COMPONENTS, "total")
REWARDS = pa.struct([(c, pa.float64()) for c in REWARD_FIELDS])
GEN_SCHEMA = pa.schema(
    [
        *SFT_SCHEMA,
        ("prompt_id", pa.string()),  # the SFT sample the prompt came from: rollouts of one prompt share it
        ("rollout", pa.int32()),
        ("status", pa.string()),  # answered | max_turns | length | engine_error
        ("error", pa.string()),
        ("turns", pa.int32()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
        ("rewards", REWARDS),
        ("engine", pa.string()),
        ("model", pa.string()),
        ("seed", pa.int64()),
    ]
)


def gen_features(decode_images: bool) -> dict[str, Any]:
    value = {"_type": "Value"}
    return sft_features(decode_images) | {
        "prompt_id": value | {"dtype": "string"},
        "rollout": value | {"dtype": "int32"},
        "status": value | {"dtype": "string"},
        "error": value | {"dtype": "string"},
        "turns": value | {"dtype": "int32"},
        "prompt_tokens": value | {"dtype": "int64"},
        "completion_tokens": value | {"dtype": "int64"},
        "rewards": {c: value | {"dtype": "float64"} for c in REWARD_FIELDS},
        "engine": value | {"dtype": "string"},
        "model": value | {"dtype": "string"},
        "seed": value | {"dtype": "int64"},
    }


def rollout_rows(
    traces: list[Trace],
    samples: list[dict[str, Any]],
    prompts: list[list[dict[str, Any]]],
    scores: Scores,
    *,
    engine: str,
    model: str,
    seed: int,
    tools_json: str,
    threads: int = 4,
    encoder: CropEncoder | None = None,
) -> list[dict[str, Any]]:
    """One row per trace; ``samples[t.sample]`` is the SFT row its prompt came from and
    ``prompts[t.sample]`` the stored form of that prompt (image blocks as placeholders).
    ``encoder``: the one the async loop started the tools' images in (else encoded here)."""
    rows = []
    pending: list[tuple[list[dict[str, Any]], int, Image.Image]] = []  # (image list, slot, crop)
    for k, t in enumerate(traces):
        sample = samples[t.sample]
        images = [sample["images"][0]]
        messages = list(prompts[t.sample])
        for m in with_tool_turns_as_user(t.messages):
            if m["role"] == "assistant":
                messages.append(_assistant(m["content"]))
                continue
            content = []
            for block in m["content"]:
                if block.get("type") == "image":
                    content.append(IMAGE_BLOCK)
                    pending.append((images, len(images), block["image"]))
                    images.append({"bytes": None, "path": None})
                else:
                    content.append(text(block.get("text") or ""))
            messages.append(message("user", content))
        rows.append(
            {
                **{
                    name: sample[name]
                    for name in ("source_id", "task", "width", "height", "pairs", "refer_boxes")
                },
                "resized_width": sample["resized_width"],
                "resized_height": sample["resized_height"],
                "sample_id": f"{sample['sample_id']}/{t.rollout}",
                "prompt_id": sample["sample_id"],
                "images": images,
                "messages": messages,
                "tools": tools_json,
                "uses_tool": bool(t.calls),
                "rollout": t.rollout,
                "status": t.status,
                "error": t.error,
                "turns": t.turns,
                "prompt_tokens": t.prompt_tokens,
                "completion_tokens": t.completion_tokens,
                "rewards": {c: float(getattr(scores, c)[k]) for c in REWARD_FIELDS},
                "engine": engine,
                "model": model,
                "seed": seed,
            }
        )
    if encoder is not None:
        for images, slot, image in pending:
            images[slot] = {"bytes": encoder.encode(image), "path": None}
        return rows
    with ThreadPoolExecutor(threads) as pool:  # PIL encodes without the GIL
        for (images, slot, _), data in zip(
            pending, pool.map(png_bytes, [p[2] for p in pending]), strict=True
        ):
            images[slot] = {"bytes": data, "path": None}
    return rows


def _assistant(raw: str) -> dict[str, Any]:
    calls = []
    kept = raw
    for match in TOOL_CALL_BLOCK.finditer(raw):
        name, arguments = parse_tool_call(match.group(1))
        if name is None or not isinstance(arguments, dict):
            continue  # unreadable: stays in the text
        calls.append({"type": "function", "function": {"name": name, "arguments": json.dumps(arguments)}})
        kept = kept.replace(match.group(0), "", 1)
    return message("assistant", [text(kept.strip() if calls else kept)], calls or None)
