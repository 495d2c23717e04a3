"""What an executor costs: one job (convert, synthetic HICO-DET scenes, 10 shards) run as one
process, as ``--workers 2`` local processes, and on a Ray cluster started for the run (2 workers),
each from the command line; every run's rows equal the single process's. On 2 cores the workers
cannot be much faster than one process: the figures are the executors' fixed costs (process start,
Ray's start and its actors), which a GPU job of hours pays once.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from hoidata.demo import make_raw
from hoidata.io import read_table

N_IMAGES = 1000
SHARD_SIZE = 100


def run(args: list[str]) -> float:
    started = time.perf_counter()
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}  # Ray on 127.0.0.1 only
    done = subprocess.run([sys.executable, "-m", "hoidata", *args], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        raise SystemExit(done.stderr)
    return time.perf_counter() - started


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    files = make_raw(tmp / "raw", n_train=N_IMAGES, n_test=1)
    base = ["convert", "hico", "-a", str(files["train"]), "--split", "train"]
    base += ["-i", str(tmp / "raw" / "images" / "train"), "--shard-size", str(SHARD_SIZE)]
    print(
        f"convert hico, {N_IMAGES:,} synthetic scenes in {N_IMAGES // SHARD_SIZE} shards, from the command line"
    )
    one = run([*base, "-o", str(tmp / "one")])
    print(f"  one process:                          {one:6.2f} s")
    expected = read_table(tmp / "one").to_pylist()
    for label, extra in (
        ("--workers 2 (local processes)", ["--workers", "2"]),
        ("--executor ray --workers 2 (new cluster)", ["--executor", "ray", "--workers", "2"]),
    ):
        out = tmp / label.split()[0].strip("-")
        try:
            seconds = run([*base, *extra, "-o", str(out)])
        except SystemExit as e:
            print(f"  {label}: skipped ({str(e.code).strip().splitlines()[-1]})")
            continue
        same = read_table(out).to_pylist() == expected
        print(f"  {label + ':':39s}{seconds:6.2f} s   rows equal one process's: {same}")
    started = time.perf_counter()
    run([*base, "--executor", "slurm", "--workers", "8", "--dry-run", "-o", str(tmp / "slurm")])
    print(
        f"  --executor slurm --workers 8 --dry-run: {time.perf_counter() - started:6.2f} s (the scripts, printed)"
    )
    shutil.rmtree(tmp)


if __name__ == "__main__":
    main()
