"""Format: the think → (tool call → result →)* think → answer structure, nothing else.

Every assistant turn opens with one non-empty ``<think>…</think>``. A turn that calls tools holds
nothing but its reasoning and the calls; the last turn holds its reasoning and one non-empty
``<answer>…</answer>``, with nothing after it. Stray or unbalanced tags, an answer in a tool turn,
a missing answer and an answer longer than ``max_answer_chars`` all score 0: format is a gate on
well-formed output, not a prize for emitting tags (an answer must also say something the task can
read, which the hierarchical scorer checks with the parsed answer).

The checks run on all turns of a batch at once, as Arrow string kernels.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.rewards.completions import Rollout

_TAGS = ("<think>", "</think>", "<answer>", "</answer>", "<tool_call>", "</tool_call>")
_S = r"(?s)^\s*"
_SHAPES = {  # (require_think, last turn) → the whole turn
    (True, True): _S + r"<think>.*</think>\s*<answer>.*</answer>\s*$",
    (True, False): _S + r"<think>.*</think>\s*$",
    (False, True): _S + r"(?:<think>.*</think>\s*)?<answer>.*</answer>\s*$",
    (False, False): _S + r"(?:<think>.*</think>)?\s*$",
}


def format_ok(
    rollouts: Sequence[Rollout], *, max_answer_chars: int = 4000, require_think: bool = True
) -> np.ndarray:
    """1.0 where the rollout is well formed, else 0.0."""
    n = len(rollouts)
    texts = [t for r in rollouts for t in r.turns]
    calls = np.fromiter((c for r in rollouts for c in r.turn_calls), np.int64, len(texts))
    turns = np.fromiter((len(r.turns) for r in rollouts), np.int64, n)
    owner = np.repeat(np.arange(n), turns)
    last = np.zeros(len(texts), bool)
    last[np.cumsum(turns)[turns > 0] - 1] = True
    arr = pa.array(texts, pa.string())
    count = {t: np.fromiter((x.count(t) for x in texts), np.int64, len(texts)) for t in _TAGS}
    thinks, answers = count["<think>"], count["<answer>"]
    ok = (count["<tool_call>"] == 0) & (count["</tool_call>"] == 0)
    ok &= (thinks == count["</think>"]) & ((thinks == 1) if require_think else (thinks <= 1))
    ok &= (answers == count["</answer>"]) & (answers == last)
    ok &= np.where(last, calls == 0, calls > 0)
    for is_last in (True, False):
        ok &= np.where(last == is_last, _matches(arr, _SHAPES[require_think, is_last]), True)
    ok &= ~_matches(arr, r"<think>\s*</think>") & ~_matches(arr, r"<answer>\s*</answer>")
    start = pc.find_substring(arr, "<answer>").to_numpy(zero_copy_only=False)
    end = pc.find_substring(arr, "</answer>").to_numpy(zero_copy_only=False)
    ok &= (answers == 0) | (end - start - len("<answer>") <= max_answer_chars)
    bad_turns = np.bincount(owner[~ok], minlength=n)
    return ((turns > 0) & (bad_turns == 0)).astype(np.float64)


def _matches(arr: pa.Array, pattern: str) -> np.ndarray:
    return pc.match_substring_regex(arr, pattern).to_numpy(zero_copy_only=False)
