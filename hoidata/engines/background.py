"""An event loop of an engine's own, in a daemon thread.

Async clients bind to the loop that created them (an ``AsyncOpenAI`` connection pool, vLLM's
``AsyncLLMEngine`` and its output handler). The rollout loop and the synchronous ``generate`` each
run their own, shorter-lived loops, so such an engine lives on this one and every caller reaches it
from its own loop (:meth:`BackgroundLoop.run`) or from plain code (:meth:`BackgroundLoop.call`).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class BackgroundLoop:
    """One event loop running forever in a daemon thread, started on creation."""

    def __init__(self, name: str = "hoidata-engine") -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name=name, daemon=True)
        self._thread.start()

    def call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on this loop and wait for its result (from code outside any loop)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    async def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Await ``coroutine`` run on this loop, from another loop; cancelling the caller cancels it."""
        return await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(coroutine, self.loop))

    def close(self) -> None:
        if self.loop.is_running():
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join()
        self.loop.close()
