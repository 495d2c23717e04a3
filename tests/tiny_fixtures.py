"""Session fixtures for tiny offline Qwen-VL checkpoints (imported by conftest).

Building one takes well under a second, but several test modules load them, so each family is
built once per session (per xdist worker) into a temporary directory and reused read-only.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

TinyVLM = Callable[[str], Path]


@pytest.fixture(scope="session")
def tiny_vlm(tmp_path_factory: pytest.TempPathFactory) -> TinyVLM:
    """``tiny_vlm("qwen2.5-vl")`` → directory of a tiny random checkpoint with the default pixel budget.

    Treat the directory as read-only: it is shared by every test of the session.
    """
    from hoidata.models.tiny import build_tiny_vlm  # needs the train extra, which `make test` installs

    built: dict[str, Path] = {}

    def get(family: str) -> Path:
        if family not in built:
            built[family] = build_tiny_vlm(family, tmp_path_factory.mktemp(f"tiny-{family}"))
        return built[family]

    return get
