"""Startup, whole process: `hoidata --help`, and what pandas and Python's collector defaults would
cost a data stage.

hoidata never imports pandas, but pyarrow does, on its first ``pa.array(...)`` or ``to_numpy()``
(even of numpy data, and for a Python scalar given to a compute function), wherever pandas is
installed (``datasets`` installs it): about 0.26 s. ``convert hico`` and ``boxes`` build their
columns through Arrow's buffers and never trigger it; a stage's process answers pyarrow's look for
pandas with "absent" (``hoidata.cli.startup``), so ``build-sft`` and the others skip it too, and it
collects reference cycles every 50,000 allocations instead of 700. This prints `hoidata --help`
against a bare interpreter, `hoidata convert` on the UPT test file, and `hoidata boxes` and
`hoidata build-sft` on its output as they run, each against the same command with pyarrow's and
Python's defaults (the command called with its arguments, as a program would), interleaved.
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
RUN = "import sys\nsys.argv = ['hoidata', *sys.argv[1:]]\nfrom hoidata.cli import main\nmain()"
CALLED = "import sys\nfrom hoidata.cli import main\nmain(sys.argv[1:])"  # pyarrow's and Python's defaults


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
            defaults_cost(label, command)


def defaults_cost(label: str, command: tuple[str, ...]) -> None:
    """The command as it runs, against the same with pyarrow's default look for pandas and Python's
    collector thresholds, interleaved (both sides see the same machine)."""
    runs: dict[str, list[WholeProcess]] = {"as run": [], "default": []}
    for _ in range(7):
        runs["as run"].append(whole_process("", [sys.executable, "-c", RUN, *command], 1, warmup=0))
        runs["default"].append(whole_process("", [sys.executable, "-c", CALLED, *command], 1, warmup=0))
    as_run, default = (
        WholeProcess(
            name, [t for r in runs[key] for t in r.seconds], [m for r in runs[key] for m in r.peak_mib]
        )
        for key, name in (("as run", label), ("default", "  same, with the defaults"))
    )
    print(as_run.line())
    print(default.line())
    saved = statistics.median(default.seconds) - statistics.median(as_run.seconds)
    print(f"  the lighter start saves {saved:.3f} s of {statistics.median(default.seconds):.3f} s")


if __name__ == "__main__":
    main()
