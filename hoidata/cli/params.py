"""Parameters that are not a stage's config: where the input is and where the output goes."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from hoidata.profiles import PROFILES

InputDir = Annotated[Path, typer.Argument(help="Input dataset directory.", show_default=False)]
Out = Annotated[Path, typer.Option("--out", "-o", help="Output dataset directory.", show_default=False)]
Completions = Annotated[
    Path,
    typer.Argument(
        help="JSONL or Parquet with `sample_id` and `completion` (text, or a list of messages).",
        show_default=False,
    ),
]
SkipMissing = Annotated[
    bool, typer.Option("--skip-missing", help="Leave out samples without a completion (default: misses).")
]
ProfileName = StrEnum("ProfileName", {name: name for name in PROFILES})  # type: ignore[misc]
ProfileOpt = Annotated[
    ProfileName | None,  # type: ignore[valid-type]
    typer.Option(help="Model profile (default: the one the dataset was built for)."),
]
JsonOut = Annotated[Path | None, typer.Option("--json", help="Write the full report here (JSON).")]
