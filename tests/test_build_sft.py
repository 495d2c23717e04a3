"""``hoidata build-sft``: complete, exact and deterministic SFT datasets."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pyarrow as pa
import pytest
from PIL import Image

from hoidata.io import StageRun, open_dataset, read_manifest, read_table
from hoidata.pipelines.boxes import BoxesConfig, add_boxes, boxes
from hoidata.pipelines.build_sft import BuildSftConfig, build_sft, build_table
from hoidata.pipelines.convert import ConvertConfig, convert
from hoidata.profiles import get_profile
from hoidata.schemas.boxes import smart_resize
from hoidata.schemas.canonical import SCHEMA
from hoidata.sft.prompts import templates
from hoidata.tools.zoom import crop_window


@pytest.fixture(scope="module")
def hico_boxes(reference: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hico")
    ann = reference / "hico" / "upt_instances_test2015.json"
    convert(ConvertConfig(source="hico", annotations=str(ann), split="test", image_check=False), root / "c")
    boxes(root / "c", root / "b", BoxesConfig(profile="qwen2.5-vl"))
    return root / "b"


def _canonical_pairs(boxed: Path) -> Counter:
    out: Counter = Counter()
    for row in read_table(boxed, columns=["sample_id", "instances", "interactions"]).to_pylist():
        inst = row["instances"]
        for it in row["interactions"]:
            out[
                (
                    row["sample_id"],
                    tuple(inst[it["subject"]]["bbox"]),
                    tuple(inst[it["object"]]["bbox"]),
                    it["verb"],
                    inst[it["object"]]["label"],
                )
            ] += 1
    return out


@pytest.mark.parametrize("task", ["referring", "grounding", "detection"])
def test_full_hico_test_set_keeps_every_pair(hico_boxes: Path, tmp_path: Path, task: str) -> None:
    """Acceptance: the pairs of the samples are exactly the canonical interactions, none dropped or invented."""
    m = build_sft(hico_boxes, tmp_path / task, BuildSftConfig(task=task))
    empty = 112  # images of the HICO-DET test set without any interaction
    assert m.counts["in"] == 9658
    assert m.counts["rejected"] == (0 if task == "detection" else empty)
    assert m.counts["out"] + m.counts["rejected"] == m.counts["in"]
    rows = read_table(
        tmp_path / task, columns=["source_id", "pairs", "messages", "width", "height"]
    ).to_pylist()
    got: Counter = Counter()
    for r in rows:
        for p in r["pairs"]:
            got[
                (r["source_id"], tuple(p["person_bbox"]), tuple(p["object_bbox"]), p["verb"], p["object"])
            ] += 1
    assert got == _canonical_pairs(hico_boxes)
    assert sum(got.values()) == 33405
    if task == "referring":
        assert m.counts["rows"] == 33405  # every (person, object) pair of this set has a single verb
    # the answers say exactly what the pairs hold: parse them back through the profile
    profile = get_profile("qwen2.5-vl")
    for r in rows[:: max(1, len(rows) // 400)]:
        answer = r["messages"][1]["content"][0]["text"]
        if task == "referring":
            assert answer.split(", ") == sorted(
                {p["verb"].replace("_", " ") for p in r["pairs"]}, key=answer.index
            )
            continue
        parsed = profile.parse_pairs(answer, r["width"], r["height"])
        assert len(parsed) == len(r["pairs"])
        tol = profile.quantization_error(r["width"], r["height"]) + 1e-3
        for got_pair, want in zip(parsed, r["pairs"], strict=True):
            assert np.abs(got_pair.person_box - want["person_bbox"]).max() <= tol
            assert np.abs(got_pair.object_box - want["object_bbox"]).max() <= tol
            if task == "detection":
                assert (got_pair.verb, got_pair.object) == (want["verb"], want["object"])
    ds = datasets.load_dataset("parquet", data_dir=str(tmp_path / task / "data"), split="test")
    assert len(ds) == m.counts["rows"]
    assert ds.features["messages"].feature["content"].feature["text"].dtype == "string"


def test_grounding_and_referring_group_every_matching_pair() -> None:
    """Two people riding, one of them also holding: grounding 'ride' lists both, referring joins verbs."""
    inst = [
        {"bbox": b, "label": lab, "label_id": i, "is_human": lab == "person"}
        for i, (b, lab) in enumerate(
            [([0, 0, 10, 20], "person"), ([20, 0, 30, 20], "person"), ([5, 10, 25, 30], "horse")]
        )
    ]
    inter = [
        {"subject": 0, "object": 2, "verb": "ride", "verb_id": 76, "hoi_id": 1},
        {"subject": 1, "object": 2, "verb": "ride", "verb_id": 76, "hoi_id": 1},
        {"subject": 0, "object": 2, "verb": "hold", "verb_id": 36, "hoi_id": 2},
    ]
    row = {
        "sample_id": "img",
        "source": "hico-det",
        "split": "train",
        "image": {"bytes": None, "path": "img.jpg"},
        "width": 40,
        "height": 40,
        "instances": inst,
        "interactions": inter,
        "qa": [],
    }
    p = get_profile("qwen3-vl")
    boxed, _ = add_boxes(pa.Table.from_pylist([row], schema=SCHEMA), p, BoxesConfig(profile="qwen3-vl"))
    g, _ = build_table(boxed, p, BuildSftConfig(task="grounding"), "path", "/images")
    by_verb = {r["pairs"][0]["verb"]: r for r in g.to_pylist()}
    assert len(by_verb["ride"]["pairs"]) == 2 and len(by_verb["hold"]["pairs"]) == 1
    assert len(p.parse_pairs(by_verb["ride"]["messages"][1]["content"][0]["text"], 40, 40)) == 2
    r, _ = build_table(boxed, p, BuildSftConfig(task="referring"), "path", "/images")
    answers = sorted(x["messages"][1]["content"][0]["text"] for x in r.to_pylist())
    assert answers == ["hold, ride", "ride"]
    assert sum(len(x) for x in r["pairs"].to_pylist()) == 3


@pytest.fixture(scope="module")
def demo_boxes(demo_canonical, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("demo-boxes") / "b"
    boxes(demo_canonical(24), out, BoxesConfig(profile="qwen2.5-vl", max_pixels=64 * 28 * 28))
    return out


def test_paraphrases_are_deterministic_and_varied(demo_boxes: Path, tmp_path: Path) -> None:
    def questions(seed: int, name: str) -> list[str]:
        build_sft(demo_boxes, tmp_path / name, BuildSftConfig(task="referring", seed=seed))
        return [m[0]["content"][1]["text"] for m in read_table(tmp_path / name)["messages"].to_pylist()]

    a, b, c = questions(0, "a"), questions(0, "b"), questions(1, "c")
    assert a == b and a != c
    used = {next(i for i, t in enumerate(templates()["referring"]) if t.split("{")[0] in q) for q in a}
    assert len(used) >= 3


def test_cof_zooms_on_real_crops_and_reasons_before_answering(demo_boxes: Path, tmp_path: Path) -> None:
    m = build_sft(demo_boxes, tmp_path / "cof", BuildSftConfig(task="cof", tool_share=0.5))
    rows = read_table(tmp_path / "cof").to_pylist()
    assert m.counts["rows"] == len(rows)
    with_tool = [r for r in rows if r["uses_tool"]]
    assert 0.2 < len(with_tool) / len(rows) < 0.8
    root = Path(read_manifest(demo_boxes).config["images"])
    profile = get_profile("qwen2.5-vl", max_pixels=64 * 28 * 28)
    for r in rows:
        msgs = r["messages"]
        verbs = {p["verb"].replace("_", " ") for p in r["pairs"]}
        final = msgs[-1]["content"][0]["text"]
        assert re.fullmatch(r"<think>[^<]+</think><answer>[^<]+</answer>", final)
        assert set(re.search(r"<answer>(.*)</answer>", final).group(1).split(", ")) == verbs
        think = re.search(r"<think>(.*)</think>", final).group(1)
        if not r["uses_tool"]:
            assert len(r["images"]) == 1 and r["tools"] is None and len(msgs) == 2
            assert not any(re.search(rf"\b{v}\b", think) for v in verbs)
            continue
        assert len(r["images"]) == 2 and "zoom_in" in r["tools"]
        assert [x["role"] for x in msgs] == ["user", "assistant", "user", "assistant"]
        before = msgs[1]["content"][0]["text"]
        assert not any(re.search(rf"\b{v}\b", before) for v in verbs)  # no answer before the tool result
        (call,) = msgs[1]["tool_calls"]
        args = __import__("json").loads(call["function"]["arguments"])
        assert call["function"]["name"] == "zoom_in"
        region = profile.from_model([args["bbox_2d"]], r["width"], r["height"])[0]
        original = Image.open(root / r["images"][0]["path"])
        left, top, right, bottom = crop_window(region, r["width"], r["height"], profile.factor)
        cropped = Image.open(io.BytesIO(r["images"][1]["bytes"]))
        assert cropped.size == (right - left, bottom - top)
        assert np.array_equal(np.asarray(cropped), np.asarray(original.crop((left, top, right, bottom))))
        tool_turn = msgs[2]["content"]
        assert tool_turn[0]["text"] == "<tool_response>\n" and tool_turn[1]["type"] == "image"
        assert tool_turn[2]["text"].endswith("\n</tool_response>")


def test_cof_offers_the_tools_asked_for(demo_boxes: Path, tmp_path: Path) -> None:
    """Zoom-only chain-of-focus data offers zoom_in alone, as `gen-cot --tools zoom_in` rollouts do."""
    cfg = BuildSftConfig(task="cof", tool_share=1.0, tools=("zoom_in",))
    build_sft(demo_boxes, tmp_path / "zoom", cfg)
    offered = {r["tools"] for r in read_table(tmp_path / "zoom").to_pylist()}
    assert [[t["function"]["name"] for t in json.loads(x)] for x in offered] == [["zoom_in"]]
    cli = [sys.executable, "-m", "hoidata", "build-sft", "cof", str(demo_boxes), "-o", str(tmp_path / "x")]
    run = subprocess.run(
        [*cli, "--tools", "detect_humans,imagine"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "zoom_in among them" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "x").exists()


def test_image_modes(demo_boxes: Path, tmp_path: Path) -> None:
    root = Path(read_manifest(demo_boxes).config["images"])
    build_sft(demo_boxes, tmp_path / "embed", BuildSftConfig(task="detection", images="embed"))
    for r in read_table(tmp_path / "embed").to_pylist()[:5]:
        assert r["images"][0]["bytes"] == (root / r["images"][0]["path"]).read_bytes()  # not re-encoded
    build_sft(demo_boxes, tmp_path / "paths", BuildSftConfig(task="detection"))
    plain = read_table(tmp_path / "paths").to_pylist()
    assert all(r["images"][0]["bytes"] is None for r in plain)
    build_sft(demo_boxes, tmp_path / "resize", BuildSftConfig(task="detection", images="resize"))
    resized = read_table(tmp_path / "resize").to_pylist()
    for before, after in zip(plain, resized, strict=True):
        im = Image.open(io.BytesIO(after["images"][0]["bytes"]))
        assert (
            im.size == (after["resized_width"], after["resized_height"]) == (after["width"], after["height"])
        )
        # already at its smart_resize size: the processor's resize is the identity
        assert smart_resize(im.height, im.width, 28, 4 * 28 * 28, 64 * 28 * 28) == (im.height, im.width)
        # the answer text is unchanged (it was already in the resized frame); pairs follow the new pixels
        assert before["messages"] == after["messages"]
        sx, sy = after["width"] / before["width"], after["height"] / before["height"]
        for p, q in zip(before["pairs"], after["pairs"], strict=True):
            np.testing.assert_allclose(
                q["person_bbox"], np.array(p["person_bbox"]) * [sx, sy, sx, sy], rtol=1e-5, atol=1e-3
            )
    ds = open_dataset(tmp_path / "paths")
    assert isinstance(ds[0]["images"][0], Image.Image)


def test_spatial_refer_boxes(demo_boxes: Path, tmp_path: Path) -> None:
    build_sft(demo_boxes, tmp_path / "s", BuildSftConfig(task="spatial"))
    boxed = {r["sample_id"]: r for r in read_table(demo_boxes).to_pylist()}
    for r in read_table(tmp_path / "s").to_pylist():
        src = boxed[r["source_id"]]
        it = next(
            i
            for i in src["interactions"]
            if src["instances"][i["subject"]]["bbox"] == r["pairs"][0]["person_bbox"]
            and src["instances"][i["object"]]["bbox"] == r["pairs"][0]["object_bbox"]
        )
        assert r["refer_boxes"] == it["model_refer_boxes"]
        assert src["instances"][it["subject"]]["model_bbox"] == r["refer_boxes"][0]


def test_resume_and_bad_input(demo_boxes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    build_sft(demo_boxes, tmp_path / "whole", BuildSftConfig(task="referring"))
    out = tmp_path / "r"

    def killed(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt  # the shards are written, the manifest is not

    with monkeypatch.context() as mp:
        mp.setattr(StageRun, "finish", killed)
        with pytest.raises(KeyboardInterrupt):
            build_sft(demo_boxes, out, BuildSftConfig(task="referring"))
    assert not (out / "manifest.json").exists()
    m = build_sft(demo_boxes, out, BuildSftConfig(task="referring"))
    assert m.extra["resumed"]
    assert read_table(out).to_pylist() == read_table(tmp_path / "whole").to_pylist()
    assert m.counts == read_manifest(tmp_path / "whole").counts
    canonical = Path(read_manifest(demo_boxes).config["input"])
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "hoidata",
            "build-sft",
            "referring",
            str(canonical),
            "-o",
            str(tmp_path / "x"),
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "hoidata boxes" in run.stderr and "Traceback" not in run.stderr
    run = subprocess.run(
        [
            sys.executable,
            "-m",
            "hoidata",
            "build-sft",
            "cof",
            str(demo_boxes),
            "-o",
            str(tmp_path / "y"),
            "--tool-share",
            "2",
        ],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2 and "--tool-share" in run.stderr
