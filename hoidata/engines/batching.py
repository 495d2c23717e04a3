"""A batch engine (hf, a scripted one) driven one conversation at a time.

The rollout loop asks for one conversation's turn whenever that conversation is ready. A batch
engine wants many at once: what the tasks of one turn of the event loop ask for is handed over
together, and one thread hands the engine everything handed over while it was busy (the
continuous batching a serving engine does itself). Seeds travel with
each conversation, so what a conversation gets does not depend on the batch it landed in.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from hoidata.engines.base import AsyncEngine, Conversation, Engine, Generation, Sampling


@dataclass
class _Request:
    conversation: Conversation
    sampling: Sampling
    seed: int
    tools: list[dict[str, Any]] | None
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[list[Generation]]


class BatchingEngine:
    """:class:`AsyncEngine` over a synchronous :class:`Engine`; one engine thread, started on
    creation and ended by :meth:`close` (the engine itself is never called from two threads)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name, self.model = engine.name, engine.model
        self.batches: list[int] = []  # conversations per engine call, for tests and benchmarks
        self._queue: list[_Request] = []  # handed to the engine thread
        self._held: list[_Request] = []  # asked for in this turn of the event loop, not yet handed over
        self._ready = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._serve, name="hoidata-batching", daemon=True)
        self._thread.start()

    async def agenerate(
        self,
        conversation: Conversation,
        sampling: Sampling,
        seed: int,
        tools: list[dict[str, Any]] | None = None,
    ) -> list[Generation]:
        loop = asyncio.get_running_loop()
        request = _Request(conversation, sampling, seed, tools, loop, loop.create_future())
        if not self._held:  # hand over once per turn of the loop: what every task asks in it
            loop.call_soon(self._hand_over)
        self._held.append(request)
        return await request.future

    def _hand_over(self) -> None:
        with self._ready:
            self._queue.extend(self._held)
            self._ready.notify()
        self._held = []

    def close(self) -> None:
        with self._ready:
            self._closed = True
            self._ready.notify()
        self._thread.join()

    def _serve(self) -> None:
        while True:
            with self._ready:
                while not self._queue and not self._closed:
                    self._ready.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue, []
            for group in _groups(batch):
                self._generate(group)

    def _generate(self, group: Sequence[_Request]) -> None:
        first = group[0]
        self.batches.append(len(group))
        try:
            results = self.engine.generate(
                [r.conversation for r in group], first.sampling, [r.seed for r in group], first.tools
            )
        except Exception as e:  # an engine that raises for a batch fails its conversations, not the run
            results = [[Generation.failed(f"{type(e).__name__}: {e}")] * first.sampling.n] * len(group)
        if len(results) != len(group):
            failed = Generation.failed(
                f"engine returned {len(results)} results for {len(group)} conversations"
            )
            results = [[failed] * first.sampling.n] * len(group)
        answered: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future, list[Generation]]]] = {}
        for request, generations in zip(group, results, strict=True):
            answered.setdefault(request.loop, []).append((request.future, generations))
        for loop, pairs in answered.items():  # one wake-up of each waiting loop per batch
            loop.call_soon_threadsafe(_resolve, pairs)


def _groups(batch: list[_Request]) -> list[list[_Request]]:
    """Requests that can share one engine call: the same sampling and the same tool list."""
    groups: dict[tuple[Sampling, int], list[_Request]] = {}
    for request in batch:
        groups.setdefault((request.sampling, id(request.tools)), []).append(request)
    return list(groups.values())


def _resolve(pairs: list[tuple[asyncio.Future, list[Generation]]]) -> None:
    for future, generations in pairs:
        if not future.done():  # a cancelled rollout no longer waits
            future.set_result(generations)


def as_async(engine: Engine | AsyncEngine) -> tuple[AsyncEngine, BatchingEngine | None]:
    """``engine`` as an :class:`AsyncEngine`, and the adapter to close when one was made."""
    if hasattr(engine, "agenerate"):
        return engine, None  # type: ignore[return-value]
    adapter = BatchingEngine(engine)  # type: ignore[arg-type]
    return adapter, adapter
