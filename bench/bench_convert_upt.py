"""Convert the full HICO-DET test set (UPT layout) with hoidata and with a plain per-record baseline.

The baseline is what a careful one-off script does: ``json`` + Python loops (instances deduplicated
per image, boxes to canonical pixels, HOI ids checked) + ``pyarrow.Table.from_pylist`` + Parquet.
Both outputs are compared row by row before the ratio is printed, in-process and as whole
processes (the baseline is ``convert_baseline.py``, a script of its own: its imports count too).
Goals: hoidata ≥ 5x faster in-process, and the whole ``hoidata convert`` process ≤ 0.5 s on 2 cores.
"""

from __future__ import annotations

import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import convert_baseline
import pyarrow.parquet as pq
from convert_baseline import baseline
from timing import hoidata, timed_interleaved, whole_process

from hoidata.io import read_table
from hoidata.pipelines.convert import ConvertConfig, convert

REFERENCE = (
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "hico" / "upt_instances_test2015.json"
)


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    cfg = ConvertConfig(source="hico", annotations=str(REFERENCE), split="test", image_check=False)

    def ours() -> None:
        convert(cfg, tmp / "ours", overwrite=True, progress=False)

    t_base, t_ours = timed_interleaved([lambda: baseline(REFERENCE, tmp / "base"), ours], repeats=9)
    base_rows = pq.read_table(tmp / "base").to_pylist()
    our_rows = read_table(tmp / "ours").to_pylist()
    assert base_rows == our_rows, "hoidata and the baseline disagree"
    cli = whole_process(
        "hoidata convert hico (UPT test)",
        hoidata("convert", "hico", "-a", REFERENCE, "--no-image-check", "-o", tmp / "cli", "--overwrite"),
        repeats=7,
    )
    script = whole_process(
        "baseline script",
        [sys.executable, str(Path(convert_baseline.__file__)), str(REFERENCE), str(tmp / "script")],
        repeats=7,
    )
    shutil.rmtree(tmp)
    print(
        f"HICO-DET test (UPT), {len(our_rows):,} images, {sum(len(r['interactions']) for r in our_rows):,} pairs"
    )
    print(f"  baseline (json + loops + from_pylist): {t_base * 1000:8.1f} ms")
    print(f"  hoidata convert (in-process):          {t_ours * 1000:8.1f} ms")
    print(f"  speed-up: {t_base / t_ours:.1f}x   (goal ≥ 5x)")
    print(cli.line())
    print(script.line())
    ratio = statistics.median(script.seconds) / statistics.median(cli.seconds)
    print(f"  whole-process speed-up: {ratio:.1f}x   (goal: hoidata convert ≤ 0.5 s)")


if __name__ == "__main__":
    main()
