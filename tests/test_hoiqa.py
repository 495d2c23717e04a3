"""HOI-QA: grid boxes leave the text and become canonical pixels."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import pytest

from hoidata.pipelines.convert import ConvertConfig, convert
from hoidata.sources.hoiqa import parse_boxes, split_tag

TRAIN = [
    {
        "id": "P01_01_0001",
        "image": "P01_01/frame_0000000123",
        "conversations": [
            {"from": "human", "value": "<image>[refer] Where is the knife?"},
            {"from": "gpt", "value": "{<10><20><30><40>}"},
            {"from": "human", "value": "[identify] {<0><0><50><50>}"},
            {"from": "gpt", "value": "left hand"},
        ],
    },
    {"id": "P01_01_0002", "image": "P01_01/frame_0000000124", "conversations": [{"value": "no answer"}]},
]


def test_parse_boxes_and_tags() -> None:
    text, boxes = parse_boxes("from {<1><2><3.5><4>} to {< 5><6><7><8>}")
    assert text == "from <box> to <box>" and boxes == [[1, 2, 3.5, 4], [5, 6, 7, 8]]
    assert split_tag("[vqa] What hand?") == ("vqa", "What hand?")
    assert split_tag("What hand?") == ("vqa", "What hand?")


def _run(tmp_path: Path, name: str, data: object, **kw: object) -> tuple[datasets.Dataset, Path]:
    ann = tmp_path / name
    ann.write_text(json.dumps(data))
    out = tmp_path / "out"
    convert(ConvertConfig(source="hoiqa", annotations=str(ann), split="test", image_check=False, **kw), out)
    return datasets.load_dataset("parquet", data_dir=str(out))["test"], out


def test_train_conversations(tmp_path: Path) -> None:
    ds, out = _run(tmp_path, "epic-kitchens-train.json", TRAIN, image_size=(456, 256))
    assert ds.num_rows == 1
    row = ds[0]
    assert row["image"]["path"] == "P01_01/frame_0000000123.jpg"
    refer, ident = row["qa"]
    assert (refer["task"], refer["question"], refer["answer"]) == ("refer", "Where is the knife?", "<box>")
    assert refer["answer_boxes"] == [pytest.approx([45.6, 51.2, 136.8, 102.4], rel=1e-6)]
    assert ident["question_boxes"] == [[0.0, 0.0, 228.0, 128.0]] and ident["answer"] == "left hand"
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"in": 2, "out": 1, "rejected": 1}


def test_grid_boxes_need_a_size(tmp_path: Path) -> None:
    ann = tmp_path / "train.json"
    ann.write_text(json.dumps(TRAIN[:1]))
    out = tmp_path / "out"
    m = convert(ConvertConfig(source="hoiqa", annotations=str(ann), split="test", image_check=False), out)
    assert m.counts == {"in": 1, "out": 0, "rejected": 1}
    rejects = datasets.load_dataset("parquet", data_files=str(out / "rejects.parquet"))["train"]
    assert "image size unknown" in rejects[0]["reason"]


def test_test_dict_and_visor(tmp_path: Path) -> None:
    data = {"a1": {"image_path": "P01/frame_0000000001.jpg", "noun": "knife", "bbox": [10, 20, 100, 120]}}
    ds, _ = _run(tmp_path, "epic-test.json", data)
    row = ds[0]
    assert row["sample_id"] == "hoi-qa/test/a1"
    assert row["instances"] == [
        {"bbox": [10, 20, 100, 120], "label": "knife", "label_id": -1, "is_human": False}
    ]
    assert [q["task"] for q in row["qa"]] == ["refer", "identify"]
    visor = [
        {
            "id": 7,
            "question": "[refer] Where is the right hand of the person?",
            "answer": "{<50><50><100><100>}",
            "image_path": "VISOR/P01/f.jpg",
        }
    ]
    (tmp_path / "v").mkdir()
    ds, _ = _run(tmp_path / "v", "epic-visor-test.json", visor, image_size=(1920, 1080))
    assert ds[0]["qa"][0]["answer_boxes"] == [[960.0, 540.0, 1920.0, 1080.0]]
