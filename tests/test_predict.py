"""``predict`` → ``eval hico``: answers parsed through the profile, scored by the official protocol."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from hoidata.engines import Generation, Sampling
from hoidata.errors import HoidataError
from hoidata.eval.hico import eval_hico
from hoidata.io import read_manifest, read_table
from hoidata.io.images import open_image
from hoidata.pipelines.predict import PredictConfig, predict
from hoidata.profiles import get_profile


def _key(image: Any) -> str:
    return hashlib.sha1(image.tobytes()).hexdigest()


class PerfectEngine:
    """Answers every image with its ground-truth pairs, written as the profile writes them."""

    name, model = "scripted", "perfect"

    def __init__(self, canonical: Path, profile: str) -> None:
        p = get_profile(profile)
        root = read_manifest(canonical).config.get("images")
        self.answers = {}
        for r in read_table(canonical).to_pylist():
            inst = r["instances"]
            its = r["interactions"]
            person = np.array([inst[i["subject"]]["bbox"] for i in its]).reshape(-1, 4)
            obj = np.array([inst[i["object"]]["bbox"] for i in its]).reshape(-1, 4)
            entries = p.pair_texts(
                p.to_model(person, r["width"], r["height"]),
                p.to_model(obj, r["width"], r["height"]),
                np.ones(len(its), bool),
                pa.array([i["verb"].replace("_", " ") for i in its]),
                pa.array([inst[i["object"]]["label"].replace("_", " ") for i in its]),
            )
            answer = p.join_entries(pa.ListArray.from_arrays(pa.array([0, len(its)], pa.int32()), entries))
            self.answers[_key(open_image(r["image"], root))] = answer[0].as_py()

    def generate(
        self, conversations: Sequence[list], sampling: Sampling, seeds: Sequence[int], tools: Any = None
    ) -> list[list[Generation]]:
        return [[Generation(self.answers[_key(c[0]["content"][0]["image"])], 100, 50)] for c in conversations]


@pytest.fixture(scope="module")
def canonical_test(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from hoidata.demo import make_raw
    from hoidata.pipelines.convert import ConvertConfig, convert

    root = tmp_path_factory.mktemp("predict")
    files = make_raw(root / "raw", n_train=1, n_test=12)
    cfg = ConvertConfig(
        source="hico",
        annotations=str(files["test"]),
        split="test",
        images=str(root / "raw" / "images" / "test"),
        box_origin="one-based",
    )
    convert(cfg, root / "test", progress=False)
    return root / "test"


@pytest.mark.parametrize("profile", ["qwen2-vl", "qwen2.5-vl", "qwen3-vl"])
def test_perfect_answers_evaluate_to_full_marks(canonical_test: Path, tmp_path: Path, profile: str) -> None:
    cfg = PredictConfig(engine="scripted", model="perfect", profile=profile, shard_size=5)
    m = predict(canonical_test, tmp_path / "preds", cfg, lambda: PerfectEngine(canonical_test, profile))
    assert m.counts["in"] == m.counts["out"] == 12
    rows = read_table(tmp_path / "preds").to_pylist()
    assert all(p["score"] is None and p["rank"] == k for r in rows for k, p in enumerate(r["predictions"]))
    report = eval_hico(tmp_path / "preds", canonical_test)
    present = report.npos > 0
    assert present.sum() > 3
    np.testing.assert_allclose(report.ap[present], 1.0)  # every class the test split holds, perfect
    assert "rank" in report.ranking


class ZoomFirstEngine(PerfectEngine):
    """Asks for a tool it was not offered and zooms in, then answers with the ground truth."""

    def __init__(self, canonical: Path, profile: str) -> None:
        super().__init__(canonical, profile)
        self.offered: list[Any] = []
        self.tool_turns: list[Any] = []

    def generate(
        self, conversations: Sequence[list], sampling: Sampling, seeds: Sequence[int], tools: Any = None
    ) -> list[list[Generation]]:
        self.offered.append([t["function"]["name"] for t in tools or []])
        out = []
        for c in conversations:
            if len(c) == 1:
                calls = [
                    {"name": "detect_humans", "arguments": {}},
                    {"name": "zoom_in", "arguments": {"bbox_2d": [10, 10, 200, 200]}},
                ]
                text = "<think>Closer.</think>" + "".join(
                    f"\n<tool_call>\n{json.dumps(call)}\n</tool_call>" for call in calls
                )
                out.append([Generation(text, 100, 20)])
            else:
                self.tool_turns.append(c[1:])
                out.append([Generation(self.answers[_key(c[0]["content"][0]["image"])], 300, 50)])
        return out


def test_tools_at_test_time(canonical_test: Path, tmp_path: Path) -> None:
    """--tools zoom_in: the multi-turn loop runs with that tool only, and the last answer is scored."""
    profile = "qwen2.5-vl"
    engine = ZoomFirstEngine(canonical_test, profile)
    cfg = PredictConfig(engine="scripted", model="zoom", profile=profile, tools=("zoom_in",), shard_size=5)
    predict(canonical_test, tmp_path / "preds", cfg, lambda: engine)
    assert all(names == ["zoom_in"] for names in engine.offered)  # the prompt lists the offered tool only
    assert len(engine.tool_turns) == 12
    for turns in engine.tool_turns:
        results = [m["content"] for m in turns if m["role"] == "tool"]  # text, or content blocks
        assert any(isinstance(r, list) and r[0]["type"] == "image" for r in results)  # the crop came back
        assert any(isinstance(r, str) and "unknown tool" in r for r in results)  # no detector at test time
    rows = read_table(tmp_path / "preds").to_pylist()
    assert all(r["finish_reason"] == "stop" and "zoom_in" in r["completion"] for r in rows)
    assert "<answer>" in read_manifest(tmp_path / "preds").config["question"]  # the gen-cot instruction
    report = eval_hico(tmp_path / "preds", canonical_test)
    np.testing.assert_allclose(report.ap[report.npos > 0], 1.0)
    again = predict(canonical_test, tmp_path / "preds", cfg, lambda: engine)  # the same job, tools included
    assert again is not None and again.already_complete
    with pytest.raises(HoidataError, match="cannot be offered at test time"):
        predict(canonical_test, tmp_path / "bad", PredictConfig(tools=("detect_humans",)), lambda: engine)


def test_tiny_model_predicts_and_evaluates_from_the_command_line(
    canonical_test: Path, tmp_path: Path, tiny_vlm: Any
) -> None:
    model = str(tiny_vlm("qwen2.5-vl"))
    args = ["predict", str(canonical_test), "--engine", "hf", "--model", model, "--max-tokens", "16"]
    r = subprocess.run(
        [sys.executable, "-m", "hoidata", *args, "--out", str(tmp_path / "p")], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    rows = read_table(tmp_path / "p").to_pylist()
    assert len(rows) == 12 and all(
        x["finish_reason"] in ("stop", "length") and x["completion"] is not None for x in rows
    )
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "hoidata",
            "eval",
            "hico",
            str(tmp_path / "p"),
            "--gt",
            str(canonical_test),
            "--json",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "r.json").is_file() and "mAP" in r.stdout


def test_eval_plots_ap_against_training_frequency(canonical_test: Path, tmp_path: Path) -> None:
    from PIL import Image

    from hoidata.eval.plot import RARE, plot_ap_vs_frequency, training_frequency

    cfg = PredictConfig(engine="scripted", model="perfect", profile="qwen2.5-vl")
    predict(canonical_test, tmp_path / "preds", cfg, lambda: PerfectEngine(canonical_test, "qwen2.5-vl"))
    png = tmp_path / "ap.png"
    args = ["eval", "hico", str(tmp_path / "preds"), "--gt", str(canonical_test)]
    r = subprocess.run(
        [sys.executable, "-m", "hoidata", *args, "--plot", str(png), "--train", str(canonical_test)],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    image = Image.open(png)
    assert image.size == (960, 540) and image.mode == "RGB"
    freq = training_frequency(canonical_test, 600)
    report = eval_hico(tmp_path / "preds", canonical_test)
    assert freq.sum() == report.npos.sum()  # the same split here: every pair counted once
    # a rare-coloured dot exists exactly when a scored rare class exists
    ap = np.zeros(600)
    rare = np.zeros(600, bool)
    rare[[3, 4]] = True
    scored = np.zeros(600, bool)
    scored[[3, 4, 10]] = True
    ap[[3, 4, 10]] = [1.0, 0.5, 0.25]
    freq = np.zeros(600)
    freq[[3, 4, 10]] = [0, 9, 999]
    out = plot_ap_vs_frequency(ap, freq, rare, scored, tmp_path / "synthetic.png", title="t")
    pixels = np.asarray(Image.open(out))
    left, top = 70, 30  # the plot area's corner (MARGIN)
    # class 3: x = log10(1) = 0, y = AP 1 → the top-left corner of the plot area, in the rare colour
    assert tuple(pixels[top, left + 1]) == RARE or tuple(pixels[top + 1, left + 1]) == RARE
    assert (pixels == np.array(RARE)).all(axis=2).sum() > 20
