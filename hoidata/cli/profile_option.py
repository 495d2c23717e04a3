"""``--profile`` for commands that score answers: apart from :mod:`hoidata.cli.params`, because
listing the profiles imports their answer parsers (numba), which the data stages never need."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

from hoidata.profiles import PROFILES

ProfileName = StrEnum("ProfileName", {name: name for name in PROFILES})  # type: ignore[misc]
ProfileOpt = Annotated[
    ProfileName | None,  # type: ignore[valid-type]
    typer.Option(help="Model profile (default: the one the dataset was built for)."),
]
