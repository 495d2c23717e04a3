"""The model's tool arguments, which are untrusted output: each is checked here and a bad one becomes
a :class:`ToolError`, whose message the model reads as the tool's answer (never an exception)."""

from __future__ import annotations

import functools
import inspect
import json
import math
import re
from collections.abc import Callable
from typing import Any

import numpy as np

from hoidata.profiles.text import taxonomy_name

MAX_COORDINATE = 1e5  # far beyond any frame (0-1000, or resized pixels); rejects 1e30 and friends
MAX_CATEGORY_CHARS = 64
MAX_ARGUMENT_CHARS = 1000  # an argument given as JSON text
MAX_ERROR_CHARS = 300


class ToolError(Exception):
    """A bad call: its message goes back to the model as the tool's answer."""


def tool_error(message: str) -> str:
    """The one-line JSON answer of a failed call, ``{"error": "..."}``."""
    return json.dumps({"error": str(message)[:MAX_ERROR_CHARS]})


def is_tool_error(result: Any) -> bool:
    """Whether a tool answer is an error: ours, or TRL's ``{'error': ...}`` (a dict, or its ``str``)."""
    if isinstance(result, dict):
        return "error" in result
    return isinstance(result, str) and result.lstrip().startswith(('{"error":', "{'error':"))


def is_number(value: Any) -> bool:
    """A real number, not a bool (JSON's ``true`` must not pass for 1)."""
    return isinstance(value, int | float | np.integer | np.floating) and not isinstance(
        value, bool | np.bool_
    )


def parse_box(value: Any) -> tuple[float, float, float, float]:
    """A model's ``[x1, y1, x2, y2]`` (a list, or its JSON text) as floats, or a tool error."""
    shape = "bbox_2d must be a list of 4 numbers [x1, y1, x2, y2]"
    if isinstance(value, str):
        if len(value) > MAX_ARGUMENT_CHARS:
            raise ToolError("bbox_2d is too long")
        try:
            value = json.loads(value)
        except (ValueError, RecursionError):
            raise ToolError(shape) from None
    if not isinstance(value, list | tuple) or len(value) != 4 or not all(is_number(v) for v in value):
        raise ToolError(shape)
    try:
        x1, y1, x2, y2 = (float(v) for v in value)
    except OverflowError:  # an int beyond float range
        raise ToolError("bbox_2d coordinates are out of range") from None
    if not all(math.isfinite(v) for v in (x1, y1, x2, y2)):
        raise ToolError("bbox_2d must hold finite numbers")
    if max(abs(x1), abs(y1), abs(x2), abs(y2)) > MAX_COORDINATE:
        raise ToolError("bbox_2d coordinates are out of range")
    if x2 <= x1 or y2 <= y1:
        raise ToolError("bbox_2d must have x1 < x2 and y1 < y2")
    return x1, y1, x2, y2


def parse_category(value: Any) -> str:
    """A category as the model writes it, as a taxonomy name ("Sports-Ball" → "sports ball")."""
    if not isinstance(value, str):
        raise ToolError('category must be a string, e.g. "cup"')
    if len(value) > MAX_CATEGORY_CHARS:
        raise ToolError(f"category is too long (at most {MAX_CATEGORY_CHARS} characters)")
    query = taxonomy_name(value.replace("-", " "))
    if not query:
        raise ToolError("category is empty")
    return query


def parse_id(value: Any, name: str) -> int:
    """An id as the model may write it: 3, 3.0 or "3"."""
    if isinstance(value, str) and re.fullmatch(r"\d{1,9}", value.strip(), re.ASCII):
        return int(value.strip())
    if is_number(value) and math.isfinite(value) and float(value).is_integer() and abs(value) < 1e9:
        return int(value)
    raise ToolError(f"{name} must be an integer id")


def call_arguments(name: str, arguments: Any, tool: Callable[..., Any]) -> dict[str, Any]:
    """A call's ``arguments`` (a dict, JSON text or None) as keyword arguments of ``tool``: a JSON
    object naming each of its required parameters and nothing else. Values are checked by the tool."""
    if isinstance(arguments, str):
        if len(arguments) > MAX_ARGUMENT_CHARS:
            raise ToolError("arguments are too long")
        try:
            arguments = json.loads(arguments) if arguments.strip() else {}
        except (ValueError, RecursionError):
            raise ToolError("arguments must be a JSON object") from None
    arguments = {} if arguments is None else arguments
    if not isinstance(arguments, dict):
        raise ToolError("arguments must be a JSON object")
    params, required = _parameters(tool)
    unknown = [str(k)[:32] for k in arguments if k not in params]
    if unknown:
        raise ToolError(f"{name} got unknown arguments {unknown}; it takes {list(params)}")
    missing = [k for k in required if k not in arguments]
    if missing:
        raise ToolError(f"{name} is missing arguments {missing}")
    return arguments


@functools.cache
def _parameters(tool: Callable[..., Any]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """A tool's parameter names and the required ones, read once (``inspect.signature`` costs more
    than the zoom it checks the arguments of)."""
    params = {k: p for k, p in inspect.signature(tool).parameters.items() if k != "self"}
    return tuple(params), tuple(k for k, p in params.items() if p.default is inspect.Parameter.empty)
