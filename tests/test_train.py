"""``train sft|grpo|dpo`` from recipes, on tiny local models and CPU: few steps, save, resume."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hoidata.errors import HoidataError
from hoidata.models.tiny import TINY_MAX_PIXELS, TINY_MIN_PIXELS
from hoidata.pipelines.build_sft import BuildSftConfig, build_sft
from hoidata.trainers.recipe import load_recipe
from hoidata.trainers.run import train

FAMILY = "qwen2.5-vl"


@pytest.fixture(scope="module")
def data(tiny_boxes: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A boxes dataset at the tiny model's pixel budget, and SFT data built from it."""
    root = tmp_path_factory.mktemp("train")
    boxed = tiny_boxes(10)
    for task in ("referring", "cof"):
        build_sft(boxed, root / task, BuildSftConfig(task=task, tool_share=1.0))
    return {"boxes": boxed, "referring": root / "referring", "cof": root / "cof"}


def _recipe(path: Path, **recipe: Any) -> Path:
    path.write_text(yaml.safe_dump(recipe))
    return path


def _common(out: Path, **trainer: Any) -> dict[str, Any]:
    return {
        "output_dir": str(out),
        "per_device_train_batch_size": 2,
        "report_to": [],
        "save_strategy": "steps",
        "save_steps": 2,
        "dataloader_num_workers": 0,
        **trainer,
    }


def _budget(data: dict[str, Any]) -> dict[str, int]:
    return {"min_pixels": TINY_MIN_PIXELS, "max_pixels": TINY_MAX_PIXELS}


def test_sft_with_tools_saves_and_resumes(data: dict[str, Any], tiny_vlm: Any, tmp_path: Path) -> None:
    out = tmp_path / "run"
    recipe = _recipe(
        tmp_path / "sft.yaml",
        method="sft",
        model=str(tiny_vlm(FAMILY)),
        profile=FAMILY,
        data=[str(data["cof"]), str(data["referring"])],
        lora={"r": 4, "alpha": 8},
        max_samples=12,
        trainer=_common(out, max_steps=2, learning_rate=1e-3),
        **_budget(data),
    )
    first = train(load_recipe(recipe))
    assert first.global_step == 2 and (out / "checkpoint-2").is_dir()
    assert (out / "adapter_config.json").is_file() and (out / "recipe.yaml").is_file()
    saved = yaml.safe_load((out / "recipe.yaml").read_text())
    assert saved["trainer"]["max_steps"] == 2
    again = train(load_recipe(recipe, ["--trainer.max_steps", "4"]), resume=True)
    assert again.global_step == 4 and (out / "checkpoint-4").is_dir()
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert [e["step"] for e in state["log_history"] if "loss" in e][:2] == [
        1,
        2,
    ]  # steps 1-2 came from the resume


def test_sft_loss_falls_over_30_steps(data: dict[str, Any], tiny_vlm: Any, tmp_path: Path) -> None:
    recipe = load_recipe(
        None,
        {
            "method": "sft",
            "model": str(tiny_vlm(FAMILY)),
            "profile": FAMILY,
            "data": [str(data["referring"])],
            "max_samples": 16,
            "freeze_vision": False,
            "trainer": _common(tmp_path / "run", max_steps=30, learning_rate=3e-3, save_strategy="no"),
            **_budget(data),
        },
    )
    losses: list[float] = []
    result = train(recipe, on_log=lambda logs: losses.extend([logs["loss"]] if "loss" in logs else []))
    assert result.global_step == 30
    assert len(losses) == 30 and sum(losses[-5:]) < 0.8 * sum(
        losses[:5]
    )  # last five steps well below the first


def _log_history(out: Path) -> list[dict[str, Any]]:
    files = sorted(out.glob("**/trainer_state.json"))
    return json.loads(files[-1].read_text())["log_history"] if files else []


