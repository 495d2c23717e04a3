"""Run a snippet in a fresh interpreter and read what it said: for tests of what a process imports
or how it starts, which the test process itself (already importing everything) cannot show."""

from __future__ import annotations

import subprocess
import sys


def said(code: str, *argv: str, env: dict[str, str] | None = None) -> list[str]:
    """The words ``code`` printed after its last ``SAID`` (it fails the test if the snippet fails)."""
    run = subprocess.run([sys.executable, "-c", code, *argv], capture_output=True, text=True, env=env)
    assert run.returncode == 0 and "SAID" in run.stdout, run.stdout + run.stderr
    return run.stdout.rsplit("SAID", 1)[1].split()
