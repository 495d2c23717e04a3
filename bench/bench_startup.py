"""Startup, whole process: `hoidata --help`, and what pandas costs a data stage.

hoidata never imports pandas, but pyarrow does, on its first ``pa.array(...)`` or ``to_numpy()``
(even of numpy data), whenever pandas is installed (``datasets`` installs it): ``convert hico`` on
a UPT file loads none, ``boxes`` does. This prints `hoidata --help` against a bare interpreter,
`hoidata convert` on the UPT test file, and `hoidata boxes` on its output as it runs, against the
same command with pandas made unimportable (a baseline no user has, to show the cost).
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from pathlib import Path

from timing import WholeProcess, hoidata, whole_process

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


def main() -> None:
    print(whole_process("python -c pass", [sys.executable, "-c", "pass"], repeats=7).line())
    print(whole_process("hoidata --help", hoidata("--help"), repeats=7).line())
    if not REFERENCE.is_file():
        print(f"  convert: skipped, {REFERENCE} not found")
        return
    with tempfile.TemporaryDirectory() as tmp:
        convert = ("convert", "hico", "-a", str(REFERENCE), "--no-image-check", "-o", f"{tmp}/canonical")
        print(
            whole_process(
                "hoidata convert hico (UPT test)", hoidata(*convert, "--overwrite"), repeats=7
            ).line()
        )
        boxes = ("boxes", f"{tmp}/canonical", "-o", f"{tmp}/boxes", "--overwrite")
        runs: dict[str, list[WholeProcess]] = {"with": [], "without": []}
        for _ in range(7):  # interleaved: both sides see the same machine
            runs["with"].append(whole_process("", [sys.executable, "-c", RUN, *boxes], 1, warmup=0))
            runs["without"].append(
                whole_process("", [sys.executable, "-c", NO_PANDAS + RUN, *boxes], 1, warmup=0)
            )
    with_pandas, without = (
        WholeProcess(
            label, [t for r in runs[key] for t in r.seconds], [m for r in runs[key] for m in r.peak_mib]
        )
        for key, label in (
            ("with", "hoidata boxes (UPT test)"),
            ("without", "  same, pandas unimportable"),
        )
    )
    print(with_pandas.line())
    print(without.line())
    cost = statistics.median(with_pandas.seconds) - statistics.median(without.seconds)
    print(f"  pandas, loaded by pyarrow: {cost:.3f} s of {statistics.median(with_pandas.seconds):.3f} s")


if __name__ == "__main__":
    main()
