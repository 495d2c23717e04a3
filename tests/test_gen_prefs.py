"""Box-then-answer preferences: build-sft box-answer -> gen-prefs -> filter box-prefs / answer-prefs."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image

from hoidata.engines import Generation, Sampling
from hoidata.errors import HoidataError
from hoidata.eval.box_answer import eval_box_answer
from hoidata.io import read_manifest, read_table
from hoidata.io.images import open_image
from hoidata.pipelines.build_sft import BuildSftConfig, build_sft
from hoidata.pipelines.filter_box_prefs import FilterBoxPrefsConfig, filter_box_prefs
from hoidata.pipelines.gen_prefs import GenPrefsConfig, gen_prefs
from hoidata.profiles import get_profile
from hoidata.sft.box_answer import first_box
from hoidata.tools.zoom import crop


class Policy:
    """Half its boxes are the pair's union (answered right), half a corner box (answered wrong);
    with ``all_right`` every box is the union (so gen-prefs must add a negative)."""

    name, model = "scripted", "policy"

    def __init__(self, answers: dict[str, str], all_right: bool = False) -> None:
        self.answers, self.all_right = answers, all_right

    def generate(
        self, conversations: Sequence[list], sampling: Sampling, seeds: Sequence[int], tools: Any = None
    ) -> list[list[Generation]]:
        out = []
        for c in conversations:
            question = c[0]["content"][1]["text"]
            if len(c) == 1:  # the box turn
                b = np.array(re.findall(r"\[(\d+), (\d+), (\d+), (\d+)\]", question), int)
                union = f"<box>[{b[:, 0].min()}, {b[:, 1].min()}, {b[:, 2].max()}, {b[:, 3].max()}]</box>"
                texts = [
                    union if self.all_right or k % 2 == 0 else "<box>[0, 0, 12, 12]</box>"
                    for k in range(sampling.n)
                ]
            else:  # the answer turn, after the crop
                right = "[0, 0, 12, 12]" not in c[1]["content"]
                texts = [
                    f"<answer>{self.answers[question] if right and k else 'kick'}</answer>"
                    for k in range(sampling.n)
                ]
            out.append([Generation(t, 10, 5) for t in texts])
        return out


@pytest.fixture(scope="module")
def warmup(tiny_boxes: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("box-answer") / "sft"
    build_sft(tiny_boxes(10), out, BuildSftConfig(task="box-answer"))
    return out


def _answers(sft: Path) -> dict[str, str]:
    rows = read_table(sft).to_pylist()
    return {
        r["messages"][0]["content"][1]["text"]: r["messages"][3]["content"][0]["text"][8:-9] for r in rows
    }


def test_box_answer_traces_crop_their_box(warmup: Path) -> None:
    m = read_manifest(warmup)
    profile = get_profile(*m.profile_spec)
    for r in read_table(warmup).to_pylist():
        assert [x["role"] for x in r["messages"]] == ["user", "assistant", "user", "assistant"]
        box = first_box(r["messages"][1]["content"][0]["text"], profile, r["width"], r["height"])
        scene = open_image(r["images"][0], m.config["images"])
        shown = Image.open(io.BytesIO(r["images"][1]["bytes"]))
        assert np.array_equal(np.asarray(shown.convert("RGB")), np.asarray(crop(scene, box, profile.factor)))


def test_gen_prefs_then_both_filters(warmup: Path, tmp_path: Path) -> None:
    cfg = GenPrefsConfig(engine="scripted", model="policy", boxes=4, answers=4, shard_size=3)
    m = gen_prefs(warmup, tmp_path / "prefs", cfg, lambda: Policy(_answers(warmup)), progress=False)
    n = read_manifest(warmup).counts["rows"]
    assert m.counts == {"in": n, "out": n, "rejected": 0, "failed": 0}
    rows = read_table(tmp_path / "prefs").to_pylist()
    profile = get_profile(*read_manifest(warmup).profile_spec)
    root = read_manifest(warmup).config["images"]
    crops = 0
    for r in rows:
        scene = open_image(r["images"][0], root)
        for c in r["candidates"]:
            assert len(c["answers"]) == len(c["accuracy"]) == 4
            assert c["score"] == pytest.approx(np.mean(c["accuracy"]))
            # every crop is the image cropped at its box, pixel for pixel
            shown = np.asarray(Image.open(io.BytesIO(r["images"][c["crop"]]["bytes"])).convert("RGB"))
            assert np.array_equal(shown, np.asarray(crop(scene, np.array(c["box"]), profile.factor)))
            crops += 1
        scores = sorted(c["score"] for c in r["candidates"])
        assert scores[0] == 0.0 and scores[-1] == 0.75  # the corner box never, the union 3 of 4
    assert crops == 4 * len(rows)
    strict = FilterBoxPrefsConfig()
    m1 = filter_box_prefs(tmp_path / "prefs", tmp_path / "boxes", strict, "box")
    assert m1.counts["out"] == 0 and m1.counts["rejected"] == n  # 0.75 < 0.8: no box works by the defaults
    loose = FilterBoxPrefsConfig(min_high=0.7, chosen=0.7)
    m1 = filter_box_prefs(tmp_path / "prefs", tmp_path / "boxes2", loose, "box")
    m2 = filter_box_prefs(tmp_path / "prefs", tmp_path / "answers", loose, "answer")
    assert m1.counts["rows"] == m2.counts["rows"] == n
    for p in read_table(tmp_path / "boxes2").to_pylist():
        assert p["chosen_reward"] >= 0.7 >= 0.2 >= p["rejected_reward"]
        assert "[0, 0, 12, 12]" in p["rejected"][0]["content"][0]["text"] and len(p["images"]) == 1
    for p in read_table(tmp_path / "answers").to_pylist():
        assert len(p["images"]) == 2 and p["rejected"][0]["content"][0]["text"] == "<answer>kick</answer>"
        assert [m["role"] for m in p["prompt"]] == ["user", "assistant", "user"]


def test_negative_box_when_every_candidate_overlaps(warmup: Path, tmp_path: Path) -> None:
    cfg = GenPrefsConfig(engine="scripted", model="policy", boxes=3, answers=2, negative_iou=0.5)
    gen_prefs(
        warmup, tmp_path / "prefs", cfg, lambda: Policy(_answers(warmup), all_right=True), progress=False
    )
    for r in read_table(tmp_path / "prefs").to_pylist():
        origins = [c["origin"] for c in r["candidates"]]
        assert origins == ["policy"] * 3 + ["negative"]
        neg, target = np.array(r["candidates"][-1]["box"]), np.array(r["target"])
        lt, rb = np.maximum(neg[:2], target[:2]), np.minimum(neg[2:], target[2:])
        inter = np.prod(np.clip(rb - lt, 0, None))
        union = np.prod(neg[2:] - neg[:2]) + np.prod(target[2:] - target[:2]) - inter
        assert inter / union < 0.5


def test_eval_box_answer_from_a_greedy_run(warmup: Path, tmp_path: Path) -> None:
    """One box and one answer per question: the policy's first box is the target (IoU 1), its first
    answer is wrong; the report says so through the command line."""
    cfg = GenPrefsConfig(
        engine="scripted", model="policy", boxes=1, answers=1, box_temperature=0.0, answer_temperature=0.0
    )
    gen_prefs(warmup, tmp_path / "greedy", cfg, lambda: Policy(_answers(warmup)), progress=False)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "hoidata",
            "eval",
            "box-answer",
            str(tmp_path / "greedy"),
            "--json",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["mean_iou"] == pytest.approx(1.0) and report["iou_50"] == 1.0
    assert report["answer_accuracy"] == 0.0 and report["questions"] == read_manifest(warmup).counts["rows"]


class Failing(Policy):
    """The policy, but its replies to some questions are engine failures (a server past its retries)."""

    def __init__(self, answers: dict[str, str], failing: set[str], turn: int) -> None:
        super().__init__(answers)
        self.failing, self.turn = failing, turn

    def generate(
        self, conversations: Sequence[list], sampling: Sampling, seeds: Sequence[int], tools: Any = None
    ) -> list[list[Generation]]:
        out = super().generate(conversations, sampling, seeds, tools)
        for c, gens in zip(conversations, out, strict=True):
            if c[0]["content"][1]["text"] in self.failing and len(c) == self.turn:
                gens[-1] = Generation.failed("APIConnectionError: Connection error.")
        return out


@pytest.mark.parametrize("turn", [1, 3], ids=["box-turn", "answer-turn"])
def test_failed_questions_are_kept_rejected_by_filters_and_retried(
    warmup: Path, tmp_path: Path, turn: int
) -> None:
    """A question the engine failed on is a row with its error, never judged: the filters reject it,
    eval refuses the run, and a rerun makes exactly those rows again (= a run that never failed)."""
    answers = _answers(warmup)
    failing = set(list(answers)[:2])
    cfg = GenPrefsConfig(engine="scripted", model="policy", boxes=2, answers=2, shard_size=3)
    gen_prefs(warmup, tmp_path / "clean", cfg, lambda: Policy(answers), progress=False)
    m = gen_prefs(warmup, tmp_path / "prefs", cfg, lambda: Failing(answers, failing, turn), progress=False)
    rows = read_table(tmp_path / "prefs").to_pylist()
    failed = [r for r in rows if r["status"] == "engine_error"]
    assert m.counts["failed"] == len(failed) == 2 and {r["question"] for r in failed} == failing
    assert all("Connection error" in r["error"] for r in failed)
    loose = FilterBoxPrefsConfig(min_high=0.5, chosen=0.5)
    filter_box_prefs(tmp_path / "prefs", tmp_path / "pairs", loose, "box")
    reasons = pq.read_table(tmp_path / "pairs" / "rejects.parquet").to_pylist()
    assert sum(r["reason"].startswith("engine error") for r in reasons) == 2
    with pytest.raises(HoidataError, match="2 questions failed"):
        eval_box_answer(tmp_path / "prefs")

    asked: list[str] = []

    class Counting(Policy):
        def generate(self, conversations: Sequence[list], *args: Any, **kw: Any) -> list[list[Generation]]:
            asked.extend(c[0]["content"][1]["text"] for c in conversations if len(c) == 1)
            return super().generate(conversations, *args, **kw)

    again = gen_prefs(warmup, tmp_path / "prefs", cfg, lambda: Counting(answers), progress=False)
    assert again.retried == {"tried": 2, "made": 2, "failed": 0} and set(asked) == failing
    assert read_table(tmp_path / "prefs").to_pylist() == read_table(tmp_path / "clean").to_pylist()


def test_kill_during_gen_prefs_then_rerun(warmup: Path, tiny_vlm: Any, tmp_path: Path) -> None:
    """The tiny model through the real command line: kill -9 after the first shard, rerun, and the
    result equals an uninterrupted run (ids, counts), nothing lost or repeated."""
    import signal
    import time

    args = [
        sys.executable,
        "-m",
        "hoidata",
        "gen-prefs",
        str(warmup),
        "--engine",
        "hf",
        "--model",
        str(tiny_vlm("qwen2.5-vl")),
        "--boxes",
        "2",
        "--answers",
        "1",
        "--max-tokens",
        "6",
        "--shard-size",
        "2",
        "--limit",
        "8",
    ]
    child = subprocess.Popen(
        [*args, "-o", str(tmp_path / "killed")], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    data, deadline = tmp_path / "killed" / "data", time.time() + 240
    while time.time() < deadline and not list(data.glob("*.parquet")) and child.poll() is None:
        time.sleep(0.1)
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not (tmp_path / "killed" / "manifest.json").exists()
    for out in ("killed", "whole"):
        r = subprocess.run([*args, "-o", str(tmp_path / out)], capture_output=True, text=True)
        assert r.returncode == 0, r.stderr
    resumed, whole = read_table(tmp_path / "killed"), read_table(tmp_path / "whole")
    assert resumed["sample_id"].to_pylist() == whole["sample_id"].to_pylist()
    assert resumed.num_rows == 8 == len(set(resumed["sample_id"].to_pylist()))
    assert read_manifest(tmp_path / "killed").counts == read_manifest(tmp_path / "whole").counts
    # --dp 2: two processes, each its shards, write what one does
    r = subprocess.run([*args, "--dp", "2", "-o", str(tmp_path / "dp")], capture_output=True, text=True)
    assert r.returncode == 0 and "/2 written" in r.stdout, r.stderr  # the first part to end says so
    assert read_table(tmp_path / "dp").to_pylist() == whole.to_pylist()
