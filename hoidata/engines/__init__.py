"""Interchangeable generation engines: a batch of conversations with images in, n completions each out."""

from hoidata.engines.base import Engine, Generation, Sampling
from hoidata.engines.hf import HfEngine
from hoidata.engines.openai import OpenAIEngine
from hoidata.engines.vllm import VllmEngine
from hoidata.errors import HoidataError

__all__ = ["ENGINES", "Engine", "Generation", "Sampling", "get_engine"]

ENGINES = {"hf": HfEngine, "openai": OpenAIEngine, "vllm": VllmEngine}  # each imports its library when built


def get_engine(name: str, model: str, **options: object) -> Engine:
    """The engine called ``name`` (``hf``, ``openai`` or ``vllm``), loading ``model``."""
    if name not in ENGINES:
        raise HoidataError(f"unknown engine {name!r}; choose hf, openai or vllm")
    try:
        return ENGINES[name](model, **options)  # type: ignore[arg-type]
    except ModuleNotFoundError as e:
        if name != "vllm" or e.name != "vllm":
            raise
        raise HoidataError("--engine vllm needs vLLM on a GPU machine: pip install 'hoidata[gen]'") from None
