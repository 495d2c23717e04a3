"""Parameters that are not a stage's config: where the input is and where the output goes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

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
JsonOut = Annotated[Path | None, typer.Option("--json", help="Write the full report here (JSON).")]
