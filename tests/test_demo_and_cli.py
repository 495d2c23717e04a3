"""The demo runs, its boxes sit exactly on the drawn pixels, and the CLI stays light."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
from light_cli import run_light
from PIL import Image

from hoidata.io import read_manifest, read_table


def test_help_and_convert_do_not_import_heavy_libraries(reference: Path, tmp_path: Path) -> None:
    r = run_light("--help")
    assert r.returncode == 0 and "convert" in r.stdout
    r = run_light("convert", "hico", "--help")
    assert r.returncode == 0 and "Examples" in r.stdout
    r = run_light(
        "convert",
        "hico",
        "-a",
        str(reference / "hico" / "ppdm_test_hico_first100.json"),
        "--no-image-check",
        "-o",
        str(tmp_path / "out"),
    )
    assert r.returncode == 0, r.stderr
    assert "100 records in → 100 out, 0 rejected" in r.stdout
    r = run_light("boxes", str(tmp_path / "out"), "-o", str(tmp_path / "boxes"))  # the next data stages too
    assert r.returncode == 0 and "boxes: 100 records in" in r.stdout, r.stderr  # rejected: sizes unknown
    r = run_light("build-sft", "referring", str(tmp_path / "boxes"), "-o", str(tmp_path / "sft"))
    assert r.returncode == 0 and "build-sft: 0 records in" in r.stdout, r.stderr


def test_demo(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "hoidata", "demo", "--out", str(tmp_path)], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "preview.png").is_file()
    train, test = read_manifest(tmp_path / "hico-train"), read_manifest(tmp_path / "hico-test")
    assert train.counts == {"in": 48, "out": 47, "rejected": 1}
    assert test.counts["rejected"] == 0
    for row in read_table(tmp_path / "hico-test").to_pylist():
        im = np.asarray(Image.open(io.BytesIO(row["image"]["bytes"])).convert("RGB")).astype(int)
        assert im.shape[:2] == (row["height"], row["width"])
        for inst in row["instances"]:
            x1, y1, x2, y2 = (int(v) for v in inst["bbox"])
            assert (x1, y1, x2, y2) == tuple(inst["bbox"])
            if not inst["is_human"]:
                continue
            # the body is painted exactly over the canonical box: its edge rows/columns are mostly body
            # colour, the ones just outside are not (an off-by-one convention would flip these)
            body = (im == np.array([220, 60, 60])).all(axis=2)
            inside = [body[y1:y2, x1], body[y1:y2, x2 - 1]]  # top: head; bottom: may hold an object
            assert all(edge.mean() > 0.5 for edge in inside), row["sample_id"]
            outside = [
                body[y1:y2, x1 - 1] if x1 > 0 else None,
                body[y1:y2, x2] if x2 < row["width"] else None,
                body[y1 - 1, x1:x2] if y1 > 0 else None,
                body[y2, x1:x2] if y2 < row["height"] else None,
            ]
            assert all(edge.mean() < 0.5 for edge in outside if edge is not None), row["sample_id"]
    # it ends with generation by a tiny local model and both filters, every rollout accounted for
    cot = read_manifest(tmp_path / "cot")
    assert cot.counts["in"] == 8 and cot.counts["rows"] == 16
    for name in ("cot-sft", "cot-dpo"):
        m = read_manifest(tmp_path / name)
        assert m.counts["in"] == 16 and m.counts["out"] + m.counts["rejected"] == 16
    assert "gen-cot: 16 rollouts of 8 prompts" in r.stdout
    # and ends with predict + eval hico on its own test split
    assert read_manifest(tmp_path / "preds").counts["out"] == test.counts["out"]
    assert (tmp_path / "eval-hico.json").is_file() and "eval hico: mAP" in r.stdout
    # and a few SFT and GRPO steps on the tiny model
    assert "sft: 4 steps with LoRA" in r.stdout and "grpo: 2 steps, tools on" in r.stdout
    assert (tmp_path / "runs" / "sft" / "adapter_config.json").is_file()
    assert (tmp_path / "runs" / "grpo" / "model.safetensors").is_file()
    # and the HOI-QA chain on hand-object scenes, with referral questions about the HICO-DET test split
    assert "build-sft hoiqa: 84 QA samples" in r.stdout and "eval hoiqa: noun accuracy" in r.stdout
    hoiqa = json.loads((tmp_path / "eval-hoiqa.json").read_text())
    assert hoiqa["counts"]["items"] == hoiqa["counts"]["answered"] == 84
    assert read_manifest(tmp_path / "hico-test-qa").counts["out"] == test.counts["out"]
