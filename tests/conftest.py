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


@pytest.fixture(scope="session")
def demo_canonical(tmp_path_factory: pytest.TempPathFactory):
    """``demo_canonical(n_train)`` → a converted synthetic train split (images as paths), built once per size."""
    from hoidata.pipelines.convert import ConvertConfig, convert
    from hoidata.pipelines.demo import make_raw

    built: dict[int, Path] = {}

    def get(n_train: int) -> Path:
        if n_train not in built:
            root = tmp_path_factory.mktemp(f"demo-{n_train}")
            files = make_raw(root / "raw", n_train=n_train, n_test=2)
            cfg = ConvertConfig(
                source="hico",
                annotations=str(files["train"]),
                split="train",
                images=str(root / "raw" / "images" / "train"),
                box_origin="one-based",
            )
            convert(cfg, root / "canonical", progress=False)
            built[n_train] = root / "canonical"
        return built[n_train]

    return get
