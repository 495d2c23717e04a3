"""One ``gen-cot`` run with an instant engine, as a process of its own, so that the pipeline's
overhead is timed whole (interpreter, imports, reading, tools, rewards, writing):
``python gen_cot_instant.py BOXES_DIR OUT_DIR [--loop async|waves] [--threads N] [--dp N]``.
``--dp N`` shares the run among N processes of this script, each writing its ``--shard j/N``, the
last to end writing the manifest: what ``hoidata gen-cot --dp N`` does.

The engine lives here, not in ``bench_gen_cot.py``, so that this process imports what ``hoidata
gen-cot`` imports and no more (the benchmark's own imports, the demo data maker among them, took a
second of every timed run)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hoidata.cli.startup import collect_less, skip_pandas_probe
from hoidata.engines import Generation, Sampling
from hoidata.io import ShardSpec

ZOOM = {"name": "zoom_in", "arguments": {"bbox_2d": [100, 100, 700, 900]}}
LOOK = Generation(f"<think>Look closer.</think>\n<tool_call>\n{json.dumps(ZOOM)}\n</tool_call>", 300, 30)
ANSWER = Generation("<think>The hands hold it.</think><answer>hold</answer>", 600, 12)


class InstantEngine:
    """Zooms on the first turn, answers on the second, in no time (the replies are made once)."""

    name, model = "instant", "instant"

    def generate(
        self, conversations: Sequence[list], sampling: Sampling, seeds: Sequence[int], tools: Any = None
    ) -> list[list[Generation]]:
        return [[LOOK if len(c) == 1 else ANSWER] * sampling.n for c in conversations]


def main(argv: list[str]) -> None:
    from hoidata.pipelines.gen_cot import GenCotConfig, gen_cot

    skip_pandas_probe()  # as `hoidata gen-cot` starts (hoidata.cli.startup)
    collect_less()

    boxed, out = map(Path, argv[:2])
    options = dict(zip(argv[2::2], argv[3::2], strict=True))
    dp = int(options.pop("--dp", "1"))
    if dp > 1:
        share(argv[:2], options, dp)
        return
    loop = options.get("--loop", "async")
    threads = int(options.get("--threads", GenCotConfig.threads))
    cfg = GenCotConfig(
        engine="instant", model="instant", n=4, max_turns=3, shard_size=256, loop=loop, threads=threads
    )
    shard = ShardSpec.parse(options["--shard"]) if "--shard" in options else ShardSpec()
    gen_cot(boxed, out, cfg, InstantEngine, overwrite=shard.count == 1, progress=False, shard=shard)


def share(paths: list[str], options: dict[str, str], dp: int) -> None:
    """``dp`` processes into one fresh output directory, as ``--dp`` runs them."""
    shutil.rmtree(paths[1], ignore_errors=True)  # --shard parts may not --overwrite
    flags = [x for pair in options.items() for x in pair]
    children = [
        subprocess.Popen([sys.executable, __file__, *paths, *flags, "--shard", f"{j}/{dp}"])
        for j in range(dp)
    ]
    if any(child.wait() != 0 for child in children):
        sys.exit(1)


if __name__ == "__main__":
    main(sys.argv[1:])
