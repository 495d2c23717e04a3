"""The HOI-QA chain through the real command line on a tiny Qwen2.5-VL: convert hoiqa -> boxes ->
build-sft hoiqa -> train sft -> predict (hf engine) -> eval hoiqa."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from hoidata.demo.hands import make_hoiqa_raw
from hoidata.io import read_manifest, read_table
from hoidata.models.tiny import TINY_MAX_PIXELS, TINY_MIN_PIXELS


def _hoidata(*args: str) -> str:
    r = subprocess.run([sys.executable, "-m", "hoidata", *args], capture_output=True, text=True)
    assert r.returncode == 0, f"hoidata {' '.join(args)}\n{r.stdout}\n{r.stderr}"
    return r.stdout


def test_convert_sft_train_predict_eval(tmp_path: Path, tiny_vlm: Any) -> None:
    annotations, images = make_hoiqa_raw(tmp_path / "raw", n=6)
    budget = ["--min-pixels", str(TINY_MIN_PIXELS), "--max-pixels", str(TINY_MAX_PIXELS)]
    _hoidata(
        "convert",
        "hoiqa",
        "-a",
        str(annotations),
        "-i",
        str(images),
        "--split",
        "test",
        "-o",
        str(tmp_path / "qa"),
    )
    _hoidata("boxes", str(tmp_path / "qa"), "--profile", "qwen2.5-vl", *budget, "-o", str(tmp_path / "boxes"))
    _hoidata("build-sft", "hoiqa", str(tmp_path / "boxes"), "--images", "embed", "-o", str(tmp_path / "sft"))
    assert read_manifest(tmp_path / "sft").counts["rows"] == 42

    recipe = {
        "method": "sft",
        "model": str(tiny_vlm("qwen2.5-vl")),
        "profile": "qwen2.5-vl",
        "min_pixels": TINY_MIN_PIXELS,
        "max_pixels": TINY_MAX_PIXELS,
        "data": [str(tmp_path / "sft")],
        "trainer": {
            "output_dir": str(tmp_path / "run"),
            "max_steps": 3,
            "per_device_train_batch_size": 2,
            "learning_rate": 1e-3,
            "report_to": [],
            "save_strategy": "no",
        },
    }
    (tmp_path / "sft.yaml").write_text(yaml.safe_dump(recipe))
    _hoidata("train", "sft", "-c", str(tmp_path / "sft.yaml"))
    model = tmp_path / "run"
    assert (model / "config.json").is_file() or (model / "adapter_config.json").is_file()

    _hoidata(
        "predict",
        str(tmp_path / "qa"),
        "--engine",
        "hf",
        "--model",
        str(model),
        "--profile",
        "qwen2.5-vl",
        *budget,
        "--max-tokens",
        "12",
        "-o",
        str(tmp_path / "preds"),
    )
    preds = read_table(tmp_path / "preds").to_pylist()
    assert len(preds) == 42 and {p["sample_id"].rsplit("#", 1)[1] for p in preds} == {
        str(k) for k in range(7)
    }
    assert all(p["finish_reason"] in ("stop", "length") for p in preds)

    out = _hoidata(
        "eval",
        "hoiqa",
        str(tmp_path / "preds"),
        "--gt",
        str(tmp_path / "qa"),
        "--json",
        str(tmp_path / "r.json"),
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["counts"]["items"] == report["counts"]["answered"] == 42
    assert 0.0 <= report["overall"]["box_accuracy"] <= 1.0 and "qwen2.5-vl profile" in out
