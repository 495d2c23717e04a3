"""The one way this package makes a Typer app, so every command group looks and behaves alike."""

from __future__ import annotations

import sys
from typing import Any

import typer

HELP_OPTIONS = {"help_option_names": ["-h", "--help"]}


def new_app(**kwargs: Any) -> typer.Typer:
    """Plain click help (no rich: faster, and flags show no type), errors left to :func:`main`."""
    kwargs.setdefault("no_args_is_help", True)
    return typer.Typer(
        pretty_exceptions_enable=False,
        rich_markup_mode=None,
        add_completion=False,
        context_settings=HELP_OPTIONS,
        **kwargs,
    )


def examples(*lines: str) -> str:
    """An epilog of example command lines, kept as written (click rewraps other paragraphs)."""
    return "Examples:\n\n\b\n" + "\n".join(f"  {line}" for line in lines)


_given: list[str] = []  # the arguments main() runs with (its own, or the process's)


def remember_command_line(args: list[str]) -> None:
    """Called by :func:`hoidata.cli.main` with the arguments it was given (``main([...])``'s too)."""
    _given[:] = args


def command_line() -> list[str]:
    """The arguments of the command running: what the processes an executor starts (``--dp``,
    ``--workers``) run again, each its part. A caller's ``main([...])``, not this process's argv."""
    return list(_given) if _given else sys.argv[1:]
