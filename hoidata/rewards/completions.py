"""One view of a completion, whoever produced it.

TRL hands rewards a list of messages per completion (assistant turns with parsed ``tool_calls``,
``tool`` turns with the results); our generation loop stores the same messages; a JSONL file of
completions may hold plain strings with the ``<tool_call>`` blocks still in the text. All three
become a :class:`Rollout`: the assistant texts (with the reasoning a response parser lifted into
``reasoning_content`` put back between ``<think>`` tags), the tool calls in order with their results, and
the final answer turn.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from hoidata.schemas.text import valid_text
from hoidata.tools.environment import is_tool_error

TOOL_CALL_BLOCK = re.compile(r"<tool_call>\s*(.*?)\s*</tool_call>", re.S)


@dataclass(frozen=True)
class ToolCall:
    name: str | None  # None when the call could not be read
    arguments: Any  # a dict when well-formed; whatever the model wrote otherwise
    result: str | None = None  # the tool's answer text; None when no result was recorded

    @property
    def failed(self) -> bool:
        """The tool answered with an error (ours, or TRL's for an exception)."""
        return self.result is not None and is_tool_error(self.result)


@dataclass(frozen=True)
class Rollout:
    turns: list[str]  # assistant texts, tool-call blocks removed
    turn_calls: list[int]  # tool calls made in each assistant turn
    calls: list[ToolCall] = field(default_factory=list)

    @property
    def final(self) -> str:
        return self.turns[-1] if self.turns else ""


def rollouts(completions: Sequence[Any]) -> list[Rollout]:
    return [rollout(c) for c in completions]


def rollout(completion: Any) -> Rollout:
    """A completion as a string, a message dict or a list of messages → :class:`Rollout`."""
    if isinstance(completion, str):
        completion = valid_text(completion)
        if "<tool_call>" not in completion:  # the common case, kept cheap
            return Rollout([completion], [0])
        messages: list[Any] = [{"role": "assistant", "content": completion}]
    elif isinstance(completion, dict):
        messages = [completion]
    elif isinstance(completion, list | tuple):
        messages = list(completion)
    else:
        messages = []
    turns: list[str] = []
    turn_calls: list[int] = []
    calls: list[tuple[str | None, Any]] = []
    results: list[str] = []
    for m in messages:
        if not isinstance(m, dict):
            continue
        role, text = m.get("role"), content_text(m.get("content"))
        if role == "assistant":
            reasoning = m.get("reasoning_content")  # response parsers (Qwen3) lift <think> out
            if isinstance(reasoning, str) and "<think>" not in text:
                text = f"<think>{valid_text(reasoning)}</think>{text}"
            structured = m.get("tool_calls") or []
            found = [_structured_call(c) for c in structured] if structured else []
            if TOOL_CALL_BLOCK.search(text):
                found += [parse_tool_call(body) for body in TOOL_CALL_BLOCK.findall(text)]
                text = TOOL_CALL_BLOCK.sub("", text)
            turns.append(text)
            turn_calls.append(len(found))
            calls.extend(found)
        elif role == "tool":
            results.append(text)
    with_results = [
        ToolCall(name, args, results[i] if i < len(results) else None) for i, (name, args) in enumerate(calls)
    ]
    return Rollout(turns, turn_calls, with_results)


def content_text(content: Any) -> str:
    """Message content as text (valid UTF-8): a string, or the text blocks of a content list joined."""
    if isinstance(content, str):
        return valid_text(content)
    if isinstance(content, list):
        return valid_text(
            "".join(
                b["text"]
                for b in content
                if isinstance(b, dict) and b.get("type") == "text" and isinstance(b.get("text"), str)
            )
        )
    return ""


def _structured_call(call: Any) -> tuple[str | None, Any]:
    fn = call.get("function", call) if isinstance(call, dict) else None
    if not isinstance(fn, dict):
        return None, None
    args = fn.get("arguments")
    if isinstance(args, str):
        args = _loads(args)
    name = fn.get("name")
    return (name if isinstance(name, str) else None), args


def parse_tool_call(body: str) -> tuple[str | None, Any]:
    """``(name, arguments)`` of the JSON inside a ``<tool_call>`` block; ``(None, None)`` if unreadable."""
    data = _loads(body)
    if not isinstance(data, dict):
        return None, None
    return _structured_call(data)


def _loads(text: str) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return text
