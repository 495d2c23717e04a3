"""One ``gen-cot`` run with the instant engine of ``bench_gen_cot.py``, as a process of its own, so
that the pipeline's overhead is timed whole (interpreter, imports, reading, tools, rewards, writing):
``python gen_cot_instant.py BOXES_DIR OUT_DIR``."""

from __future__ import annotations

import sys
from pathlib import Path

from bench_gen_cot import InstantEngine

from hoidata.pipelines.gen_cot import GenCotConfig, gen_cot

if __name__ == "__main__":
    boxed, out = map(Path, sys.argv[1:3])
    cfg = GenCotConfig(engine="instant", model="instant", n=4, max_turns=3, shard_size=256)
    gen_cot(boxed, out, cfg, InstantEngine, overwrite=True, progress=False)
