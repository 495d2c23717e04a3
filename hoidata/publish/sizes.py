"""Byte sizes as people write them on the command line, and as the tree listing shows them."""

from __future__ import annotations

import re

from hoidata.errors import HoidataError

DEFAULT_MAX_SHARD_SIZE = 500 * 10**6  # the `datasets` push_to_hub default
SIZE_UNITS = {
    "": 1,
    "B": 1,
    "KB": 10**3,
    "MB": 10**6,
    "GB": 10**9,
    "TB": 10**12,
    "KIB": 2**10,
    "MIB": 2**20,
    "GIB": 2**30,
    "TIB": 2**40,
}


def parse_size(size: str | int) -> int:
    """'500MB', '1.5GB', '64MiB' or a number of bytes → bytes (decimal units, as `datasets` reads them)."""
    if isinstance(size, int):
        value = size
    else:
        m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]I?B|B)?\s*", size.upper())
        if not m:
            raise HoidataError(f"--max-shard-size must look like 500MB or 2GB, got {size!r}")
        value = int(float(m.group(1)) * SIZE_UNITS[m.group(2) or ""])
    if value < 1:
        raise HoidataError(f"--max-shard-size must be positive, got {size!r}")
    return value


def human_size(n: int) -> str:
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} B"
