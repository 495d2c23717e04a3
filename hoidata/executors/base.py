"""The executor interface: run one stage command line over a share of its shards."""

from __future__ import annotations

from typing import Protocol

from hoidata.io import ShardSpec

# set in a long-lived worker process (a Ray actor) that runs one part of a job after another: the
# engines it builds are kept and handed out again, so it loads its model once
KEEP_ENGINES = "HOIDATA_KEEP_ENGINES"


class Executor(Protocol):
    def run(self, argv: list[str], shard: ShardSpec) -> None:
        """Run ``hoidata ARGV`` so that together its processes cover ``shard`` (this machine's
        share of the job); each process gets its own ``--shard`` appended. Raises when one fails."""


def without_options(argv: list[str], drop: dict[str, int]) -> list[str]:
    """``argv`` without the named options and their values (``drop``: option -> number of values;
    ``--opt=value`` too), so an executor can set them per process."""
    out, skip = [], 0
    for token in argv:
        if skip:
            skip -= 1
            continue
        name = token.split("=", 1)[0]
        if name in drop:
            skip = 0 if "=" in token else drop[name]
            continue
        out.append(token)
    return out
