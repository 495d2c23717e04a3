"""Offline vLLM: tensor parallel within a node, whole waves submitted at once.

Thin on purpose: it follows vLLM's documented offline API (``LLM``, ``LLM.chat`` with one
``SamplingParams`` per conversation, ``image_pil`` content parts) for the versions trl supports,
and keeps every decision (prompts, tools, seeds, parsing) in the shared loop. Data parallelism
across GPU groups is ``gen-cot --shard i/N`` per engine process.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hoidata.engines.base import Conversation, Generation, Sampling
from hoidata.engines.messages import with_tool_turns_as_user
from hoidata.profiles.chat import tool_template


class VllmEngine:
    name = "vllm"

    def __init__(
        self,
        model: str,
        *,
        family: str | None = None,
        tp: int = 1,
        min_pixels: int | None = None,
        max_pixels: int | None = None,
        max_images: int = 8,
        max_model_len: int | None = None,
        gpu_memory_utilization: float = 0.9,
        seed: int = 0,
    ) -> None:
        from vllm import LLM

        self.model = model
        self.chat_template = tool_template(family) if family else None  # None: the model's own
        pixels = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
        self.llm = LLM(
            model=model,
            tensor_parallel_size=tp,
            mm_processor_kwargs=pixels or None,
            limit_mm_per_prompt={"image": max_images},
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            seed=seed,
        )

    def generate(
        self,
        conversations: Sequence[Conversation],
        sampling: Sampling,
        seeds: Sequence[int],
        tools: list[dict[str, Any]] | None = None,
    ) -> list[list[Generation]]:
        from vllm import SamplingParams

        if not conversations:
            return []
        params = [
            SamplingParams(
                n=sampling.n,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                max_tokens=sampling.max_tokens,
                stop=list(sampling.stop) or None,
                seed=seed,
                skip_special_tokens=False,  # Qwen2-VL writes boxes with special tokens
            )
            for seed in seeds
        ]
        try:
            outputs = self.llm.chat(
                [to_vllm(c) for c in conversations],
                sampling_params=params,
                chat_template=self.chat_template,
                tools=tools,
                add_generation_prompt=True,
                use_tqdm=False,
            )
        except Exception as e:  # a failed wave is recorded per conversation, never faked
            return [[Generation.failed(f"{type(e).__name__}: {e}")] * sampling.n for _ in conversations]
        return [
            [
                Generation(
                    o.text,
                    prompt_tokens=len(out.prompt_token_ids or []),
                    completion_tokens=len(o.token_ids),
                    finish_reason="length" if o.finish_reason == "length" else "stop",
                )
                for o in out.outputs
            ]
            for out in outputs
        ]


def to_vllm(conversation: Conversation) -> list[dict[str, Any]]:
    """Chat messages with PIL images as ``image_pil`` parts (no encoding round trip)."""
    messages = []
    for m in with_tool_turns_as_user(conversation):
        content = m.get("content")
        if isinstance(content, list):
            content = [
                {"type": "image_pil", "image_pil": b["image"]}
                if b.get("type") == "image"
                else {"type": "text", "text": b.get("text") or ""}
                for b in content
            ]
        messages.append({"role": m["role"], "content": content})
    return messages
