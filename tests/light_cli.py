"""Running the ``hoidata`` command line in a fresh interpreter that refuses heavy imports.

Data stages, scoring and evaluation must start without torch, transformers, trl, vllm or
datasets; any such import inside the command fails the run.
"""

from __future__ import annotations

import subprocess
import sys

BLOCK_HEAVY = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in {'torch', 'transformers', 'vllm', 'trl', 'datasets'}:
            raise ImportError('heavy import: ' + name)
sys.meta_path.insert(0, Block())
sys.argv = ['hoidata'] + sys.argv[1:]
from hoidata.cli import main
main()
"""


def run_light(*args: str) -> subprocess.CompletedProcess[str]:
    """``hoidata ARGS`` with heavy imports blocked; returns the finished process."""
    return subprocess.run([sys.executable, "-c", BLOCK_HEAVY, *args], capture_output=True, text=True)
