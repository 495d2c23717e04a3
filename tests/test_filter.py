"""``filter sft`` and ``filter prefs``: gen-cot rollouts into datasets TRL's trainers accept."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from scripted_engines import ZoomThenAnswer, true_answers

from hoidata.io import ShardSpec, open_dataset, read_manifest, read_table
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


def test_filter_commands_rerun_as_no_ops_and_shard(rollouts: dict[str, Path], tmp_path: Path) -> None:
    """A finished filter is left as it was (one line, exit 0); --shard i/N processes fill one directory
    with what a single run writes."""
    for kind in ("sft", "prefs"):
        out = tmp_path / kind
        argv = [sys.executable, "-m", "hoidata", "filter", kind, str(rollouts["zoom"]), "-o", str(out)]
        assert subprocess.run(argv, capture_output=True, text=True).returncode == 0
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        again = subprocess.run(argv, capture_output=True, text=True)
        assert (
            again.returncode == 0
            and again.stdout.strip() == f"filter-{kind}: {out} already complete, nothing to do"
        )
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before
    one = filter_sft(rollouts["zoom"], tmp_path / "one", FilterSftConfig())
    parts = [
        filter_sft(rollouts["zoom"], tmp_path / "parts", FilterSftConfig(), shard=ShardSpec(i, 2))
        for i in (1, 0)
    ]
    assert parts[0] is None and parts[1] is not None and parts[1].counts == one.counts
    assert read_table(tmp_path / "parts").to_pylist() == read_table(tmp_path / "one").to_pylist()


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

    # rollouts that zoomed: the pair is the first decision (zoom vs a wrong answer), images in the prompt
    m = filter_prefs(rollouts["zoom"], tmp_path / "dpo", FilterPrefsConfig())
    prefs = open_dataset(tmp_path / "dpo")
    assert len(prefs) > 0 and m.counts["rows"] == len(prefs)
    assert all(c > r for c, r in zip(prefs["chosen_reward"], prefs["rejected_reward"], strict=True))
    assert any("zoom_in" in json.dumps(c) for c in prefs["chosen"])
    model = AutoModelForImageTextToText.from_pretrained(path)
    args = DPOConfig(output_dir=str(tmp_path / "dpo-run"), max_length=None, **common)
    data = prefs.select_columns(["images", "prompt", "chosen", "rejected"])
    trainer = DPOTrainer(
        model=model, ref_model=copy.deepcopy(model), args=args, train_dataset=data, processing_class=processor
    )
    result = trainer.train()
    assert result.global_step == 2 and torch.isfinite(torch.tensor(result.training_loss))


def test_prefs_pairs_are_text_after_their_images(rollouts: dict[str, Path], tmp_path: Path) -> None:
    """Every image of a pair is in its prompt, in the order of the prompt's image blocks."""
    for name in ("zoom", "direct"):
        m = filter_prefs(rollouts[name], tmp_path / name, FilterPrefsConfig())
        assert m.counts["out"] + m.counts["rejected"] == m.counts["in"]
        assert m.counts["rows"] > 0
        for row in read_table(tmp_path / name).to_pylist():
            blocks = [b["type"] for msg in row["prompt"] for b in msg["content"]]
            assert blocks.count("image") == len(row["images"]) >= 1
            for side in ("chosen", "rejected"):
                assert row[side][0]["role"] == "assistant"
                assert all(b["type"] == "text" for msg in row[side] for b in msg["content"])


def _turn(role: str, text: str, image: bool = False, call: dict | None = None) -> dict[str, Any]:
    content = [{"type": "image", "text": None}] * image + [{"type": "text", "text": text}]
    return {"role": role, "content": content, "tool_calls": [call] if call else None}


def _rollout(answer: str, crop: bytes, reward: float) -> dict[str, Any]:
    call = {"type": "function", "function": {"name": "zoom_in", "arguments": '{"bbox_2d": [1, 2, 30, 40]}'}}
    return {
        "prompt_id": "p",
        "images": [{"bytes": None, "path": "scene.png"}, {"bytes": crop, "path": None}],
        "messages": [
            _turn("user", "What is the person doing?", image=True),
            _turn("assistant", "<think>Look closer.</think>", call=call),
            _turn("user", "<tool_response>\nZoomed view.\n</tool_response>", image=True),
            _turn("assistant", f"<answer>{answer}</answer>"),
        ],
        "rewards": {"total": reward},
    }


def test_pair_moves_shared_turns_and_their_crops_into_the_prompt() -> None:
    from hoidata.pipelines.filter import _pair

    good, bad = _rollout("ride", b"crop", 2.0), _rollout("kick", b"crop", 0.0)
    pair = _pair(good, bad, "p/0")
    assert pair is not None
    assert pair["prompt"] == good["messages"][:3] and pair["images"] == good["images"]
    assert pair["chosen"] == good["messages"][3:] and pair["rejected"] == bad["messages"][3:]
    # the same words after a different crop: no text-only completion tells them apart
    assert _pair(good, _rollout("kick", b"other crop", 0.0), "p/0") is None