def test_grpo_on_canonical_prompts_with_tools(data: dict[str, Any], tiny_vlm: Any, tmp_path: Path) -> None:
    out = tmp_path / "grpo"
    recipe = load_recipe(
        None,
        {
            "method": "grpo",
            "model": str(tiny_vlm(FAMILY)),
            "profile": FAMILY,
            "data": [str(data["boxes"])],
            "task": "referring",
            "max_samples": 4,
            "rewards": {"tool": 1.0},
            "trainer": _common(out, max_steps=2, num_generations=2, max_completion_length=16),
            **_budget(data),
        },
    )
    result = train(recipe)
    assert result.global_step == 2 and (out / "checkpoint-2").is_dir()
    logged = _log_history(out)
    assert any("rewards/accuracy_reward/mean" in e for e in logged)
    again = train(
        load_recipe(None, {**recipe.to_dict(), "trainer": {**recipe.trainer, "max_steps": 3}}), resume=True
    )
    assert again.global_step == 3


def test_dpo_on_filter_prefs(data: dict[str, Any], tiny_vlm: Any, tmp_path: Path) -> None:
    from scripted_engines import ZoomThenAnswer, true_answers

    from hoidata.pipelines.filter import FilterPrefsConfig, filter_prefs
    from hoidata.pipelines.gen_cot import GenCotConfig, gen_cot

    answers = true_answers(data["boxes"])
    gen_cot(
        data["boxes"],
        tmp_path / "cot",
        GenCotConfig(n=2),
        lambda: ZoomThenAnswer(answers, zoom=False),
        progress=False,
    )
    filter_prefs(tmp_path / "cot", tmp_path / "prefs", FilterPrefsConfig())
    out = tmp_path / "dpo"
    recipe = load_recipe(
        None,
        {
            "method": "dpo",
            "model": str(tiny_vlm(FAMILY)),
            "profile": FAMILY,
            "data": [str(tmp_path / "prefs")],
            "trainer": _common(out, max_steps=2),
            **_budget(data),
        },
    )
    result = train(recipe)
    assert result.global_step == 2 and (out / "checkpoint-2").is_dir()
    again = train(
        load_recipe(None, {**recipe.to_dict(), "trainer": {**recipe.trainer, "max_steps": 3}}), resume=True
    )
    assert again.global_step == 3


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            {"trainer": {"per_device_train_batch_size": 3, "num_generations": 2}},
            "num_generations",
        ),
        ({"trainer": {"no_such_field": 1}}, "unknown GRPOConfig fields"),
        ({"method": "dpo"}, "dpo needs columns"),
    ],
)
def test_mistakes_fail_before_the_model_loads(
    data: dict[str, Any], tmp_path: Path, override: dict, message: str
) -> None:
    base = {
        "method": "grpo",
        "model": "not/loaded",
        "profile": FAMILY,
        "data": [str(data["boxes"])],
        "max_samples": 2,
    }
    with pytest.raises(HoidataError, match=message):
        train(load_recipe(None, {**base, **override}))


def test_max_length_that_cuts_image_tokens_is_refused(data: dict[str, Any], tmp_path: Path) -> None:
    recipe = {"method": "sft", "model": "not/loaded", "profile": FAMILY, "data": [str(data["referring"])]}
    with pytest.raises(HoidataError, match="would cut image tokens"):
        train(load_recipe(None, {**recipe, "trainer": {"max_length": 8}, **_budget(data)}))


def test_dpo_pairs_from_runs_with_different_tools_are_refused(data: dict[str, Any], tmp_path: Path) -> None:
    import pyarrow.parquet as pq
    from scripted_engines import ZoomThenAnswer, true_answers

    from hoidata.pipelines.filter import FilterPrefsConfig, filter_prefs
    from hoidata.pipelines.gen_cot import GenCotConfig, gen_cot

    answers = true_answers(data["boxes"])
    gen_cot(
        data["boxes"], tmp_path / "cot", GenCotConfig(n=2), lambda: ZoomThenAnswer(answers), progress=False
    )
    filter_prefs(tmp_path / "cot", tmp_path / "prefs", FilterPrefsConfig())
    shard = next((tmp_path / "prefs").rglob("train-*.parquet"))
    table = pq.read_table(shard)
    assert table.num_rows >= 2
    tools = table.column("tools").to_pylist()
    tools[0] = json.dumps(json.loads(tools[0])[:1])  # as if one run offered zoom_in only
    pq.write_table(table.set_column(table.schema.get_field_index("tools"), "tools", [tools]), shard)
    recipe = {"method": "dpo", "model": "not/loaded", "profile": FAMILY, "data": [str(tmp_path / "prefs")]}
    with pytest.raises(HoidataError, match="2 different tool sets"):
        train(load_recipe(None, {**recipe, **_budget(data)}))


