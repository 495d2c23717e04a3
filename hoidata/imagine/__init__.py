"""Generative answers to the ``imagine`` tool: backends (:mod:`.backends`, :mod:`.http`), the canvas
they fill (:mod:`.canvas`) and the regions a dataset asks about (:mod:`.regions`). ``diffusers`` and
``torch`` are imported only when a diffusers backend first generates."""

from __future__ import annotations

from functools import cache

from hoidata.errors import HoidataError
from hoidata.imagine.backends import ContextBackend, DiffusersImagine, ImagineRequest
from hoidata.imagine.canvas import MODES
from hoidata.imagine.http import HttpImagine
from hoidata.tools.imagine import ContextImagine, ImagineBackend, NoImagine

BACKENDS = ("context", "diffusers", "http")
LIVE_BACKENDS = ("context", "none", "http", "diffusers")  # what a tool call may wait on

__all__ = [
    "BACKENDS",
    "LIVE_BACKENDS",
    "MODES",
    "ContextBackend",
    "DiffusersImagine",
    "HttpImagine",
    "ImagineRequest",
    "live_backend",
    "make_backend",
]


def make_backend(
    name: str,
    *,
    model: str | None = None,
    url: str | None = None,
    **options: object,
) -> ContextBackend | DiffusersImagine | HttpImagine:
    """A backend by name; ``options`` are its dataclass fields (unknown ones are an error)."""
    if name == "context":
        return ContextBackend(**_only(options, "scale"))
    if name == "diffusers":
        if not model:
            raise HoidataError("--backend diffusers needs --model (a local directory or a Hub id)")
        keys = ("device", "dtype", "steps", "guidance", "size", "batch_size", "scale", "seed")
        return DiffusersImagine(model, **_only(options, *keys))
    if name == "http":
        if not url:
            raise HoidataError("--backend http needs --url (the service's endpoint)")
        keys = ("api_key", "timeout", "retries", "backoff", "concurrency", "scale", "seed")
        return HttpImagine(url, **_only(options, *keys))
    raise HoidataError(f"unknown imagine backend {name!r}; choose from {', '.join(BACKENDS)}")


def _only(options: dict[str, object], *keys: str) -> dict[str, object]:
    return {k: v for k, v in options.items() if k in keys and v is not None}


@cache
def live_backend(name: str, *, url: str | None = None, model: str | None = None) -> ImagineBackend:
    """The backend a tool call waits on when the cache lacks a region (one per process and setting)."""
    if name == "none":
        return NoImagine()
    if name == "context":
        return ContextImagine()
    if name == "http":
        return make_backend(name, url=url)
    return make_backend(name, model=model, device="cuda" if _cuda() else "cpu")


def _cuda() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())
