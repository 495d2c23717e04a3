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
    from hoidata.demo import make_raw
    from hoidata.pipelines.convert import ConvertConfig, convert

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


@pytest.fixture(scope="session")
def tiny_boxes(demo_canonical, tmp_path_factory: pytest.TempPathFactory):
    """``tiny_boxes(n_train)`` → a boxes dataset (qwen2.5-vl) at the tiny model's pixel budget, so
    its model-frame boxes are the ones the tiny model's processor implies; built once per size."""
    from hoidata.models.tiny import TINY_MAX_PIXELS, TINY_MIN_PIXELS
    from hoidata.pipelines.boxes import BoxesConfig, boxes

    built: dict[int, Path] = {}

    def get(n_train: int) -> Path:
        if n_train not in built:
            out = tmp_path_factory.mktemp(f"tiny-boxes-{n_train}") / "boxes"
            cfg = BoxesConfig(profile="qwen2.5-vl", min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS)
            boxes(demo_canonical(n_train), out, cfg)
            built[n_train] = out
        return built[n_train]

    return get
