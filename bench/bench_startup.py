"""Startup, whole process: `hoidata --help`, and what pandas costs a data stage.

hoidata never imports pandas, but pyarrow does, on its first ``pa.array(...)`` or ``to_numpy()``
(even of numpy data, and for a Python scalar given to a compute function), wherever pandas is
installed (``datasets`` installs it): ``convert hico`` and ``boxes`` build their columns through
Arrow's buffers and load none; ``build-sft`` still does. This prints `hoidata --help` against a
bare interpreter, `hoidata convert` on the UPT test file, and `hoidata boxes` and `hoidata
build-sft` on its output as they run, each against the same command with pandas made unimportable
(a baseline no user has, to show the cost).
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
        build_sft = ("build-sft", "referring", f"{tmp}/boxes", "-o", f"{tmp}/sft", "--overwrite")
        for label, command in (
            ("hoidata boxes (UPT test)", boxes),
            ("hoidata build-sft referring", build_sft),
        ):
            pandas_cost(label, command)


def pandas_cost(label: str, command: tuple[str, ...]) -> None:
    """The command as it runs, against the same with pandas unimportable, interleaved (both sides
    see the same machine)."""
    runs: dict[str, list[WholeProcess]] = {"with": [], "without": []}
    for _ in range(7):
        runs["with"].append(whole_process("", [sys.executable, "-c", RUN, *command], 1, warmup=0))
        runs["without"].append(
            whole_process("", [sys.executable, "-c", NO_PANDAS + RUN, *command], 1, warmup=0)
        )
    with_pandas, without = (
        WholeProcess(
            name, [t for r in runs[key] for t in r.seconds], [m for r in runs[key] for m in r.peak_mib]
        )
        for key, name in (("with", label), ("without", "  same, pandas unimportable"))
    )
    print(with_pandas.line())
    print(without.line())
    cost = statistics.median(with_pandas.seconds) - statistics.median(without.seconds)
    print(f"  pandas, loaded by pyarrow: {cost:.3f} s of {statistics.median(with_pandas.seconds):.3f} s")


if __name__ == "__main__":
    main()
