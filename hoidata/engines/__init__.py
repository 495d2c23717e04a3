"""Interchangeable generation engines: a batch of conversations with images in, n completions each out."""

from hoidata.engines.base import Engine, Generation, Sampling

__all__ = ["Engine", "Generation", "Sampling", "get_engine"]


def get_engine(name: str, model: str, **options: object) -> Engine:
    """The engine called ``name`` (``hf`` or ``openai``; ``vllm`` follows), loading ``model``."""
    from hoidata.errors import HoidataError

    if name == "hf":
        from hoidata.engines.hf import HfEngine

        return HfEngine(model, **options)  # type: ignore[arg-type]
    if name == "openai":
        from hoidata.engines.openai import OpenAIEngine

        return OpenAIEngine(model, **options)  # type: ignore[arg-type]
    raise HoidataError(f"unknown engine {name!r}; choose hf or openai")
