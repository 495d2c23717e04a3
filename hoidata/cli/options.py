"""Command-line options derived from config dataclasses (see :mod:`hoidata.options`).

A command declares one parameter per config it needs, typed with the config class; this module
replaces those parameters with one Typer option per field (default and help from the field) and a
``--config FILE.yaml``, and hands the command the built configs. Values come from the dataclass
defaults, then the YAML file, then flags given on the command line.
"""

from __future__ import annotations

import functools
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from hoidata.errors import HoidataError
from hoidata.io import ShardSpec
from hoidata.options import (
    ConfigField,
    build_config,
    config_fields,
    is_tuple_of_str,
    non_optional,
    option,
    read_config_file,
)

CONFIG_FILE = "config_file"
CONTEXT = "typer_context"


@dataclass
class RunOptions:
    """How a stage runs, not what it writes: never recorded in the manifest."""

    shard: str = option(
        "0/1", "i/N: run every N-th output shard starting at i (several processes or machines)."
    )
    overwrite: bool = option(
        False, "Replace an existing output directory (another job's, or a finished one)."
    )

    @property
    def shard_spec(self) -> ShardSpec:
        return ShardSpec.parse(self.shard)


def cli_fields(cls: type, exclude: tuple[str, ...] = ()) -> list[ConfigField]:
    return [f for f in config_fields(cls) if f.info.cli and f.name not in exclude]


def choice_enum(name: str, choices: tuple[str, ...]) -> Any:
    """An enum of ``choices`` (values as given), the form Typer offers choices in."""
    return StrEnum(name, {c: c for c in choices})


def typer_parameter(f: ConfigField, choices: tuple[str, ...] | None = None) -> inspect.Parameter:
    """The Typer parameter of one config field."""
    info, choices = f.info, choices or f.info.choices
    base = non_optional(f.type)
    default = None if info.required else f.default
    kwargs: dict[str, Any] = {"help": info.help + (" [required]" if info.required else "")}
    if choices:
        base = choice_enum(f.name.title().replace("_", ""), choices)
    elif info.parse is not None or is_tuple_of_str(base):  # given as text: "456x256", "a,b"
        base = str
        if default is not None:
            default = info.show(default) if info.show else ",".join(default)
    if info.envvar:
        kwargs["envvar"] = info.envvar
    if info.secret or info.required or default is None:
        kwargs["show_default"] = False
    tp = base | None if default is None else base
    if info.argument:  # positional: always given on the command line
        kwargs.pop("show_default", None)
        param = typer.Argument(**kwargs)
        return inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[tp, param])
    long = info.flag or "--" + f.name.replace("_", "-")
    decls = [f"{long}/--no-{long[2:]}"] if base is bool and default is True else [long]
    if info.short:
        decls.append(info.short)
    param = typer.Option(*decls, **kwargs)
    return inspect.Parameter(
        f.name, inspect.Parameter.KEYWORD_ONLY, annotation=Annotated[tp, param], default=default
    )


def _value(f: ConfigField, given: Any) -> Any:
    value = given.value if isinstance(given, StrEnum) else given
    return f.from_text(value)


def with_config_options(
    *,
    fixed: dict[str, Any] | None = None,
    choices: dict[str, tuple[str, ...]] | None = None,
    exclude: tuple[str, ...] = (),
) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """Turn a command's config-typed parameters into options (see the module docstring).

    ``fixed``: fields the command sets itself (``source="hico"``); ``choices``: narrower choices
    for this command; ``exclude``: fields this command does not offer (they keep their default).
    """
    fixed, choices = fixed or {}, choices or {}
    hidden = (*exclude, *fixed)

    def decorate(func: Callable[..., None]) -> Callable[..., None]:
        hints = typing.get_type_hints(func, include_extras=True)
        signature = inspect.signature(func)
        configs = {n: hints[n] for n in signature.parameters if dataclass_type(hints.get(n))}
        own = [
            p.replace(annotation=hints[p.name], kind=inspect.Parameter.KEYWORD_ONLY)
            for p in signature.parameters.values()
            if p.name not in configs
        ]
        generated = [
            typer_parameter(f, choices.get(f.name))
            for cls in configs.values()
            for f in cli_fields(cls, hidden)
        ]
        config_file = inspect.Parameter(
            CONFIG_FILE,
            inspect.Parameter.KEYWORD_ONLY,
            annotation=Annotated[
                Path | None,
                typer.Option(
                    "--config",
                    "-c",
                    help="YAML file of these options (names as here, - or _); flags given here override it.",
                    show_default=False,
                ),
            ],
            default=None,
        )

        @functools.wraps(func)
        def command(**kwargs: Any) -> None:
            ctx = kwargs.pop(CONTEXT)
            path = kwargs.pop(CONFIG_FILE)
            from_file = read_config_file(path) if path else {}
            offered = {f.name for cls in configs.values() for f in cli_fields(cls, hidden)}
            stray = sorted(set(from_file) - offered)
            if stray:
                raise HoidataError(f"unknown option {stray[0]!r} for this command", file=str(path))
            built = {}
            for name, cls in configs.items():
                values = {f.name: from_file[f.name] for f in config_fields(cls) if f.name in from_file}
                for f in cli_fields(cls, hidden):
                    if given_on_command_line(ctx, f.name):
                        values[f.name] = _value(f, kwargs[f.name])
                    elif f.info.required and f.name not in values:
                        flag = f.info.flag or "--" + f.name.replace("_", "-")
                        raise HoidataError(f"missing option {flag} (or {f.name}: in --config)")
                values |= {k: v for k, v in fixed.items() if k in {f.name for f in config_fields(cls)}}
                built[name] = build_config(cls, values, source=str(path or ""))
                for f in config_fields(cls):
                    kwargs.pop(f.name, None)
            func(**kwargs, **built)

        arguments = [p for p in generated if p.default is inspect.Parameter.empty]
        options = [p for p in generated if p.default is not inspect.Parameter.empty]
        context = inspect.Parameter(CONTEXT, inspect.Parameter.KEYWORD_ONLY, annotation=typer.Context)
        command.__signature__ = inspect.Signature([context, *arguments, *own, *options, config_file])  # type: ignore[attr-defined]
        command.__annotations__ = {}
        return command

    return decorate


def given_on_command_line(ctx: typer.Context, name: str) -> bool:
    """Not a default (nor a default of a missing value): the command line (or its env var) gave it."""
    source = ctx.get_parameter_source(name)
    return source is not None and source.name != "DEFAULT"


def dataclass_type(tp: Any) -> bool:
    return isinstance(tp, type) and hasattr(tp, "__dataclass_fields__")
