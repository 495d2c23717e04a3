"""The asynchronous multi-turn loop: a conversation advances as soon as its turn is generated.

:func:`~hoidata.gen.loop.run_loop` advances in waves, so the engine waits while a wave's tools run
and a wave waits for its slowest conversation. Here every rollout is its own task: its turn goes to
the engine alone (an :class:`~hoidata.engines.base.AsyncEngine` batches whatever is in flight, as
vLLM's async engine and a server do; a batch engine gets a :class:`~hoidata.engines.batching.BatchingEngine`),
its tool calls run in a thread pool while other conversations generate, and its next turn goes
back at once. Backpressure: at most ``max_open`` prompts are in flight (loaded, generating or
running tools), so a shard's memory is bounded by them, not by its size. A prompt is loaded (its
image decoded, once, see :class:`~hoidata.gen.media.SourceImages`) in the media pool when it is
admitted, and a finished rollout's tool images start encoding there for the output.

The steps, seeds and endings are :mod:`hoidata.gen.loop`'s, so with the same engine the traces
equal the wave loop's, whatever the order in which conversations come back.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

from hoidata.engines.base import AsyncEngine, Conversation, Engine, Generation
from hoidata.engines.batching import as_async
from hoidata.gen.loop import LoopConfig, Trace, exactly, first_seed, run_parsed, step, turn_seed
from hoidata.gen.media import CropEncoder
from hoidata.rewards.completions import parse_tool_call
from hoidata.tools.detection import Scene
from hoidata.tools.environment import HoiEnvironment, scene_of, start_on

# prompt i -> (the conversation sent, the row its tools reset to); raises for a sample it cannot load
Load = Callable[[int], tuple[Conversation, dict[str, Any]]]


def run_rollouts(
    engine: Engine | AsyncEngine,
    count: int,
    load: Load,
    environment: Callable[[], HoiEnvironment],
    config: LoopConfig,
    tools: list[dict[str, Any]] | None = None,
    sample_ids: Sequence[str] | None = None,
    *,
    max_open: int = 256,
    threads: int = 4,
    encoder: CropEncoder | None = None,
    done: Callable[[int], None] | None = None,
) -> tuple[list[Trace], dict[int, Exception]]:
    """Roll out prompts ``0..count-1`` ``config.sampling.n`` times each.

    Returns the traces, ordered by prompt then rollout (as the wave loop orders them), and the
    prompts ``load`` failed on with their exception. ``sample_ids`` name the prompts in the seeds
    (default: their positions). ``encoder``: finished rollouts' tool images start encoding in it.
    ``done(i)``: called when prompt ``i``'s rollouts have all ended (progress).
    """
    if config.max_turns < 1:
        raise ValueError("max_turns must be at least 1")
    if max_open < 1 or threads < 1:
        raise ValueError("max_open and threads must be at least 1")
    ids = [str(i) for i in range(count)] if sample_ids is None else [str(s) for s in sample_ids]
    if len(ids) != count:
        raise ValueError(f"{len(ids)} sample ids for {count} prompts")
    run = _Run(engine, load, environment, config, tools, ids, max_open, threads, encoder, done)
    return asyncio.run(run.all(count))


def run_loop_async(
    engine: Engine | AsyncEngine,
    prompts: Sequence[Conversation],
    rows: Sequence[dict[str, Any]],
    environment: Callable[[], HoiEnvironment],
    config: LoopConfig,
    tools: list[dict[str, Any]] | None = None,
    sample_ids: Sequence[str] | None = None,
    **options: Any,
) -> list[Trace]:
    """:func:`~hoidata.gen.loop.run_loop`'s arguments and result, run asynchronously."""
    traces, _ = run_rollouts(
        engine,
        len(prompts),
        lambda i: (prompts[i], rows[i]),
        environment,
        config,
        tools,
        sample_ids,
        **options,
    )
    return traces


