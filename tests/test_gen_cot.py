"""``gen-cot`` as a stage: prompts from a boxes dataset, rollouts written as SFT-ready rows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from scripted_engines import ZoomThenAnswer, true_answers

from hoidata.errors import HoidataError
from hoidata.io import ShardSpec, open_dataset, read_manifest, read_table
from hoidata.pipelines.boxes import BoxesConfig, boxes
from hoidata.pipelines.gen_cot import GenCotConfig, gen_cot
from hoidata.profiles import get_profile


@pytest.fixture(scope="module")
def demo_boxes(demo_canonical, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("gen") / "boxes"
    boxes(demo_canonical(6), out, BoxesConfig(profile="qwen2.5-vl", max_pixels=64 * 28 * 28))
    return out


def test_rollouts_become_sft_ready_rows(demo_boxes: Path, tmp_path: Path) -> None:
    engine = ZoomThenAnswer(true_answers(demo_boxes))
    cfg = GenCotConfig(engine="scripted", model="zoomer", n=2, max_turns=3, shard_size=4, loop="waves")
    m = gen_cot(demo_boxes, tmp_path / "cot", cfg, lambda: engine, progress=False)
    rows = read_table(tmp_path / "cot").to_pylist()
    prompts = len(true_answers(demo_boxes))
    assert m.counts["in"] == prompts and m.counts["rows"] == 2 * prompts == len(rows)
    zoomed = [r for r in rows if r["rollout"] == 0]
    direct = [r for r in rows if r["rollout"] == 1]
    assert all(r["status"] == "answered" and r["turns"] == 2 and len(r["images"]) == 2 for r in zoomed)
    assert all(r["rewards"]["accuracy"] == 1.0 and r["rewards"]["format"] == 1.0 for r in zoomed)
    # the tool reward pays for the zoom exactly where its region touches a ground-truth box
    profile = get_profile("qwen2.5-vl", max_pixels=64 * 28 * 28)
    seen = set()
    for r in zoomed:
        x1, y1, x2, y2 = profile.from_model([ZoomThenAnswer.ZOOM], r["width"], r["height"])[0]
        boxes = [p["person_bbox"] for p in r["pairs"]] + [
            p["object_bbox"] for p in r["pairs"] if p["object_bbox"]
        ]
        touches = any(min(x2, b[2]) > max(x1, b[0]) and min(y2, b[3]) > max(y1, b[1]) for b in boxes)
        assert r["rewards"]["tool"] == float(touches) and r["uses_tool"]
        seen.add(touches)
    assert seen == {True, False}  # both cases occur
    assert all(r["turns"] == 1 and len(r["images"]) == 1 and not r["uses_tool"] for r in direct)
    roles = [m["role"] for m in zoomed[0]["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    call = zoomed[0]["messages"][1]["tool_calls"][0]["function"]
    assert call["name"] == "zoom_in" and json.loads(call["arguments"]) == {"bbox_2d": ZoomThenAnswer.ZOOM}
    tool_turn = zoomed[0]["messages"][2]["content"]
    assert tool_turn[0]["text"] == "<tool_response>\n" and tool_turn[1]["type"] == "image"
    assert {r["prompt_id"] for r in zoomed} == {r["prompt_id"] for r in direct}
    # waves: each shard's prompts twice in the first wave, then the zooming rollouts
    assert engine.waves[:2] == [4, 4]
    # the datasets library reads it back with decodable images, the crop included
    ds = open_dataset(tmp_path / "cot")
    crop = ds[0]["images"][1]
    assert crop.size[0] >= 28 and crop.size[1] >= 28


def test_a_finished_run_loads_no_engine(demo_boxes: Path, tmp_path: Path) -> None:
    answers = true_answers(demo_boxes)
    cfg = GenCotConfig(engine="scripted", model="zoomer", n=2, shard_size=3)
    built: list[int] = []

    def factory() -> ZoomThenAnswer:
        built.append(1)
        return ZoomThenAnswer(answers)

    first = gen_cot(demo_boxes, tmp_path / "a", cfg, factory, progress=False)
    assert first is not None and not first.already_complete
    files = {p: p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()}
    again = gen_cot(demo_boxes, tmp_path / "a", cfg, factory, progress=False)
    assert again is not None and again.already_complete and again.counts == first.counts
    assert {p: p.read_bytes() for p in (tmp_path / "a").rglob("*") if p.is_file()} == files
    assert len(built) == 1


def test_killed_runs_resume_to_the_uninterrupted_result(
    demo_boxes: Path, tmp_path: Path, tiny_vlm: Any
) -> None:
    """SIGKILL at random moments, five times, then finish: exactly one row per (prompt, rollout),
    equal to a run that was never interrupted (the hf engine and seeds are deterministic)."""
    import random
    import subprocess
    import sys
    import time

    model = str(tiny_vlm("qwen2.5-vl"))

    def command(out: Path) -> list[str]:
        args = [
            "gen-cot",
            str(demo_boxes),
            "--engine",
            "hf",
            "--model",
            model,
            "--n",
            "2",
            "--max-turns",
            "2",
        ]
        return [
            sys.executable,
            "-m",
            "hoidata",
            *args,
            "--max-tokens",
            "40",
            "--shard-size",
            "1",
            "--out",
            str(out),
        ]

    done = subprocess.run(command(tmp_path / "whole"), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    rng = random.Random(0)
    shards = len(list((tmp_path / "whole" / "data").glob("*.parquet")))
    assert shards >= 6
    kills_mid_run = 0
    for _ in range(5):
        if (tmp_path / "killed" / "manifest.json").exists():
            break
        # kill after a random number of further shards, plus a random moment inside the next one
        data = tmp_path / "killed" / "data"
        before = len(list(data.glob("*.parquet"))) if data.exists() else 0
        target, extra = before + 1, rng.uniform(0.0, 0.1)
        proc = subprocess.Popen(
            command(tmp_path / "killed"), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        while proc.poll() is None and (not data.exists() or len(list(data.glob("*.parquet"))) < target):
            time.sleep(0.02)  # polling the output, not waiting for time to pass
        if proc.poll() is None:
            time.sleep(extra)
            finished = len(list(data.glob("*.parquet")))
            proc.kill()
            proc.wait()
            kills_mid_run += finished < shards
    if not (tmp_path / "killed" / "manifest.json").exists():
        last = subprocess.run(command(tmp_path / "killed"), capture_output=True, text=True)
        assert last.returncode == 0, last.stderr
    assert kills_mid_run >= 3
    whole, resumed = read_table(tmp_path / "whole").to_pylist(), read_table(tmp_path / "killed").to_pylist()
    assert len({(r["prompt_id"], r["rollout"]) for r in resumed}) == len(resumed)
    assert resumed == whole


def test_shards_of_one_run_fill_one_directory(demo_boxes: Path, tmp_path: Path) -> None:
    """--shard i/N processes write into one directory; whichever finds every shard done finishes."""
    answers = true_answers(demo_boxes)
    base = GenCotConfig(engine="scripted", model="zoomer", n=2, shard_size=2)
    whole = gen_cot(demo_boxes, tmp_path / "whole", base, lambda: ZoomThenAnswer(answers), progress=False)
    first = gen_cot(
        demo_boxes,
        tmp_path / "split",
        base,
        lambda: ZoomThenAnswer(answers),
        progress=False,
        shard=ShardSpec.parse("1/2"),
    )
    assert first is None and not (tmp_path / "split" / "manifest.json").exists()
    last = gen_cot(
        demo_boxes,
        tmp_path / "split",
        base,
        lambda: ZoomThenAnswer(answers),
        progress=False,
        shard=ShardSpec.parse("0/2"),
    )
    assert last is not None and whole is not None
    assert last.counts == whole.counts
    assert read_table(tmp_path / "split").to_pylist() == read_table(tmp_path / "whole").to_pylist()


def test_data_parallel_processes_equal_one_process(demo_boxes: Path, tmp_path: Path, tiny_vlm: Any) -> None:
    import subprocess
    import sys

    model = str(tiny_vlm("qwen2.5-vl"))
    args = ["gen-cot", str(demo_boxes), "--engine", "hf", "--model", model, "--n", "2", "--max-turns", "2"]
    args += ["--max-tokens", "8", "--shard-size", "2", "--limit", "4"]
    for name, extra in (("one", []), ("dp", ["--dp", "2"])):
        r = subprocess.run(
            [sys.executable, "-m", "hoidata", *args, *extra, "--out", str(tmp_path / name)],
            capture_output=True,
            text=True,
        )
        assert r.returncode == 0, r.stderr
    assert read_manifest(tmp_path / "dp").counts == read_manifest(tmp_path / "one").counts
    assert read_table(tmp_path / "dp").to_pylist() == read_table(tmp_path / "one").to_pylist()
    # a finished run is left as it is (one line, exit 0), and --overwrite redoes it
    command = [sys.executable, "-m", "hoidata", *args, "--out", str(tmp_path / "one")]
    again = subprocess.run(command, capture_output=True, text=True)
    assert again.returncode == 0 and again.stdout.strip().endswith("already complete, nothing to do")
    redo = subprocess.run([*command, "--overwrite"], capture_output=True, text=True)
    assert redo.returncode == 0, redo.stderr
    shared = [sys.executable, "-m", "hoidata", *args, "--dp", "2", "--out", str(tmp_path / "dp")]
    redo = subprocess.run([*shared, "--overwrite"], capture_output=True, text=True)
    assert redo.returncode == 0, redo.stderr
    assert read_table(tmp_path / "dp").to_pylist() == read_table(tmp_path / "one").to_pylist()


def test_a_subset_of_tools_is_what_the_model_sees_and_what_the_data_records(
    demo_boxes: Path, tmp_path: Path
) -> None:
    class Recording(ZoomThenAnswer):
        def generate(self, conversations: Any, sampling: Any, seeds: Any, tools: Any = None) -> Any:
            self.offered = [t["function"]["name"] for t in tools]
            return super().generate(conversations, sampling, seeds, tools)

    engine = Recording(true_answers(demo_boxes))
    cfg = GenCotConfig(engine="scripted", model="zoomer", n=2, limit=4, tools=("zoom_in",))
    gen_cot(demo_boxes, tmp_path / "cot", cfg, lambda: engine, progress=False)
    assert engine.offered == ["zoom_in"]
    rows = read_table(tmp_path / "cot").to_pylist()
    assert all([t["function"]["name"] for t in json.loads(r["tools"])] == ["zoom_in"] for r in rows)
    assert any(r["rewards"]["tool"] > 0 for r in rows)  # the zoom still runs
    with pytest.raises(HoidataError, match="--tools must be some of"):
        gen_cot(
            demo_boxes, tmp_path / "bad", GenCotConfig(tools=("teleport",)), lambda: engine, progress=False
        )
