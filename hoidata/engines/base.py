"""What every engine promises, so the generation loop never knows which one runs.

A conversation is a list of chat messages whose content blocks may hold PIL images
(``{"type": "image", "image": PIL}``); assistant turns carry the raw text the model wrote, so
a re-rendered prompt is the exact prefix the model produced. Engines render with the processor's
chat template (the profile's tool-capable one) and the tool schemas they are given.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from hoidata.schemas.text import valid_text

Conversation = list[dict[str, Any]]


@dataclass(frozen=True)
class Sampling:
    """Sampling settings shared by all engines (vLLM's names)."""

    n: int = 1
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 1024
    stop: tuple[str, ...] = ()


@dataclass(frozen=True)
class Generation:
    """One completion, or the reason there is none (``finish_reason == "error"``)."""

    text: str
    prompt_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str = "stop"  # stop | length | error
    error: str | None = None

    def __post_init__(self) -> None:
        # a server's JSON may hold "\ud800": a lone surrogate no writer can store, so one reply would
        # crash its whole shard; it becomes U+FFFD here, for every engine and every stage
        object.__setattr__(self, "text", valid_text(self.text))
        if self.error is not None:
            object.__setattr__(self, "error", valid_text(self.error))

    @classmethod
    def failed(cls, error: str) -> Generation:
        return cls("", finish_reason="error", error=error)


class Engine(Protocol):
    name: str
    model: str

    def generate(
        self,
        conversations: Sequence[Conversation],
        sampling: Sampling,
        seeds: Sequence[int],
        tools: list[dict[str, Any]] | None = None,
    ) -> list[list[Generation]]:
        """``sampling.n`` generations per conversation, continuing from a generation prompt.

        ``seeds[i]`` makes conversation ``i``'s samples reproducible. A failure of one
        conversation is returned as :meth:`Generation.failed`, never raised for the batch.
        """
        ...


class AsyncEngine(Protocol):
    """An engine that takes one conversation at a time and many at once (continuous batching: vLLM's
    async engine, concurrent requests to a server), so a conversation never waits for others."""

    name: str
    model: str

    async def agenerate(
        self,
        conversation: Conversation,
        sampling: Sampling,
        seed: int,
        tools: list[dict[str, Any]] | None = None,
    ) -> list[Generation]:
        """``sampling.n`` generations of one conversation; failures as :meth:`Generation.failed`."""
        ...
