"""build-sft output through the real pieces: the Qwen processors and TRL's SFTTrainer (tiny models, CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from transformers import AutoModelForImageTextToText, AutoProcessor
from trl import SFTConfig, SFTTrainer
from trl.data_utils import prepare_multimodal_messages

from hoidata.io import open_dataset, read_table
from hoidata.pipelines.boxes import BoxesConfig, boxes
from hoidata.pipelines.build_sft import BuildSftConfig, build_sft
from hoidata.pipelines.referral import QAConfig, add_qa
from hoidata.profiles import get_profile
from hoidata.profiles.chat import use_tool_template
from hoidata.sft.tasks import TASKS

FAMILIES = ["qwen2.5-vl", "qwen3-vl"]


@pytest.fixture(scope="module")
def canonical(demo_canonical, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo's train split with referral questions added, so every task (hoiqa too) has samples."""
    out = tmp_path_factory.mktemp("with-qa") / "canonical"
    add_qa(demo_canonical(10), out, QAConfig())
    return out


def _processor(path: Path, family: str):
    """The tiny model's processor with the profile's tool-capable chat template."""
    return use_tool_template(AutoProcessor.from_pretrained(path), family)


def _two_steps(out: Path, **overrides: object) -> SFTConfig:
    """Two CPU steps, batch 2, images never cut (max_length=None), nothing saved or reported."""
    kwargs: dict = {
        "output_dir": str(out),
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "bf16": False,
        "use_cpu": True,
        "gradient_checkpointing": False,
        "max_length": None,
        "report_to": [],
        "save_strategy": "no",
        "dataloader_num_workers": 0,
    }
    return SFTConfig(**(kwargs | overrides))


def _built(canonical: Path, tmp: Path, family: str, processor, task: str, images: str = "auto") -> Path:
    size = processor.image_processor.size
    boxed = tmp / f"boxes-{family}"
    if not boxed.exists():
        cfg = BoxesConfig(profile=family, min_pixels=size["shortest_edge"], max_pixels=size["longest_edge"])
        boxes(canonical, boxed, cfg)
    out = tmp / f"sft-{family}-{task}-{images}"
    build_sft(boxed, out, BuildSftConfig(task=task, images=images, tool_share=0.5))
    return out


@pytest.mark.parametrize("family", FAMILIES)
def test_processor_tokenizes_every_sample_with_predicted_image_tokens(
    family: str, canonical: Path, tmp_path: Path, tiny_vlm
) -> None:
    processor = _processor(tiny_vlm(family), family)
    size = processor.image_processor.size
    profile = get_profile(family, size["shortest_edge"], size["longest_edge"])
    pad_id = processor.tokenizer.convert_tokens_to_ids("<|image_pad|>")
    for task in TASKS:
        for images in ("auto", "resize") if task in ("detection", "cof") else ("auto",):
            ds = open_dataset(_built(canonical, tmp_path, family, processor, task, images))
            for row in ds:
                messages = prepare_multimodal_messages(row["messages"], images=row["images"])
                out = processor.apply_chat_template(messages, tokenize=True, return_dict=True, tools=None)
                ids = out["input_ids"][0]
                expected = [
                    profile.image_tokens(im.width, im.height) for im in row["images"]
                ]  # one entry per image: the original, and the crop for zoom-in samples
                assert expected[0] == (row["resized_width"] // profile.factor) * (
                    row["resized_height"] // profile.factor
                )
                assert list(ids).count(pad_id) == sum(expected), (task, row["sample_id"])
                grid = out["image_grid_thw"]
                merge = processor.image_processor.merge_size
                assert [int(g.prod()) // merge**2 for g in grid] == expected


def test_tool_turn_renders_like_a_tool_message(canonical: Path, tmp_path: Path, tiny_vlm) -> None:
    """The stored tool answer (a user turn, so TRL fills its image) gives the same tokens as a real
    `tool` message with the crop would."""
    for family in FAMILIES:
        processor = _processor(tiny_vlm(family), family)
        ds = open_dataset(_built(canonical, tmp_path, family, processor, "cof"))
        row = next(r for r in ds if r["uses_tool"])
        stored = prepare_multimodal_messages(row["messages"], images=row["images"])
        as_tool = [dict(m) for m in stored]
        blocks = as_tool[2]["content"]
        as_tool[2] = {
            "role": "tool",
            "name": "zoom_in",
            "content": [
                blocks[1],
                {"type": "text", "text": blocks[2]["text"].removesuffix("\n</tool_response>")},
            ],
        }
        a = processor.apply_chat_template(stored, tokenize=False)
        b = processor.apply_chat_template(as_tool, tokenize=False)
        assert a == b


@pytest.mark.parametrize("family", FAMILIES)
def test_two_sft_steps_on_every_task(family: str, canonical: Path, tmp_path: Path, tiny_vlm) -> None:
    path = tiny_vlm(family)
    processor = _processor(path, family)
    for task in TASKS:
        ds = open_dataset(_built(canonical, tmp_path, family, processor, task))
        assert len(ds) >= 2, task
        ds = ds.select(range(min(4, len(ds)))).select_columns(["images", "messages"])
        model = AutoModelForImageTextToText.from_pretrained(path)
        before = [p.detach().clone() for p in model.parameters()]
        args = _two_steps(tmp_path / f"run-{task}", learning_rate=1e-2)
        trainer = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=processor)
        result = trainer.train()
        assert result.global_step == 2
        assert torch.isfinite(torch.tensor(result.training_loss))
        assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def test_hico_test_samples_train(reference: Path, tmp_path: Path, tiny_vlm) -> None:
    """Acceptance: samples built from the real HICO-DET test annotations go through SFTTrainer (the
    images are stand-ins of the recorded sizes: the annotations ship without pictures)."""
    from PIL import Image

    from hoidata.pipelines.convert import ConvertConfig, convert

    family = "qwen2.5-vl"
    path = tiny_vlm(family)
    processor = _processor(path, family)
    size = processor.image_processor.size
    ann = reference / "hico" / "upt_instances_test2015.json"  # (PPDM files carry no image sizes)
    convert(
        ConvertConfig(source="hico", annotations=str(ann), split="test", image_check=False), tmp_path / "c"
    )
    boxes(tmp_path / "c", tmp_path / "b", BoxesConfig(profile=family, max_pixels=size["longest_edge"]))
    images = tmp_path / "images"
    images.mkdir()
    for task in ("referring", "grounding", "detection"):
        build_sft(tmp_path / "b", tmp_path / task, BuildSftConfig(task=task))
        rows = read_table(tmp_path / task, columns=["images", "width", "height"]).slice(0, 4).to_pylist()
        for r in rows:
            target = images / r["images"][0]["path"]
            if not target.exists():
                Image.new("RGB", (r["width"], r["height"]), (120, 140, 160)).save(target)
        ds = (
            open_dataset(tmp_path / task, image_root=images)
            .select(range(4))
            .select_columns(["images", "messages"])
        )
        args = _two_steps(tmp_path / f"run-{task}")
        model = AutoModelForImageTextToText.from_pretrained(path)
        result = SFTTrainer(model=model, args=args, train_dataset=ds, processing_class=processor).train()
        assert result.global_step == 2
