"""Format: the think → (tool call → result →)* think → answer structure, nothing else.

Every assistant turn opens with one non-empty ``<think>…</think>``. A turn that calls tools holds
nothing but its reasoning and the calls; the last turn holds its reasoning and one non-empty
``<answer>…</answer>``, with nothing after it. Stray or unbalanced tags, an answer in a tool turn,
a missing answer and an answer longer than ``max_answer_chars`` all score 0: format is a gate on
well-formed output, not a prize for emitting tags (an answer must also say something the task can
read, which the hierarchical scorer checks with the parsed answer).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from hoidata.rewards.completions import Rollout

_TAGS = ("<think>", "</think>", "<answer>", "</answer>", "<tool_call>", "</tool_call>")
_THINK = re.compile(r"\s*<think>(.*?)</think>\s*(.*)", re.S)
_ANSWER = re.compile(r"<answer>(.*?)</answer>\s*", re.S)


def format_ok(
    rollouts: Sequence[Rollout], *, max_answer_chars: int = 4000, require_think: bool = True
) -> np.ndarray:
    """1.0 where the rollout is well formed, else 0.0."""
    return np.fromiter(
        (float(_well_formed(r, max_answer_chars, require_think)) for r in rollouts), np.float64, len(rollouts)
    )


def _well_formed(r: Rollout, max_answer_chars: int, require_think: bool) -> bool:
    if not r.turns:
        return False
    last = len(r.turns) - 1
    for i, (text, calls) in enumerate(zip(r.turns, r.turn_calls, strict=True)):
        counts = [text.count(t) for t in _TAGS]
        if counts[4] or counts[5]:  # tool-call tags left in the text: an unreadable call
            return False
        if require_think:
            if counts[0] != 1 or counts[1] != 1:
                return False
            m = _THINK.fullmatch(text)
            if m is None or not m.group(1).strip():
                return False
            rest = m.group(2)
        else:
            if counts[0] != counts[1] or counts[0] > 1:
                return False
            m = _THINK.fullmatch(text)
            rest = m.group(2) if m else text.strip()
        if i < last:
            if calls == 0 or counts[2] or counts[3] or rest.strip():
                return False
            continue
        if calls or counts[2] != 1 or counts[3] != 1:
            return False
        a = _ANSWER.fullmatch(rest)
        if a is None or not a.group(1).strip() or len(a.group(1)) > max_answer_chars:
            return False
    return True
