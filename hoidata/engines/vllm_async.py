"""vLLM's async engine: every conversation is its own request, and vLLM batches whatever is in
flight (continuous batching), so a conversation back from its tools joins at once.

Thin on purpose, like :mod:`hoidata.engines.vllm`: vLLM's documented async API
(``AsyncLLMEngine.from_engine_args(AsyncEngineArgs(...))``, ``generate(prompt, params, request_id)``
streaming ``RequestOutput``) with a text prompt and its images as ``multi_modal_data`` PIL images
(no encoding round trip). The prompt is the processor's chat template (the profile's tool-capable
one), rendered as the hf engine renders it. The engine lives on its own event loop.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Sequence
from typing import Any

from hoidata.engines.background import BackgroundLoop
from hoidata.engines.base import Conversation, Generation, Sampling
from hoidata.engines.messages import with_tool_turns_as_user
from hoidata.errors import HoidataError
from hoidata.profiles.chat import use_tool_template


class AsyncVllmEngine:
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
        from transformers import AutoProcessor
        from vllm import AsyncEngineArgs

        self.model = model
        try:
            self.processor = AutoProcessor.from_pretrained(model)
        except OSError as e:
            raise HoidataError(f"cannot load the model {model!r}: {str(e).splitlines()[0]}") from None
        if family is not None:
            use_tool_template(self.processor, family)
        pixels = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
        args = AsyncEngineArgs(
            model=model,
            tensor_parallel_size=tp,
            mm_processor_kwargs=pixels or None,
            limit_mm_per_prompt={"image": max_images},
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            seed=seed,
        )
        self._background = BackgroundLoop("hoidata-vllm")
        self.engine = self._background.call(_start(args))
        self._ids = itertools.count()

    def generate(
        self,
        conversations: Sequence[Conversation],
        sampling: Sampling,
        seeds: Sequence[int],
        tools: list[dict[str, Any]] | None = None,
    ) -> list[list[Generation]]:
        jobs = [self._request(c, sampling, s, tools) for c, s in zip(conversations, seeds, strict=True)]
        return self._background.call(_gather(jobs))

    async def agenerate(
        self,
        conversation: Conversation,
        sampling: Sampling,
        seed: int,
        tools: list[dict[str, Any]] | None = None,
    ) -> list[Generation]:
        return await self._background.run(self._request(conversation, sampling, seed, tools))

    def close(self) -> None:
        shutdown = getattr(self.engine, "shutdown", None)
        if callable(shutdown):
            shutdown()
        self._background.close()

    def prompt(self, conversation: Conversation, tools: list[dict[str, Any]] | None) -> dict[str, Any]:
        """vLLM's text-and-images prompt: the chat template's text, images in the order it shows them."""
        messages = with_tool_turns_as_user(conversation)
        text = self.processor.apply_chat_template(
            messages, tools=tools, add_generation_prompt=True, tokenize=False
        )
        images = [
            b["image"]
            for m in messages
            if isinstance(m.get("content"), list)
            for b in m["content"]
            if b.get("type") == "image"
        ]
        return {"prompt": text, "multi_modal_data": {"image": images}} if images else {"prompt": text}

    async def _request(
        self, conversation: Conversation, sampling: Sampling, seed: int, tools: Any
    ) -> list[Generation]:
        from vllm import SamplingParams

        params = SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            max_tokens=sampling.max_tokens,
            stop=list(sampling.stop) or None,
            seed=seed,
            skip_special_tokens=False,  # Qwen2-VL writes boxes with special tokens
        )
        try:
            prompt = self.prompt(conversation, tools)
            final = None
            async for output in self.engine.generate(prompt, params, f"hoidata-{next(self._ids)}"):
                final = output  # streamed; the last one holds the finished samples
        except Exception as e:  # a failed request is recorded for its conversation, never faked
            return [Generation.failed(f"{type(e).__name__}: {e}")] * sampling.n
        if final is None:
            return [Generation.failed("vLLM returned no output")] * sampling.n
        prompt_tokens = len(final.prompt_token_ids or [])
        return [
            Generation(
                o.text,
                prompt_tokens=prompt_tokens,
                completion_tokens=len(o.token_ids),
                finish_reason="length" if o.finish_reason == "length" else "stop",
            )
            for o in final.outputs
        ]


async def _start(args: Any) -> Any:
    """Built on the engine's own loop, which its output handler then runs on."""
    from vllm import AsyncLLMEngine

    return AsyncLLMEngine.from_engine_args(args)


async def _gather(jobs: list[Any]) -> list[list[Generation]]:
    return list(await asyncio.gather(*jobs))
