"""The options every generating stage shares (gen-cot, predict): which engine and model make the
result, and how to reach them, which changes speed but not the result."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hoidata.engines import get_engine
from hoidata.engines.base import Engine
from hoidata.errors import HoidataError
from hoidata.io import ProfileSpec
from hoidata.options import option

ENGINE_NAMES = ("vllm", "openai", "hf")


@dataclass
class GenerationConfig:
    """Recorded in the manifest: the engine and model that wrote the rows."""

    engine: str = option("vllm", "Generation engine.", choices=ENGINE_NAMES)
    model: str = option("", "Model name or local checkpoint.", required=True)


@dataclass
class EngineOptions:
    """How to reach the engine; not recorded (a resumed run may use another server or GPU count)."""

    base_url: str | None = option(None, "openai: the server, e.g. http://127.0.0.1:8000/v1.")
    api_key: str | None = option(
        None, "openai: API key (local servers need none).", envvar="OPENAI_API_KEY", secret=True
    )
    concurrency: int = option(32, "openai: requests in flight.", minimum=1)
    timeout: float = option(300.0, "openai: seconds a request may take before it is retried.")
    retries: int = option(
        3,
        "openai: retries of a request that failed (connection lost, 429, 5xx, timeout, malformed "
        "reply), with exponential backoff; then the sample is recorded as failed for a rerun to retry.",
        minimum=0,
    )
    tp: int = option(1, "vllm: tensor-parallel GPUs per engine.", flag="--tp", minimum=1)
    dp: int = option(
        1,
        "Data-parallel engine processes, --tp GPUs each: on this machine, or the workers of "
        "--executor ray|slurm (as --workers).",
        flag="--dp",
        minimum=1,
    )

    def factory(
        self,
        engine: str,
        model: str,
        profile: ProfileSpec | None,
        *,
        seed: int = 0,
        asynchronous: bool = False,
    ) -> Callable[[], Engine]:
        """A zero-argument engine constructor (the model loads only if there is work), checked now.
        vLLM gets the data's pixel budget, so it sees what training sees; without a profile, each
        engine uses the model's own chat template and pixel budget. ``asynchronous``: the engine's
        form for the async rollout loop (vLLM's async engine)."""
        family, low, high = profile if profile else (None, None, None)
        options: dict[str, object]
        if engine == "openai":
            if not self.base_url:
                raise HoidataError("--engine openai needs --base-url")
            options = {
                "base_url": self.base_url,
                "api_key": self.api_key,
                "concurrency": self.concurrency,
                "timeout": self.timeout,
                "retries": self.retries,
            }
        elif engine == "vllm":
            options = {
                "family": family,
                "tp": self.tp,
                "seed": seed,
                "min_pixels": low,
                "max_pixels": high,
            }
        else:
            options = {"family": family}
        return lambda: get_engine(engine, model, asynchronous=asynchronous, **options)