def test_recipe_overrides_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("method: sft\nmodel: m\ndata: d\ntrainer: {learning_rate: 1e-5}\n")
    assert load_recipe(path).trainer["learning_rate"] == 1e-5  # YAML 1.1 would read a string
    r = load_recipe(path, ["--trainer.learning_rate", "2e-5", "--lora.r=8", "--freeze-vision", "false"])
    assert (
        r.trainer["learning_rate"] == 2e-5
        and r.lora is not None
        and r.lora.r == 8
        and r.freeze_vision is False
    )
    assert r.data == ["d"]
    assert load_recipe(path, ["--tools", "[zoom_in]"]).tools == ["zoom_in"]  # grpo offers these only
    for bad, message in (
        (["--unknown", "1"], "unknown recipe keys"),
        (["--method", "ppo"], "method must be one of"),
        (["--trainer.lr"], "has no value"),
        (["--rewards.speed", "1"], "unknown reward settings"),
        (["--tools", "[zoom_in, teleport]"], "tools must be true, false or a list"),
        (["oops"], "expected --key value"),
    ):
        with pytest.raises(HoidataError, match=message):
            load_recipe(path, bad)


def test_collator_renders_each_sample_with_its_tools(data: dict[str, Any], tiny_vlm: Any) -> None:
    from transformers import AutoProcessor

    from hoidata.io import open_dataset
    from hoidata.profiles.chat import use_tool_template
    from hoidata.trainers.collate import ToolAwareCollator

    processor = use_tool_template(AutoProcessor.from_pretrained(tiny_vlm(FAMILY)), FAMILY)
    cof = open_dataset(data["cof"]).select_columns(["images", "messages", "tools"])[0]
    plain = open_dataset(data["referring"]).select_columns(["images", "messages", "tools"])[0]
    assert cof["tools"] and plain["tools"] is None
    collator = ToolAwareCollator(processor=processor)
    batch = collator([dict(cof), dict(plain), dict(cof)])
    tok = processor.tokenizer
    texts = [
        tok.decode(ids[mask.bool()])
        for ids, mask in zip(batch["input_ids"], batch["attention_mask"], strict=True)
    ]
    assert sum("<tools>" in t for t in texts) == 2  # the two chain-of-focus samples, not the plain one
    assert batch["image_grid_thw"].shape[0] == 2 * 2 + 1  # scene + crop twice, and one scene
    assert batch["labels"].shape == batch["input_ids"].shape == batch["attention_mask"].shape
    single = ToolAwareCollator(processor=processor)([dict(plain)])
    alone = tok.decode(single["input_ids"][0][single["attention_mask"][0].bool()])
    assert alone in texts  # the plain sample renders as TRL would render it on its own


def test_assistant_only_loss_reaches_the_tool_aware_collator(data: dict[str, Any], tiny_vlm: Any) -> None:
    """``assistant_only_loss`` in a recipe trains on the model's turns only: not on the tool schemas,
    the question or the tool's answer."""
    from transformers import AutoProcessor

    from hoidata.io import open_dataset
    from hoidata.profiles.chat import use_tool_template
    from hoidata.trainers.collate import ToolAwareCollator

    processor = use_tool_template(AutoProcessor.from_pretrained(tiny_vlm(FAMILY)), FAMILY)
    cof = open_dataset(data["cof"]).select_columns(["images", "messages", "tools"])
    sample = next(r for r in cof if r["tools"] and len(r["messages"]) == 4)  # one that zoomed
    tok = processor.tokenizer
    every = ToolAwareCollator(processor=processor)([dict(sample)])
    only = ToolAwareCollator(processor=processor, assistant_only_loss=True)([dict(sample)])
    trained = tok.decode(only["input_ids"][0][only["labels"][0] != -100])
    replies = [b["text"] for m in sample["messages"] if m["role"] == "assistant" for b in m["content"]]
    assert all(reply in trained for reply in replies) and "zoom_in" in trained
    assert "<tools>" not in trained and "<tool_response>" not in trained
    assert (only["labels"] != -100).sum() < (every["labels"] != -100).sum()


