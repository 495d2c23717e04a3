"""The multi-turn tool loop: generate, run the tool calls, append the results, generate again.

Here rollouts advance in waves: every rollout that still waits for the model is submitted in one
engine call. The first wave samples ``n`` rollouts per prompt; each later wave continues every open
rollout once. Every rollout owns a fresh tool environment reset to its sample, so the tools answer
exactly as they do under GRPO. :mod:`hoidata.gen.rollouts` runs the same steps asynchronously (a
conversation advances as soon as its turn is back; tools run while others generate) and, with the
same seeds, writes the same rollouts.

Nothing is invented: a malformed tool call gets the tool error the model would see during RL, an
engine failure or a cut-off generation ends the rollout with that status, and a rollout that
still calls tools after ``max_turns`` ends as ``max_turns``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from hoidata.engines.base import Conversation, Engine, Generation, Sampling
from hoidata.rewards.completions import TOOL_CALL_BLOCK, parse_tool_call
from hoidata.tools.detection import stable_seed
from hoidata.tools.environment import HoiEnvironment, ToolCall, call_tool, scene_of, start_on

ANSWERED, MAX_TURNS, LENGTH, ENGINE_ERROR = "answered", "max_turns", "length", "engine_error"


@dataclass
class Trace:
    """One rollout of one sample: what the model wrote and the tools answered, after the prompt."""

    sample: int  # index of the prompt
    rollout: int
    messages: list[dict[str, Any]] = field(default_factory=list)  # assistant (raw text) and tool turns
    status: str = ""  # answered | max_turns | length | engine_error; "" while open
    error: str | None = None
    turns: int = 0
    prompt_tokens: int = 0  # summed over turns
    completion_tokens: int = 0
    calls: list[ToolCall] = field(default_factory=list)


@dataclass(frozen=True)
class LoopConfig:
    sampling: Sampling = field(default_factory=Sampling)
    max_turns: int = 3  # model turns per rollout, tool-calling ones included
    seed: int = 0


def run_loop(
    engine: Engine,
    prompts: Sequence[Conversation],
    rows: Sequence[dict[str, Any]],
    environment: Callable[[], HoiEnvironment],
    config: LoopConfig,
    tools: list[dict[str, Any]] | None = None,
    sample_ids: Sequence[str] | None = None,
) -> list[Trace]:
    """Roll out every prompt ``config.sampling.n`` times; ``rows[i]`` resets prompt ``i``'s tools.

    ``sample_ids`` name the prompts in the seeds (default: their positions), so a prompt gets the
    same samples whichever batch or shard it runs in.
    """
    if config.max_turns < 1:
        raise ValueError("max_turns must be at least 1")
    ids = [str(i) for i in range(len(prompts))] if sample_ids is None else [str(s) for s in sample_ids]
    first = engine.generate(prompts, config.sampling, [first_seed(config, s) for s in ids], tools)
    traces: list[Trace] = []
    envs: list[HoiEnvironment] = []
    for i, generations in enumerate(first):
        scene = scene_of(rows[i])  # one for the prompt's rollouts
        for r, generation in enumerate(exactly(generations, config.sampling.n)):
            env = environment()
            start_on(env, scene, rows[i])
            trace = Trace(i, r)
            run_calls(env, trace, step(trace, generation, config))
            traces.append(trace)
            envs.append(env)
    single = replace(config.sampling, n=1)
    while True:
        open_ = [k for k, t in enumerate(traces) if not t.status]
        if not open_:
            break
        conversations = [list(prompts[traces[k].sample]) + traces[k].messages for k in open_]
        seeds = [turn_seed(config, ids[traces[k].sample], traces[k]) for k in open_]
        results = engine.generate(conversations, single, seeds, tools)
        for k, generations in zip(open_, results, strict=True):
            run_calls(envs[k], traces[k], step(traces[k], exactly(generations, 1)[0], config))
    for trace, env in zip(traces, envs, strict=True):
        trace.calls = list(env.calls)
    return traces


def step(trace: Trace, g: Generation, config: LoopConfig) -> list[str]:
    """Apply one generation to a rollout: close it, or leave it open and return the bodies of the
    tool calls to run before its next turn."""
    trace.turns += 1
    trace.prompt_tokens += g.prompt_tokens
    trace.completion_tokens += g.completion_tokens
    if g.finish_reason == "error":
        trace.status, trace.error = ENGINE_ERROR, g.error or "engine error"
        return []
    trace.messages.append({"role": "assistant", "content": g.text})
    if g.finish_reason == "length":
        trace.status = LENGTH
        return []
    calls = TOOL_CALL_BLOCK.findall(g.text)
    if not calls:
        trace.status = ANSWERED
        return []
    if trace.turns >= config.max_turns:
        trace.status = MAX_TURNS
        return []
    return calls


def run_calls(env: HoiEnvironment, trace: Trace, calls: list[str]) -> None:
    """Run a turn's tool calls in the rollout's environment and append their results."""
    run_parsed(env, trace, [parse_tool_call(body) for body in calls])


def run_parsed(env: HoiEnvironment, trace: Trace, calls: list[tuple[Any, Any]]) -> None:
    """:func:`run_calls` on calls already read: ``(name or None, arguments)`` each."""
    for name, arguments in calls:
        result = call_tool(env, name if name is not None else "<unreadable tool call>", arguments)
        trace.messages.append({"role": "tool", "name": name or "unknown", "content": result})


def exactly(generations: list[Generation], n: int) -> list[Generation]:
    """An engine that returns the wrong number of samples is a bug worth a recorded error, not a crash."""
    if len(generations) == n:
        return generations
    return [Generation.failed(f"engine returned {len(generations)} samples, expected {n}")] * n


def first_seed(config: LoopConfig, sample_id: str) -> int:
    """The seed of a prompt's first turn, which samples its ``n`` rollouts."""
    return sample_seed(config.seed, sample_id, 0)


def turn_seed(config: LoopConfig, sample_id: str, trace: Trace) -> int:
    """The seed of an open rollout's next turn."""
    return sample_seed(config.seed, sample_id, trace.turns, trace.rollout)


def sample_seed(*parts: object) -> int:
    """A 32-bit seed from a sample's identity (never its position in a batch or shard)."""
    return stable_seed(*parts) % (2**31 - 1)  # engines take 32-bit seeds
