"""Any OpenAI-compatible chat server: ``vllm serve``, ``transformers serve``, hosted APIs.

Requests run concurrently (at most ``concurrency`` in flight), each with a timeout and retries
with exponential backoff (the ``openai`` client's own). The ``n`` samples of a conversation are
``n`` requests with seeds ``seed + k``, since not every server implements ``n``. A server that
parses tool calls itself returns them as ``tool_calls``; they are written back as the
``<tool_call>`` text the model produced, so the loop sees one format whatever the server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from typing import Any

from hoidata.engines.base import Conversation, Generation, Sampling
from hoidata.engines.messages import to_openai


class OpenAIEngine:
    name = "openai"

    def __init__(
        self,
        model: str,
        *,
        base_url: str,
        api_key: str | None = None,
        concurrency: int = 32,
        timeout: float = 300.0,
        retries: int = 3,
    ) -> None:
        self.model = model
        self.base_url = base_url
        self.api_key = api_key or "EMPTY"  # local servers ignore it; the client requires one
        self.concurrency = concurrency
        self.timeout = timeout
        self.retries = retries

    def generate(
        self,
        conversations: Sequence[Conversation],
        sampling: Sampling,
        seeds: Sequence[int],
        tools: list[dict[str, Any]] | None = None,
    ) -> list[list[Generation]]:
        return asyncio.run(self._all(conversations, sampling, seeds, tools))

    async def _all(
        self, conversations: Sequence[Conversation], sampling: Sampling, seeds: Sequence[int], tools: Any
    ) -> list[list[Generation]]:
        from openai import AsyncOpenAI

        client = AsyncOpenAI(
            base_url=self.base_url, api_key=self.api_key, timeout=self.timeout, max_retries=self.retries
        )
        gate = asyncio.Semaphore(self.concurrency)
        try:
            jobs = []
            for conversation, seed in zip(conversations, seeds, strict=True):
                try:
                    messages = to_openai(conversation)
                except Exception as e:  # an unencodable image fails its conversation only
                    failed = Generation.failed(f"{type(e).__name__}: {e}")
                    jobs.append([_done(failed) for _ in range(sampling.n)])
                    continue
                jobs.append(
                    [self._one(client, gate, messages, sampling, seed + k, tools) for k in range(sampling.n)]
                )
            flat = await asyncio.gather(*(job for row in jobs for job in row))
        finally:
            await client.close()
        it = iter(flat)
        return [[next(it) for _ in row] for row in jobs]

    async def _one(
        self, client: Any, gate: asyncio.Semaphore, messages: list, sampling: Sampling, seed: int, tools: Any
    ) -> Generation:
        request: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            "temperature": sampling.temperature,
            "top_p": sampling.top_p,
            "max_tokens": sampling.max_tokens,
            "seed": seed,
        }
        if sampling.stop:
            request["stop"] = list(sampling.stop)
        if tools:
            request["tools"] = tools
        async with gate:
            try:
                response = await client.chat.completions.create(**request)
            except Exception as e:  # after the client's retries: recorded, never replaced by a fake answer
                return Generation.failed(f"{type(e).__name__}: {e}")
        choice = response.choices[0]
        text = _with_reasoning(choice.message)
        for call in choice.message.tool_calls or []:
            payload = {"name": call.function.name, "arguments": _arguments(call.function.arguments)}
            text += f"\n<tool_call>\n{json.dumps(payload)}\n</tool_call>"
        usage = response.usage
        return Generation(
            text,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            finish_reason="length" if choice.finish_reason == "length" else "stop",
        )


def _with_reasoning(message: Any) -> str:
    """The reply as the model wrote it: a server's reasoning parser (vLLM ``--reasoning-parser``,
    ``transformers serve`` with a Qwen3 schema) lifts ``<think>`` out into ``reasoning_content``
    (``reasoning`` in newer vLLM); it goes back in, so rewards and the next turn see the thought."""
    text = message.content or ""
    reasoning = getattr(message, "reasoning_content", None) or getattr(message, "reasoning", None)
    if isinstance(reasoning, str) and reasoning and "<think>" not in text:
        text = f"<think>{reasoning.strip()}</think>{text}"
    return text


async def _done(g: Generation) -> Generation:
    return g


def _arguments(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text
