"""Interchangeable generation engines: a batch of conversations with images in, n completions each out."""

from hoidata.engines.base import Engine, Generation, Sampling
from hoidata.errors import HoidataError

__all__ = ["Engine", "Generation", "Sampling", "get_engine"]


def get_engine(name: str, model: str, **options: object) -> Engine:
    """The engine called ``name`` (``hf``, ``openai`` or ``vllm``), loading ``model``."""
    if name == "hf":
        from hoidata.engines.hf import HfEngine

        return HfEngine(model, **options)  # type: ignore[arg-type]
    if name == "openai":
        from hoidata.engines.openai import OpenAIEngine

        return OpenAIEngine(model, **options)  # type: ignore[arg-type]
    if name == "vllm":
        try:
            from hoidata.engines.vllm import VllmEngine

            return VllmEngine(model, **options)  # type: ignore[arg-type]
        except ModuleNotFoundError as e:
            if e.name != "vllm":
                raise
            raise HoidataError(
                "--engine vllm needs vLLM on a GPU machine: pip install 'hoidata[gen]'"
            ) from None
    raise HoidataError(f"unknown engine {name!r}; choose hf, openai or vllm")
