"""The GPU benchmark (``bench/gpu``) at CPU size: every path it takes on a GPU machine, so it never
rots between the runs that have one; and its model configs, checked against the published sizes."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[1] / "bench" / "gpu"


def _models_module():
    spec = importlib.util.spec_from_file_location("gpu_bench_models", BENCH / "models.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(("name", "published"), [("qwen2.5-vl-3b", 3.75e9), ("qwen3-vl-8b", 8.77e9)])
def test_configs_build_models_of_the_published_size(name: str, published: float) -> None:
    """Built on the meta device (no memory): the parameter count of the released checkpoint."""
    assert abs(_models_module().count_parameters(name) / published - 1) < 0.005


def test_tiny_mode_runs_every_setting_through_hoidata_and_plain_trl(tmp_path: Path) -> None:
    out = tmp_path / "figures.json"
    args = ["--tiny", "--steps", "2", "--json", str(out)]
    settings = [
        "--settings",
        "sft-lora",
        "grpo-full",
    ]  # full SFT differs from LoRA SFT by no peft_config only
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_gpu.py"), *args, *settings],
        capture_output=True,
        text=True,
        cwd=BENCH,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    rows = json.loads(out.read_text())
    assert [(r["model"], r["setting"]) for r in rows] == [
        (model, setting)
        for model in ("qwen2.5-vl-3b", "qwen3-vl-8b")
        for setting in ("sft lora", "grpo full")
    ]
    for r in rows:
        for side in ("hoidata", "trl"):
            assert r[side]["steps"] == 2 and r[side]["tokens_per_s"] > 0 and r[side]["peak_gib"] is None
        assert r["ratio"] > 0
    assert done.stdout.count("ratio") == 4 and "goal: hoidata / plain TRL" in done.stdout