def test_preference_collator_renders_the_rollouts_tools(tiny_vlm: Any) -> None:
    from PIL import Image
    from transformers import AutoProcessor

    from hoidata.profiles.chat import use_tool_template
    from hoidata.tools.environment import tool_schemas
    from hoidata.trainers.collate import ToolAwarePreferenceCollator

    processor = use_tool_template(AutoProcessor.from_pretrained(tiny_vlm(FAMILY)), FAMILY)
    text = [{"type": "text", "text": "What is the person doing?"}]
    pair = {
        "images": [Image.new("RGB", (64, 64))],
        "prompt": [{"role": "user", "content": [{"type": "image"}, *text]}],
        "chosen": [{"role": "assistant", "content": [{"type": "text", "text": "<answer>ride</answer>"}]}],
        "rejected": [{"role": "assistant", "content": [{"type": "text", "text": "<answer>kick</answer>"}]}],
    }
    tok = processor.tokenizer
    for tools in (json.dumps(tool_schemas()), None):
        batch = ToolAwarePreferenceCollator(processor=processor)([{**pair, "tools": tools}])
        rendered = tok.decode(batch["input_ids"][0][batch["attention_mask"][0].bool()])
        assert ("<tools>" in rendered and "zoom_in" in rendered) == (tools is not None)
        assert rendered.rstrip().endswith("<answer>ride</answer><|im_end|>")


def test_cli_trains_in_one_process_and_prints_a_validated_launch(
    data: dict[str, Any], tiny_vlm: Any, tmp_path: Path
) -> None:
    import subprocess
    import sys

    recipe = _recipe(
        tmp_path / "sft.yaml",
        model=str(tiny_vlm(FAMILY)),
        profile=FAMILY,
        data=[str(data["referring"])],
        max_samples=4,
        trainer=_common(tmp_path / "run", max_steps=1, save_strategy="no"),
        **_budget(data),
    )
    hoidata = [sys.executable, "-m", "hoidata", "train"]
    r = subprocess.run(
        [*hoidata, "sft", "--config", str(recipe), "--trainer.max_steps", "2"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    assert "2 steps" in r.stdout and (tmp_path / "run" / "model.safetensors").is_file()
    r = subprocess.run(
        [*hoidata, "sft", "--config", str(recipe), "--num-gpus", "8", "--backend", "zero3", "--print-only"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    line = r.stdout.strip().splitlines()[-1]
    assert line.startswith("accelerate launch") and "--num_processes 8" in line and "zero3" in line
    assert line.endswith(str(tmp_path / "run" / "recipe.yaml"))
    r = subprocess.run([*hoidata, "dpo", "--config", str(recipe)], capture_output=True, text=True)
    assert r.returncode == 2 and "the recipe says" not in r.stderr and "dpo needs columns" in r.stderr


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).parents[1] / "recipes").glob("*.yaml")), ids=lambda p: p.stem
)
def test_shipped_recipes_load_and_make_valid_trl_configs(path: Path) -> None:
    from hoidata.trainers.run import _config

    recipe = load_recipe(path)
    args = _config(recipe, cuda=False)
    assert args.output_dir == str(recipe.output_dir)
    with pytest.raises(HoidataError, match="the recipe says method"):
        load_recipe(path, method="sft" if recipe.method != "sft" else "dpo")


def test_vllm_in_grpo_needs_the_checkpoint_budget_and_gets_pre_resized_images(
    data: dict[str, Any], tiny_vlm: Any
) -> None:
    from hoidata.profiles import get_profile
    from hoidata.trainers.data import load_for

    recipe = {
        "method": "grpo",
        "model": str(tiny_vlm(FAMILY)),
        "profile": FAMILY,
        "data": [str(data["boxes"])],
        "trainer": {"use_vllm": True, "per_device_train_batch_size": 2, "num_generations": 2},
    }
    with pytest.raises(HoidataError, match="pixel budget"):
        train(load_recipe(None, {**recipe, "max_pixels": 28 * 28 * 128}))
    with pytest.raises(HoidataError, match="vLLM"):  # the budget agrees; this machine has no vLLM
        train(load_recipe(None, {**recipe, **_budget(data)}))
    profile = get_profile(FAMILY, TINY_MIN_PIXELS, TINY_MAX_PIXELS)
    ds = load_for("grpo", [str(data["boxes"])], max_samples=4, resize_to=profile)
    for row in ds:
        rw, rh = profile.resized([row["width"]], [row["height"]])
        assert row["images"][0].size == (int(rw[0]), int(rh[0]))
