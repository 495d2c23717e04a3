"""Interchangeable generation engines: a batch of conversations with images in, n completions each out."""

import os

from hoidata.engines.base import AsyncEngine, Engine, Generation, Sampling
from hoidata.engines.hf import HfEngine
from hoidata.engines.openai import OpenAIEngine
from hoidata.engines.vllm import VllmEngine
from hoidata.engines.vllm_async import AsyncVllmEngine
from hoidata.errors import HoidataError
from hoidata.executors import KEEP_ENGINES

__all__ = ["ENGINES", "AsyncEngine", "Engine", "Generation", "Sampling", "get_engine"]

ENGINES = {"hf": HfEngine, "openai": OpenAIEngine, "vllm": VllmEngine}  # each imports its library when built
ASYNC_ENGINES = {"vllm": AsyncVllmEngine}  # the async form where it is another class (openai is both)

_kept: dict[tuple[object, ...], Engine] = {}  # engines a long-lived worker keeps (see KEEP_ENGINES)


def get_engine(name: str, model: str, *, asynchronous: bool = False, **options: object) -> Engine:
    """The engine called ``name`` (``hf``, ``openai`` or ``vllm``), loading ``model``;
    ``asynchronous``: its form for the async rollout loop where it has one (vLLM's async engine)."""
    if name not in ENGINES:
        raise HoidataError(f"unknown engine {name!r}; choose hf, openai or vllm")
    keep = os.environ.get(KEEP_ENGINES) == "1"  # a worker running one part of a job after another
    key = (name, model, asynchronous, *sorted(options.items()))
    if keep and key in _kept:
        return _kept[key]
    kind = ASYNC_ENGINES.get(name, ENGINES[name]) if asynchronous else ENGINES[name]
    try:
        engine = kind(model, **options)  # type: ignore[arg-type]
    except ModuleNotFoundError as e:
        if name != "vllm" or e.name != "vllm":
            raise
        raise HoidataError("--engine vllm needs vLLM on a GPU machine: pip install 'hoidata[gen]'") from None
    if keep:
        _kept[key] = engine
    return engine
