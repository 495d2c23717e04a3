"""Options declared once. A stage's config dataclass gives every option its default and its help
in field metadata; the command line, a ``--config stage.yaml`` file and the manifest all read them
from there, so they cannot disagree.

    @dataclass
    class BoxesConfig:
        union_pad: float = option(0.0, "Pixels added on each side of the union box.")
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

from hoidata.errors import HoidataError

OPTION = "hoidata.option"


@dataclass(frozen=True)
class OptionInfo:
    """What the command line needs to know of one config field beyond its type and default."""

    help: str
    choices: tuple[str, ...] | None = None  # the values a string option accepts
    flag: str | None = None  # the option's name when not --field-name (e.g. --tp)
    short: str | None = None  # e.g. -a
    required: bool = False  # the command line must give it, though the dataclass has a default
    argument: bool = False  # a positional argument rather than an --option
    cli: bool = True  # False: not on the command line (set by the command itself, or programmatic)
    record: bool = True  # False: changes speed, not the result (threads): not part of the job's identity
    envvar: str | None = None
    secret: bool = False  # never recorded in a manifest (API keys)
    parse: Callable[[str], Any] | None = None  # command-line text -> value (e.g. "456x256" -> (456, 256))
    show: Callable[[Any], str] | None = None  # value -> command-line text, for the help's default
    minimum: float | None = None  # the least value a number takes (shard sizes, counts: 1)


def option(default: Any = MISSING, help: str = "", **info: Any) -> Any:
    """A dataclass field with its default and command-line metadata (see :class:`OptionInfo`)."""
    return dataclasses.field(default=default, metadata={OPTION: OptionInfo(help, **info)})


def comma_list(text: str) -> tuple[str, ...]:
    """``"zoom_in, imagine"`` -> ``("zoom_in", "imagine")``; the command line's form of a tuple option."""
    return tuple(part.strip() for part in text.split(",") if part.strip())


def size(text: str) -> tuple[int, int]:
    """``"456x256"`` -> ``(456, 256)``."""
    try:
        width, height = (int(v) for v in text.lower().split("x"))
    except ValueError:
        raise HoidataError(f"a size looks like 456x256, got {text!r}") from None
    return width, height


@dataclass(frozen=True)
class ConfigField:
    """One option of a config dataclass: name, resolved type, default and metadata."""

    name: str
    type: Any
    default: Any
    info: OptionInfo

    @property
    def has_default(self) -> bool:
        return self.default is not MISSING

    def from_text(self, value: Any) -> Any:
        """A value as the command line or a YAML file gives it -> the field's value."""
        if isinstance(value, str) and self.info.parse is not None:
            return self.info.parse(value)
        if isinstance(value, str) and is_tuple_of_str(self.type):
            return comma_list(value)
        if isinstance(value, list):
            return tuple(value)
        return value


def is_tuple_of_str(tp: Any) -> bool:
    return typing.get_origin(tp) is tuple and typing.get_args(tp) == (str, ...)


def config_fields(cls: type) -> list[ConfigField]:
    """Every field of a config dataclass, its type resolved and its metadata (empty when none)."""
    hints = typing.get_type_hints(cls)
    out = []
    for f in dataclasses.fields(cls):
        info = f.metadata.get(OPTION) or OptionInfo("")
        default = f.default if f.default_factory is MISSING else f.default_factory()
        out.append(ConfigField(f.name, hints[f.name], default, info))
    return out


def non_optional(tp: Any) -> Any:
    """``int | None`` -> ``int``."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if len(args) == 1:
            return args[0]
    return tp


def read_config_file(path: Path | str) -> dict[str, Any]:
    """A ``--config`` YAML file: a mapping of option names (``max_turns`` or ``max-turns``) to values."""
    import yaml  # only where a config file is given (0.01 s)

    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except FileNotFoundError:
        raise HoidataError("config file not found", file=str(path)) from None
    except yaml.YAMLError as e:
        raise HoidataError(f"not valid YAML: {str(e).splitlines()[0]}", file=str(path)) from None
    if not isinstance(data, dict):
        raise HoidataError("a config file holds a mapping of option names to values", file=str(path))
    return {str(k).replace("-", "_"): v for k, v in data.items()}


def build_config(cls: type, values: Mapping[str, Any], *, source: str = "") -> Any:
    """``cls`` from its defaults, overridden by ``values`` (text values parsed as the command line
    parses them); an unknown name is one line naming ``source`` and the name."""
    fields = {f.name: f for f in config_fields(cls)}
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise HoidataError(
            f"unknown option {unknown[0]!r}; known: {', '.join(sorted(fields))}", file=source or None
        )
    kwargs = {name: fields[name].from_text(value) for name, value in values.items()}
    for name, value in kwargs.items():
        allowed, least = fields[name].info.choices, fields[name].info.minimum
        if allowed and value is not None and value not in allowed:
            raise HoidataError(
                f"{name} must be one of {', '.join(allowed)}, got {value!r}", file=source or None, field=name
            )
        if least is not None and value is not None and value < least:
            flag = fields[name].info.flag or "--" + name.replace("_", "-")
            raise HoidataError(f"{flag} must be at least {least}, got {value!r}", file=source or None)
    try:
        return cls(**kwargs)
    except TypeError as e:
        raise HoidataError(f"incomplete options: {e}", file=source or None) from None


def recorded(config: Any) -> dict[str, Any]:
    """A config as the manifest records it: every field that decides the result (no secrets)."""
    return {
        f.name: getattr(config, f.name)
        for f in config_fields(type(config))
        if f.info.record and not f.info.secret
    }
