"""``filter sft`` and ``filter prefs``: gen-cot rollouts into datasets TRL's trainers accept."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from scripted_engines import ZoomThenAnswer, true_answers

from hoidata.io import open_dataset, read_manifest, read_table
from hoidata.pipelines.filter import FilterPrefsConfig, FilterSftConfig, filter_prefs, filter_sft
from hoidata.pipelines.gen_cot import GenCotConfig, gen_cot

FAMILY = "qwen2.5-vl"


@pytest.fixture(scope="module")
def rollouts(tiny_boxes: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """gen-cot twice on the demo: rollouts that zoom, and rollouts that answer at once."""
    root = tmp_path_factory.mktemp("filter")
    boxed = tiny_boxes(6)
    answers = true_answers(boxed)
    out = {}
    for name, zoom in (("zoom", True), ("direct", False)):
        gen = GenCotConfig(engine="scripted", model="zoomer", n=2, shard_size=4)
        gen_cot(boxed, root / name, gen, lambda z=zoom: ZoomThenAnswer(answers, zoom=z), progress=False)
        out[name] = root / name
    return out


def test_filter_sft_keeps_verified_rollouts_and_accounts_for_the_rest(
    rollouts: dict[str, Path], tmp_path: Path
) -> None:
    rows = read_table(rollouts["zoom"]).to_pylist()
    m = filter_sft(rollouts["zoom"], tmp_path / "sft", FilterSftConfig())
    kept = read_table(tmp_path / "sft").to_pylist()
    expected = {r["sample_id"] for r in rows if r["rewards"]["accuracy"] >= 1 and r["rewards"]["format"] >= 1}
    assert {r["sample_id"] for r in kept} == expected and len(kept) > 0
    assert m.counts["in"] == len(rows) and m.counts["out"] + m.counts["rejected"] == len(rows)
    rejects = pq.read_table(tmp_path / "sft" / "rejects.parquet").to_pylist()
    assert {r["reason"].split(" ")[0] for r in rejects} <= {
        "accuracy",
        "format",
        "status",
        "duplicate",
        "beyond",
    }
    # at most one per prompt, and a lower bar keeps more
    assert len({r["source_id"] + r["messages"][0]["content"][1]["text"] for r in kept}) == len(kept)
    filter_sft(
        rollouts["zoom"], tmp_path / "all", FilterSftConfig(min_accuracy=None, min_format=None, per_prompt=2)
    )
    assert read_manifest(tmp_path / "all").counts["out"] == len(rows)


def test_filtered_rollouts_train_with_trl(rollouts: dict[str, Path], tmp_path: Path, tiny_vlm: Any) -> None:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import DPOConfig, DPOTrainer, SFTConfig, SFTTrainer

    from hoidata.profiles.chat import use_tool_template

    path = tiny_vlm(FAMILY)
    processor = use_tool_template(AutoProcessor.from_pretrained(path), FAMILY)
    common: dict[str, Any] = {
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "bf16": False,
        "use_cpu": True,
        "gradient_checkpointing": False,
        "report_to": [],
        "save_strategy": "no",
        "dataloader_num_workers": 0,
    }

    filter_sft(rollouts["zoom"], tmp_path / "sft", FilterSftConfig())
    sft = open_dataset(tmp_path / "sft").select_columns(["images", "messages"])
    assert all(len(x) == 2 for x in sft["images"])  # the scene and the zoom crop
    model = AutoModelForImageTextToText.from_pretrained(path)
    args = SFTConfig(output_dir=str(tmp_path / "sft-run"), max_length=None, **common)
    result = SFTTrainer(model=model, args=args, train_dataset=sft, processing_class=processor).train()
    assert result.global_step == 2 and torch.isfinite(torch.tensor(result.training_loss))

    m = filter_prefs(rollouts["direct"], tmp_path / "dpo", FilterPrefsConfig())
    prefs = open_dataset(tmp_path / "dpo")
    assert len(prefs) > 0 and m.counts["rows"] == len(prefs)
    assert all(c > r for c, r in zip(prefs["chosen_reward"], prefs["rejected_reward"], strict=True))
    model = AutoModelForImageTextToText.from_pretrained(path)
    args = DPOConfig(output_dir=str(tmp_path / "dpo-run"), max_length=None, **common)
    data = prefs.select_columns(["images", "prompt", "chosen", "rejected"])
    trainer = DPOTrainer(
        model=model, ref_model=copy.deepcopy(model), args=args, train_dataset=data, processing_class=processor
    )
    result = trainer.train()
    assert result.global_step == 2 and torch.isfinite(torch.tensor(result.training_loss))


def test_prefs_reject_rollouts_with_tool_images(rollouts: dict[str, Path], tmp_path: Path) -> None:
    m = filter_prefs(rollouts["zoom"], tmp_path / "dpo", FilterPrefsConfig())
    reasons = [r["reason"] for r in pq.read_table(tmp_path / "dpo" / "rejects.parquet").to_pylist()]
    assert any(r.startswith("tool turns hold images") for r in reasons)
    assert m.counts["out"] + m.counts["rejected"] == m.counts["in"]
