"""HOI-QA between convert and eval: build-sft hoiqa, predict --task qa, hoidata qa, eval hoiqa."""

from __future__ import annotations

import hashlib
import io
import json
import random
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from hoidata.demo.hands import make_hoiqa_raw
from hoidata.engines import Generation, Sampling
from hoidata.eval.hoiqa import eval_hoiqa
from hoidata.io import read_manifest, read_table
from hoidata.pipelines.boxes import BoxesConfig, boxes
from hoidata.pipelines.build_sft import BuildSftConfig, build_sft
from hoidata.pipelines.convert import ConvertConfig, convert
from hoidata.pipelines.predict import PredictConfig, predict
from hoidata.pipelines.referral import QAConfig, add_qa
from hoidata.profiles import get_profile
from hoidata.profiles.text import box_pattern
from hoidata.schemas.canonical import QA_ITEM
from hoidata.sft.qa import flatten_items, item_problems, read_boxes
from hoidata.sft.referral import FAMILIES, ing_form, referral_qa

PROFILES = ("qwen2-vl", "qwen2.5-vl", "qwen3-vl")


@pytest.fixture(scope="module")
def hoiqa(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """HOI-QA hand-object scenes, converted, and boxed for each profile."""
    root = tmp_path_factory.mktemp("hoiqa")
    annotations, images = make_hoiqa_raw(root / "raw", n=10)
    convert(
        ConvertConfig(source="hoiqa", annotations=str(annotations), images=str(images), split="test"),
        root / "canonical",
        progress=False,
    )
    out = {"canonical": root / "canonical"}
    for p in PROFILES:
        boxes(root / "canonical", root / f"boxes-{p}", BoxesConfig(profile=p))
        out[p] = root / f"boxes-{p}"
    return out


@pytest.fixture(scope="module")
def hico_qa(demo_canonical: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Referral questions about the demo's HICO-DET scenes."""
    root = tmp_path_factory.mktemp("hico-qa")
    add_qa(demo_canonical(24), root / "qa", QAConfig())
    return root / "qa"


def _items_by_id(dataset: Path) -> dict[str, dict[str, Any]]:
    table = read_table(dataset)
    out = {}
    for row in table.to_pylist():
        for k, item in enumerate(row["qa"]):
            out[f"{row['sample_id']}#{k}"] = item | {"width": row["width"], "height": row["height"]}
    return out


@pytest.mark.parametrize("box_format", ["profile", "grid"])
@pytest.mark.parametrize("profile", PROFILES)
def test_every_box_survives_text_and_parser(
    hoiqa: dict[str, Path], tmp_path: Path, profile: str, box_format: str
) -> None:
    build_sft(hoiqa[profile], tmp_path / "sft", BuildSftConfig(task="hoiqa", box_format=box_format))
    prof = get_profile(profile)
    truth = _items_by_id(hoiqa["canonical"])
    samples = read_table(tmp_path / "sft").to_pylist()
    assert len(samples) == len(truth) == 70
    checked = 0
    for s in samples:
        item = truth[s["sample_id"]]
        w, h = item["width"], item["height"]
        question, answer = (m["content"][-1]["text"] for m in s["messages"])
        assert question.startswith(f"[{item['task']}] ")
        for text, key in ((question, "question_boxes"), (answer, "answer_boxes")):
            want = np.array(item[key], np.float64).reshape(-1, 4)
            got = read_boxes(text, box_format, prof, w, h)
            assert got.shape == want.shape
            if not len(want):
                continue
            if box_format == "profile":  # exact in the model's frame
                written = np.array(box_pattern(prof.style).findall(text), np.float64)
                np.testing.assert_array_equal(written, prof.to_model(want, w, h))
                tol = prof.quantization_error(w, h) + 1e-9
            else:  # within the grid's rounding
                tol = 0.5 * max(w, h) / 100 + 1e-9
            assert np.abs(got - want).max() <= tol
            checked += len(want)
    assert checked == 60  # 6 boxes per image


def test_multi_turn_conversation_per_image(hoiqa: dict[str, Path], tmp_path: Path) -> None:
    m = build_sft(hoiqa["qwen2.5-vl"], tmp_path / "mt", BuildSftConfig(task="hoiqa", conversation="image"))
    assert m.counts == {"in": 10, "out": 10, "rejected": 0, "rows": 10}
    row = read_table(tmp_path / "mt").to_pylist()[0]
    roles = [msg["role"] for msg in row["messages"]]
    assert roles == ["user", "assistant"] * 7 and len(row["images"]) == 1
    blocks = [b["type"] for msg in row["messages"] for b in msg["content"]]
    assert blocks.count("image") == 1 and row["messages"][0]["content"][0]["type"] == "image"


def test_bad_items_are_rejected_with_their_field(tmp_path: Path) -> None:
    table = read_table(_boxes_with_bad_items(tmp_path))
    items = flatten_items(table["qa"])
    assert [(i, f) for i, f, _ in item_problems(items)] == [
        (7, "task"),
        (14, "answer_boxes"),
    ]  # items 0 of rows 1 and 2
    m = build_sft(tmp_path / "boxes", tmp_path / "sft", BuildSftConfig(task="hoiqa"))
    assert m.counts["in"] == m.counts["out"] + m.counts["rejected"] == 3 and m.counts["rejected"] == 2
    rej = pq.read_table(tmp_path / "sft" / "rejects.parquet").to_pylist()
    reasons = {r["field"]: r["reason"] for r in rej}
    assert "unknown task tag 'bogus'" in reasons["qa[0].task"]
    assert "2 <box> placeholder(s) in the answer but 1 box(es)" in reasons["qa[0].answer_boxes"]


def _boxes_with_bad_items(tmp_path: Path) -> Path:
    annotations, images = make_hoiqa_raw(tmp_path / "raw", n=3)
    records = json.loads(annotations.read_text())
    records[1]["conversations"][0]["value"] = "<image>[bogus] Where is it?"
    records[2]["conversations"][0]["value"] = "<image>[refer] Where is it?"
    annotations.write_text(json.dumps(records))
    convert(
        ConvertConfig(source="hoiqa", annotations=str(annotations), images=str(images), split="test"),
        tmp_path / "canonical",
        progress=False,
    )
    table = read_table(tmp_path / "canonical")
    qa = table["qa"].to_pylist()
    qa[2][0]["answer"] = "<box> <box>"  # two placeholders, one box
    fixed = table.set_column(table.schema.get_field_index("qa"), "qa", pa.array(qa, pa.list_(QA_ITEM)))
    shard = read_manifest(tmp_path / "canonical").shard_files(tmp_path / "canonical")[0]
    pq.write_table(fixed.replace_schema_metadata(pq.read_schema(shard).metadata), shard)
    boxes(tmp_path / "canonical", tmp_path / "boxes", BoxesConfig())
    return tmp_path / "boxes"


def _truth_completions(
    dataset: Path, boxed: Path, path: Path, box_format: str, shuffle: bool = False
) -> Path:
    """The ground-truth answers, written as a model of this format would write them."""
    build_sft(boxed, path.with_suffix(""), BuildSftConfig(task="hoiqa", box_format=box_format))
    rows = read_table(path.with_suffix("")).to_pylist()
    answers = [r["messages"][1]["content"][0]["text"] for r in rows]
    if shuffle:
        random.Random(0).shuffle(answers)
    path.write_text(
        "".join(
            json.dumps({"sample_id": r["sample_id"], "completion": a}) + "\n"
            for r, a in zip(rows, answers, strict=True)
        )
    )
    return path


def _eval_cli(completions: Path, gt: Path, *args: str) -> dict[str, Any]:
    report = completions.with_suffix(".report.json")
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "hoidata",
            "eval",
            "hoiqa",
            str(completions),
            "--gt",
            str(gt),
            "--json",
            str(report),
            *args,
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    return json.loads(report.read_text())


@pytest.mark.parametrize("box_format", ["grid", "profile"])
def test_true_answers_score_one_on_every_subset_and_shuffled_ones_less(
    hoiqa: dict[str, Path], tmp_path: Path, box_format: str
) -> None:
    extra = ["--box-format", box_format] + (["--profile", "qwen3-vl"] if box_format == "profile" else [])
    truth = _truth_completions(hoiqa["canonical"], hoiqa["qwen3-vl"], tmp_path / "truth.jsonl", box_format)
    report = _eval_cli(truth, hoiqa["canonical"], *extra)
    asked = {k: v for k, v in report["subsets"].items() if v["total"]}
    assert set(asked) == {
        "objN2objBB",
        "objBB2objN",
        "handN2handBB",
        "handN2objBB",
        "objN2handN",
        "handN2objN",
    }
    assert all(v["accuracy"] == 1.0 for v in asked.values())
    assert report["overall"]["noun_accuracy"] == report["overall"]["box_accuracy"] == 1.0
    shuffled = _truth_completions(
        hoiqa["canonical"], hoiqa["qwen3-vl"], tmp_path / "s.jsonl", box_format, True
    )
    worse = _eval_cli(shuffled, hoiqa["canonical"], *extra)
    assert worse["overall"]["box_accuracy"] < 0.6 and worse["overall"]["noun_accuracy"] < 0.8


def test_referral_questions_from_hico_score_like_hoiqa(hico_qa: Path, tmp_path: Path) -> None:
    manifest = read_manifest(hico_qa)
    assert manifest.stage == "qa" and manifest.counts["in"] == manifest.counts["out"]
    boxes(hico_qa, tmp_path / "boxes", BoxesConfig(profile="qwen2.5-vl"))
    truth = _truth_completions(hico_qa, tmp_path / "boxes", tmp_path / "truth.jsonl", "profile")
    report = _eval_cli(truth, hico_qa, "--box-format", "profile", "--profile", "qwen2.5-vl")
    asked = {k: v for k, v in report["subsets"].items() if v["total"]}
    assert set(asked) == set(FAMILIES)
    assert all(v["accuracy"] == 1.0 for v in asked.values())
    assert report["groups"]["i_ref"]["box_total"] > 0 and report["groups"]["ho_ref"]["noun_total"] > 0
    shuffled = _truth_completions(hico_qa, tmp_path / "boxes", tmp_path / "s.jsonl", "profile", True)
    worse = _eval_cli(shuffled, hico_qa, "--box-format", "profile", "--profile", "qwen2.5-vl")
    assert worse["overall"]["box_accuracy"] < 0.5


def test_referral_families_on_a_hand_made_image() -> None:
    from hoidata.schemas.canonical import SCHEMA

    box = {"person": [0, 0, 10, 10], "person2": [20, 0, 30, 10], "cup": [5, 5, 8, 8], "cup2": [25, 5, 28, 8]}
    inst = [
        {
            "bbox": box[k],
            "label": k.rstrip("2"),
            "label_id": 1 if "cup" in k else 0,
            "is_human": "person" in k,
        }
        for k in box
    ]
    inter = [
        {"subject": 0, "object": 2, "verb": "hold", "verb_id": 1, "hoi_id": 1},
        {"subject": 0, "object": 2, "verb": "hold", "verb_id": 1, "hoi_id": 1},  # a duplicate pair
        {"subject": 1, "object": 3, "verb": "hold", "verb_id": 1, "hoi_id": 1},
        {"subject": 1, "object": 3, "verb": "sip", "verb_id": 2, "hoi_id": 2},
        {"subject": 1, "object": -1, "verb": "stand", "verb_id": 3, "hoi_id": 3},
        {"subject": 0, "object": 3, "verb": "no_interaction", "verb_id": 0, "hoi_id": 0},
    ]
    row = {
        "sample_id": "x",
        "source": "hico-det",
        "split": "test",
        "image": {"bytes": None, "path": "x.jpg"},
        "width": 40,
        "height": 20,
        "instances": inst,
        "interactions": inter,
        "qa": [],
    }
    table = pa.Table.from_pylist([row], SCHEMA)
    items = referral_qa(table)[0].as_py()
    asked = {(i["task"], i["question"]): (i["answer"], i["question_boxes"], i["answer_boxes"]) for i in items}
    assert asked[("refer", "Where is the cup the person is holding?")] == (
        "<box>, <box>",
        [],
        [box["cup"], box["cup2"]],
    )
    assert asked[("refer", "Which person is sipping the cup?")] == ("<box>", [], [box["person2"]])
    assert asked[("vqa", "What is the person holding?")][0] == "cup"
    assert asked[("refer", "Where is the cup?")][2] == [box["cup"], box["cup2"]]
    identify = [i for i in items if i["task"] == "identify"]  # each object someone interacts with
    assert [(i["question"], i["answer"], i["question_boxes"]) for i in identify] == [
        ("<box>", "cup", [box["cup"]]),
        ("<box>", "cup", [box["cup2"]]),
    ]
    assert not any("stand" in q or "no interaction" in q for _, q in asked)
    assert len(items) == len(asked) + 1  # the duplicate pair asks nothing twice
    only_one = referral_qa(table, ("actObjN2objBB",), max_boxes=1)[0].as_py()
    assert [i["question"] for i in only_one] == ["Where is the cup the person is sipping?"]


def test_ing_forms() -> None:
    verbs = "sit_on ride lie_on tie hop_on cut stir control open exit eat dribble text_on row lasso swing adjusting"
    assert [ing_form(v) for v in verbs.split()] == [
        "sitting on",
        "riding",
        "lying on",
        "tying",
        "hopping on",
        "cutting",
        "stirring",
        "controlling",
        "opening",
        "exiting",
        "eating",
        "dribbling",
        "texting on",
        "rowing",
        "lassoing",
        "swinging",
        "adjusting",
    ]


class OracleQA:
    """Answers each (image, question) with the ground truth the SFT data holds for it."""

    name, model = "scripted", "oracle"

    def __init__(self, sft: Path) -> None:
        self.answers = {}
        for r in read_table(sft).to_pylist():
            im = Image.open(io.BytesIO(r["images"][0]["bytes"])).convert("RGB")
            key = (hashlib.md5(im.tobytes()).hexdigest(), r["messages"][0]["content"][1]["text"])
            self.answers[key] = r["messages"][1]["content"][0]["text"]
        self.asked = 0

    def generate(
        self, conversations: Sequence[list], sampling: Sampling, seeds: Sequence[int], tools: Any = None
    ) -> list[list[Generation]]:
        out = []
        for c in conversations:
            image, question = c[0]["content"][0]["image"], c[0]["content"][1]["text"]
            key = (hashlib.md5(image.convert("RGB").tobytes()).hexdigest(), question)
            out.append([Generation(self.answers[key], 10, 5)])  # KeyError: asked otherwise than trained
            self.asked += 1
        return out


def test_predict_asks_each_item_as_build_sft_wrote_it(hoiqa: dict[str, Path], tmp_path: Path) -> None:
    build_sft(hoiqa["qwen2.5-vl"], tmp_path / "sft", BuildSftConfig(task="hoiqa", images="embed"))
    engine = OracleQA(tmp_path / "sft")
    cfg = PredictConfig(engine="scripted", model="oracle", profile="qwen2.5-vl", shard_size=8)
    m = predict(hoiqa["canonical"], tmp_path / "preds", cfg, lambda: engine)
    assert m.config["task"] == "qa" and m.counts == {
        "in": 10,
        "out": 10,
        "rejected": 0,
        "rows": 70,
        "failed": 0,
    }
    assert engine.asked == 70
    report = eval_hoiqa(tmp_path / "preds", hoiqa["canonical"])  # box format and profile from the manifest
    assert report.overall["box_accuracy"] == report.overall["noun_accuracy"] == 1.0
    assert any("qwen2.5-vl" in n for n in report.notes)
    with pytest.raises(Exception, match="--tools are for detection"):
        predict(hoiqa["canonical"], tmp_path / "t", PredictConfig(tools=("zoom_in",)), lambda: engine)


def test_resized_images_carry_the_same_text(hoiqa: dict[str, Path], tmp_path: Path) -> None:
    """--images resize stores the profile's resize of each image; the boxes in the text still land on
    the same pixels the processor will see, so the text does not change."""
    kept = build_sft(hoiqa["qwen3-vl"], tmp_path / "a", BuildSftConfig(task="hoiqa", images="embed"))
    resized = build_sft(hoiqa["qwen3-vl"], tmp_path / "b", BuildSftConfig(task="hoiqa", images="resize"))
    assert kept.counts == resized.counts
    a, b = read_table(tmp_path / "a").to_pylist(), read_table(tmp_path / "b").to_pylist()
    assert [r["messages"] for r in a] == [r["messages"] for r in b]
    for ra, rb in zip(a, b, strict=True):
        im = Image.open(io.BytesIO(rb["images"][0]["bytes"]))
        assert im.size == (rb["resized_width"], rb["resized_height"]) == (rb["width"], rb["height"])
        assert (ra["resized_width"], ra["resized_height"]) == im.size
