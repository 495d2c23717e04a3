"""Progress bars on long work (tqdm, silent when output is not a terminal)."""

from __future__ import annotations

from typing import Any

from tqdm import tqdm


def progress_bar(total: int, desc: str | None, unit: str = "record") -> Any:
    """A bar over ``total`` units, or None when there is nothing to show (no total, or no ``desc``)."""
    if not desc or not total:
        return None
    return tqdm(total=total, desc=desc, unit=unit, disable=None, leave=False)
