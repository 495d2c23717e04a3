"""Startup, whole process: `hoidata --help`, and what pandas costs a data stage.

hoidata never imports pandas, but pyarrow does, on its first ``pa.array(...)`` of Python objects,
whenever pandas is installed (``datasets`` installs it). This prints `hoidata convert` on the UPT
test file as it runs, against the same command with pandas made unimportable (a baseline no user
has, to show the cost), and `hoidata --help` against a bare interpreter.
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REFERENCE = (
    Path(__file__).resolve().parents[2] / "shared" / "reference" / "hico" / "upt_instances_test2015.json"
)
NO_PANDAS = """import sys
class NoPandas:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == 'pandas':
            raise ImportError('pandas left out')
sys.meta_path.insert(0, NoPandas())
"""
RUN = "import sys\nsys.argv = ['hoidata', *sys.argv[1:]]\nfrom hoidata.cli import main\nmain()"


def whole_process(code: str, *args: str, repeats: int = 7) -> list[float]:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return times


def line(name: str, times: list[float]) -> str:
    return f"  {name:<34} min {min(times):.3f} s  median {statistics.median(times):.3f} s  max {max(times):.3f} s"


def main() -> None:
    bare = whole_process("pass")
    help_ = whole_process(RUN, "--help")
    print(line("python -c pass", bare))
    print(line("hoidata --help", help_))
    if not REFERENCE.is_file():
        print(f"  convert: skipped, {REFERENCE} not found")
        return
    with tempfile.TemporaryDirectory() as tmp:
        args = (
            "convert",
            "hico",
            "-a",
            str(REFERENCE),
            "--no-image-check",
            "-o",
            f"{tmp}/out",
            "--overwrite",
        )
        with_pandas, without = [], []
        for _ in range(7):  # interleaved: both sides see the same machine
            with_pandas += whole_process(RUN, *args, repeats=1)
            without += whole_process(NO_PANDAS + RUN, *args, repeats=1)
    print(line("hoidata convert hico (UPT test)", with_pandas))
    print(line("  same, pandas unimportable", without))
    cost = statistics.median(with_pandas) - statistics.median(without)
    print(f"  pandas, loaded by pyarrow: {cost:.3f} s of {statistics.median(with_pandas):.3f} s")


if __name__ == "__main__":
    main()
