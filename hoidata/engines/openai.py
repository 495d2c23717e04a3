"""Any OpenAI-compatible chat server: ``vllm serve``, ``transformers serve``, hosted APIs.

Requests run concurrently (at most ``concurrency`` in flight), each with a timeout and bounded
retries with exponential backoff: the ``openai`` client's own for a lost connection, a timeout, 429
and 5xx (honouring ``Retry-After``), and ours for a reply it cannot read (malformed JSON, no
choices), which the client does not retry. A request that still fails is a failed generation with
its error: the stage records the sample as failed, and a rerun makes exactly those again.

The ``n`` samples of a conversation are ``n`` requests with seeds ``seed + k``, since not every
server implements ``n``. A server that parses tool calls itself returns them as ``tool_calls``;
they are written back as the ``<tool_call>`` text the model produced, so the loop sees one format
whatever the server.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Sequence
from typing import Any

from hoidata.engines.background import BackgroundLoop
from hoidata.engines.base import Conversation, Generation, Sampling
from hoidata.engines.messages import ImageUrls, to_openai

MALFORMED_BACKOFF_S = 0.5  # the first wait before asking again after an unreadable reply; doubles


class OpenAIEngine:
    """Requests go out from the engine's own event loop (one client, one connection pool, one bound
    on requests in flight for every caller); :meth:`agenerate` serves the rollout loop a
    conversation at a time, :meth:`generate` a batch."""

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
        self.urls = ImageUrls()  # a conversation is resent every turn: its images encode once
        self._background: BackgroundLoop | None = None
        self._started = threading.Lock()
        self._client: Any = None
        self._gate: asyncio.Semaphore | None = None

    def generate(
        self,
        conversations: Sequence[Conversation],
        sampling: Sampling,
        seeds: Sequence[int],
        tools: list[dict[str, Any]] | None = None,
    ) -> list[list[Generation]]:
        return self._loop().call(self._all(conversations, sampling, seeds, tools))

    async def agenerate(
        self,
        conversation: Conversation,
        sampling: Sampling,
        seed: int,
        tools: list[dict[str, Any]] | None = None,
    ) -> list[Generation]:
        return await self._loop().run(self._conversation(conversation, sampling, seed, tools))

    def close(self) -> None:
        if self._background is not None:
            if self._client is not None:
                self._background.call(self._client.close())
            self._background.close()
            self._background = self._client = self._gate = None

    def _loop(self) -> BackgroundLoop:
        with self._started:
            if self._background is None:
                self._background = BackgroundLoop("hoidata-openai")
            return self._background

    async def _all(
        self, conversations: Sequence[Conversation], sampling: Sampling, seeds: Sequence[int], tools: Any
    ) -> list[list[Generation]]:
        jobs = [
            self._conversation(c, sampling, seed, tools) for c, seed in zip(conversations, seeds, strict=True)
        ]
        return list(await asyncio.gather(*jobs))

    async def _conversation(
        self, conversation: Conversation, sampling: Sampling, seed: int, tools: Any
    ) -> list[Generation]:
        """The ``n`` samples of one conversation: ``n`` requests with seeds ``seed + k``."""
        try:  # PNG encoding off the engine's loop, so requests in flight keep flowing
            messages = await asyncio.to_thread(to_openai, conversation, self.urls)
        except Exception as e:  # an unencodable image fails its conversation only
            return [Generation.failed(f"{type(e).__name__}: {e}")] * sampling.n
        client, gate = self._connection()
        samples = [self._one(client, gate, messages, sampling, seed + k, tools) for k in range(sampling.n)]
        return list(await asyncio.gather(*samples))

    def _connection(self) -> tuple[Any, asyncio.Semaphore]:
        """The client and the bound on requests in flight, made on the engine's loop when first needed."""
        if self._client is None or self._gate is None:
            from openai import AsyncOpenAI

            self._client = AsyncOpenAI(
                base_url=self.base_url, api_key=self.api_key, timeout=self.timeout, max_retries=self.retries
            )
            self._gate = asyncio.Semaphore(self.concurrency)
        return self._client, self._gate

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
        from openai import APIResponseValidationError

        unreadable = (ValueError, TypeError, IndexError, AttributeError, APIResponseValidationError)
        async with gate:
            for attempt in range(self.retries + 1):
                try:
                    return _generation(await client.chat.completions.create(**request))
                except unreadable as e:  # malformed JSON, no choices: the client does not retry these
                    error: Exception = e
                    if attempt < self.retries:
                        await asyncio.sleep(min(MALFORMED_BACKOFF_S * 2**attempt, 8.0))
                except Exception as e:  # after the client's own retries: recorded, never a made-up answer
                    return Generation.failed(f"{type(e).__name__}: {e}")
        return Generation.failed(
            f"unreadable reply after {self.retries + 1} tries: {type(error).__name__}: {error}"
        )


def _generation(response: Any) -> Generation:
    """A chat completion as the loop reads it: tool calls a server parsed written back as text."""
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


def _arguments(text: str) -> Any:
    try:
        return json.loads(text)
    except (TypeError, ValueError):
        return text