class _Run:
    """One call of :func:`run_rollouts`: its pools, its engine adapter and its bound."""

    def __init__(
        self,
        engine: Engine | AsyncEngine,
        load: Load,
        environment: Callable[[], HoiEnvironment],
        config: LoopConfig,
        tools: list[dict[str, Any]] | None,
        ids: list[str],
        max_open: int,
        threads: int,
        encoder: CropEncoder | None,
        done: Callable[[int], None] | None,
    ) -> None:
        self.engine, self.load, self.environment = engine, load, environment
        self.config, self.tools, self.ids = config, tools, ids
        self.single = replace(config.sampling, n=1)
        self.max_open, self.threads = max_open, threads
        self.encoder, self.done = encoder, done
        self.failures: dict[int, Exception] = {}
        self.tool_times = ToolTimes()

    async def all(self, count: int) -> tuple[list[Trace], dict[int, Exception]]:
        self.gate = asyncio.Semaphore(self.max_open)
        self.async_engine, adapter = as_async(self.engine)
        self.media = ThreadPoolExecutor(self.threads, "hoidata-media")
        self.tool_pool = ThreadPoolExecutor(self.threads, "hoidata-tools")
        try:
            per_prompt = await asyncio.gather(*(self.prompt(i) for i in range(count)))
        finally:
            if adapter is not None:
                adapter.close()
            self.media.shutdown(cancel_futures=True)
            self.tool_pool.shutdown(cancel_futures=True)
        return [t for traces in per_prompt for t in traces], self.failures

    async def prompt(self, i: int) -> list[Trace]:
        loop = asyncio.get_running_loop()
        async with self.gate:
            try:
                conversation, row = await loop.run_in_executor(self.media, self.load, i)
            except Exception as e:  # the stage decides: a reject, not a crash
                self.failures[i] = e
                return []
            seed = first_seed(self.config, self.ids[i])
            first = await self.generate(conversation, self.config.sampling, seed)
            generations = exactly(first, self.config.sampling.n)
            scene = scene_of(row)  # one for the prompt's rollouts
            traces = await asyncio.gather(
                *(self.rollout(i, r, g, conversation, scene, row) for r, g in enumerate(generations))
            )
        if self.done is not None:
            self.done(i)
        return list(traces)

    async def rollout(
        self, i: int, r: int, g: Generation, conversation: Conversation, scene: Scene, row: dict[str, Any]
    ) -> Trace:
        loop = asyncio.get_running_loop()
        env = self.environment()
        start_on(env, scene, row)
        trace = Trace(i, r)
        calls = step(trace, g, self.config)
        while calls:
            parsed = [parse_tool_call(body) for body in calls]
            if self.tool_times.quick(parsed):  # cheaper than a hand-off to a thread
                self.tool_times.run(env, trace, parsed)
            else:
                await loop.run_in_executor(self.tool_pool, self.tool_times.run, env, trace, parsed)
            seed = turn_seed(self.config, self.ids[i], trace)
            generations = await self.generate(conversation + trace.messages, self.single, seed)
            calls = step(trace, exactly(generations, 1)[0], self.config)
        trace.calls = list(env.calls)
        if self.encoder is not None:
            for image in tool_images(trace):
                self.encoder.submit(image)
        return trace

    async def generate(self, conversation: Conversation, sampling: Any, seed: int) -> list[Generation]:
        try:
            return await self.async_engine.agenerate(conversation, sampling, seed, self.tools)
        except Exception as e:  # an engine must not raise; if it does, the rollout records it
            return [Generation.failed(f"{type(e).__name__}: {e}")] * sampling.n


class ToolTimes:
    """How long each tool takes, so that a quick one (a zoom on a decoded image: well under a
    millisecond) runs in the loop's own thread, where handing it to a thread would cost about as
    much as it does, and a slow one (an imagine service, a detector) in the pool. A quick call
    holds the loop up for less than the engine takes to generate a handful of tokens."""

    QUICK_S = 0.002

    def __init__(self) -> None:
        self.mean: dict[str, float] = {}  # seconds per call, a running average; absent: not yet seen

    def quick(self, calls: list[tuple[Any, Any]]) -> bool:
        return all(self.mean.get(str(name), float("inf")) < self.QUICK_S for name, _ in calls)

    def run(self, env: HoiEnvironment, trace: Trace, calls: list[tuple[Any, Any]]) -> None:
        started = time.perf_counter()
        run_parsed(env, trace, calls)
        each = (time.perf_counter() - started) / len(calls)
        for name in {str(name) for name, _ in calls}:
            seen = self.mean.get(name)
            self.mean[name] = each if seen is None else 0.9 * seen + 0.1 * each


def tool_images(trace: Trace) -> list[Any]:
    """The images the tools returned in a rollout, in order."""
    return [
        block["image"]
        for m in trace.messages
        if m["role"] == "tool" and isinstance(m.get("content"), list)
        for block in m["content"]
        if isinstance(block, dict) and block.get("type") == "image"
    ]
