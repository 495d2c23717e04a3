"""``--dp N``: N processes of the same command on this machine, each on its own GPUs."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from hoidata.errors import HoidataError
from hoidata.io import ShardSpec


@dataclass(frozen=True)
class LocalProcesses:
    """``processes`` children of ``python -m hoidata``; child j sees GPUs
    ``[j * gpus_each, (j + 1) * gpus_each)`` (none set when ``gpus_each`` is 0) and runs part j of
    this machine's shards. The last child to finish writes the manifest."""

    processes: int
    gpus_each: int = 0

    def run(self, argv: list[str], shard: ShardSpec) -> None:
        children = []
        for j in range(self.processes):
            env = dict(os.environ)
            if self.gpus_each:
                first = j * self.gpus_each
                env["CUDA_VISIBLE_DEVICES"] = ",".join(str(g) for g in range(first, first + self.gpus_each))
            part = shard.part(j, self.processes)
            children.append(
                subprocess.Popen([sys.executable, "-m", "hoidata", *argv, "--shard", str(part)], env=env)
            )
        failed = [j for j, child in enumerate(children) if child.wait() != 0]
        if failed:
            raise HoidataError(
                f"data-parallel processes {failed} failed (see their output above); rerun to resume"
            )
