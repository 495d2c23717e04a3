from __future__ import annotations

from pathlib import Path

import pytest

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


@pytest.fixture(scope="session")
def reference() -> Path:
    if not REFERENCE.is_dir():
        pytest.fail(f"reference data missing at {REFERENCE} (CI provides ../shared/reference)")
    return REFERENCE


# Tiny offline Qwen-VL checkpoints, built once per session (see tiny_fixtures.py).
from tiny_fixtures import tiny_vlm  # noqa: E402, F401
