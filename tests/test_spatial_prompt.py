"""One text form for spatial-linking prompts (build-sft writes what predict asks), and the attention
maps drawn from a run: each box token's attention lies inside its box, and the panels show it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
from PIL import Image
from spatial_fixtures import BUDGET, FAMILIES, load, run_with_module, spatial_dataset

from hoidata.cli.main import main
from hoidata.errors import HoidataError
from hoidata.io import read_manifest, read_table
from hoidata.io.images import open_image
from hoidata.models.spatial_attention import box_attention
from hoidata.models.spatial_linking import load_spatial_linking
from hoidata.models.spatial_maps import MAPS, TABLE, draw_attention_maps, map_name
from hoidata.profiles import get_profile
from hoidata.sft.spatial_prompt import linked_boxes, prompt_boxes, sample_question, spatial_question


@pytest.fixture(scope="module")
def spatial(demo_canonical: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("spatial-prompt")
    return {family: spatial_dataset(demo_canonical(10), family, root) for family in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
def test_build_sft_writes_the_prompt_predict_asks(
    family: str, spatial: dict[str, Path], tiny_vlm: Any
) -> None:
    processor, _ = load(tiny_vlm(family))
    profile = get_profile(family, **BUDGET)
    rows = read_table(spatial[family]).to_pylist()
    assert rows
    for row in rows:
        stored = row["messages"][:1]
        asked = [
            {
                "role": "user",
                "content": [{"type": "image"}, {"type": "text", "text": sample_question(row, profile)}],
            }
        ]
        # rendered by the model's own chat template, token for token the same prompt
        as_trained = processor.apply_chat_template(stored, add_generation_prompt=True)
        as_asked = processor.apply_chat_template(asked, add_generation_prompt=True)
        assert as_trained == as_asked
        assert as_trained.count("<|box_start|>") == 3 == as_trained.count("<|box_end|>")
        assert prompt_boxes(row["messages"]) == [[float(v) for v in b] for b in row["refer_boxes"]]


def test_a_person_without_object_is_named_alone() -> None:
    profile = get_profile("qwen3-vl")
    text = spatial_question(profile, [[100, 200, 300, 400]], None)
    assert (
        text == "Look at the person <|box_start|>[100, 200, 300, 400]<|box_end|>. What is the person doing?"
    )
    tokens = get_profile("qwen2-vl")  # its boxes already carry the tokens: no second pair
    assert linked_boxes(spatial_question(tokens, [[1, 2, 3, 4]] * 3, "cup")) == [[1, 2, 3, 4]] * 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("<|box_start|>[1, 2, 3, 4]", "1 <\\|box_start\\|> but 0"),
        ("<|box_end|>[1, 2, 3, 4]<|box_start|>", "before its"),
        ("<|box_start|>[1, 2, 3]<|box_end|>", "not four numbers"),
    ],
)
def test_unpaired_box_tokens_say_why(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        linked_boxes(text)


def test_a_spatial_sample_with_a_box_outside_the_image_names_sample_and_field(
    spatial: dict[str, Path],
) -> None:
    row = read_table(spatial["qwen3-vl"]).to_pylist()[0]
    row["refer_boxes"][2] = [0, 0, 1001, 500]
    with pytest.raises(HoidataError, match="outside the image") as e:
        sample_question(row, get_profile("qwen3-vl", **BUDGET))
    assert row["sample_id"] in str(e.value) and "refer_boxes" in str(e.value)


@pytest.mark.parametrize("family", FAMILIES)
def test_attention_maps_lie_inside_their_boxes_and_are_drawn(
    family: str, spatial: dict[str, Path], tiny_vlm: Any, tmp_path: Path
) -> None:
    run = run_with_module(tiny_vlm(family), family, tmp_path / "run")
    written = draw_attention_maps(run, spatial[family], tmp_path / "out", limit=2)
    assert written.samples == 2 and all(f.is_file() for f in written.files)
    table = pq.read_table(tmp_path / "out" / TABLE).to_pylist()
    assert [r["file"] for r in table] == [f"{MAPS}/{map_name(r['sample_id'])}" for r in table]
    assert all(r["regions"] == ["person", "object", "union"] for r in table)
    # each box token's attention: all of its mass on the cells inside its box, none elsewhere

    processor, model = load(run)
    load_spatial_linking(model, run, processor.tokenizer)
    profile = get_profile(family, **BUDGET)
    row = read_table(spatial[family]).to_pylist()[0]
    image = open_image(row["images"][0], read_manifest(spatial[family]).image_root)
    attentions = box_attention(model, processor, image, sample_question(row, profile))
    assert [a.box for a in attentions] == [[float(v) for v in b] for b in row["refer_boxes"]]
    for a in attentions:
        inside = np.zeros(a.grid.rows * a.grid.cols, bool)
        inside[a.cells] = True
        flat = a.weights.reshape(-1)
        assert flat[~inside].sum() == 0 and abs(flat[inside].sum() - 1) < 1e-5
        np.testing.assert_allclose(a.heads.sum(axis=-1), 1.0, atol=1e-5)
    # the picture: three panels, each with the heat inside the box and the dimmed image outside
    picture = np.asarray(Image.open(written.files[0]).convert("RGB"), np.float64)
    assert picture.shape[1] > 2 * picture.shape[0]  # three panels side by side
    third = picture.shape[1] // 3
    for k in range(3):  # none blank: the heat and the image vary within every panel
        assert picture[40:-40, k * third : (k + 1) * third].std() > 20


def test_attention_command_writes_maps_and_refuses_a_run_without_module(
    spatial: dict[str, Path], tiny_vlm: Any, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run = run_with_module(tiny_vlm("qwen2.5-vl"), "qwen2.5-vl", tmp_path / "run", identity_init=True)
    out = tmp_path / "maps"
    with pytest.raises(SystemExit) as done:
        main(["attention", str(run), str(spatial["qwen2.5-vl"]), "-o", str(out), "--limit", "1"])
    assert done.value.code in (0, None) and len(list((out / MAPS).glob("*.png"))) == 1
    with pytest.raises(SystemExit) as refused:
        main(
            ["attention", str(tiny_vlm("qwen2.5-vl")), str(spatial["qwen2.5-vl"]), "-o", str(tmp_path / "x")]
        )
    assert refused.value.code == 2 and "not a spatial-linking run" in capsys.readouterr().err
