"""The tool environment and the rewards together in TRL's GRPOTrainer, as RL training uses them.

A tiny random model never calls a tool, so generation is scripted (as TRL's own tests do): think and
detect, think and zoom, think and answer. Everything else is real: the environment built per
rollout from the dataset row, the zoom crop fed back to the model as an image, and the hierarchical
reward functions scoring the rollouts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from tiny_fixtures import cpu_grpo_config, scripted_generate

from hoidata.profiles import get_profile
from hoidata.rewards import RewardConfig, Targets, reward_funcs, score
from hoidata.tools.environment import HoiEnvironment
from hoidata.tools.zoom import crop

PERSON, CUP = [40.0, 20.0, 200.0, 300.0], [150.0, 120.0, 230.0, 200.0]
ZOOM = [150, 60, 800, 750]  # 0-1000 frame of qwen3-vl: around the person's hands and the cup


def _image(width: int, height: int) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (height, width, 3), dtype=np.uint8))


def test_grpo_with_environment_and_hierarchical_rewards(
    tiny_vlm: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TRL_EXPERIMENTAL_SILENCE", "1")
    import torch
    from datasets import Dataset
    from transformers import AutoModelForImageTextToText, AutoProcessor
    from trl import GRPOTrainer

    from hoidata.profiles.chat import use_tool_template

    path = tiny_vlm("qwen3-vl")
    processor = use_tool_template(AutoProcessor.from_pretrained(path), "qwen3-vl")
    model = AutoModelForImageTextToText.from_pretrained(path)
    tok = processor.tokenizer
    response_id = tok.convert_tokens_to_ids("<tool_response>")
    turns = [
        '<think>Find the people first.</think>\n<tool_call>\n{"name": "detect_humans", "arguments": {}}\n</tool_call>',
        "<think>Zoom in on the hands.</think>\n<tool_call>\n"
        + json.dumps({"name": "zoom_in", "arguments": {"bbox_2d": ZOOM}})
        + "\n</tool_call>",
        "<think>The cup is right of the person, overlapping it; the hand grips it.</think><answer>hold</answer>",
    ]
    grids: list[list[list[int]]] = []
    generate = scripted_generate(tok, lambda prompt: turns[int((prompt == response_id).sum())] + "<|im_end|>")

    def recording_generate(input_ids: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        grids.append(kwargs["image_grid_thw"].tolist())
        return generate(input_ids)

    model.generate = recording_generate
    funcs = reward_funcs("qwen3-vl")
    seen: list[Any] = []

    def spy(
        prompts: list, completions: list, environments: list[HoiEnvironment], **kwargs: Any
    ) -> list[float]:
        seen.append((completions, kwargs))
        assert [[(c.name, c.ok) for c in e.calls] for e in environments] == [
            [("detect_humans", True), ("zoom_in", True)]
        ] * len(completions)
        return [0.0] * len(completions)

    image = _image(240, 320)
    pairs = [{"person_bbox": PERSON, "object_bbox": CUP, "verb": "hold", "object": "cup"}]
    row = {
        "prompt": [{"role": "user", "content": "What is the person doing with the cup? Think, then answer."}],
        "images": [image],
        "task": "referring",
        "width": 240,
        "height": 320,
        "pairs": pairs,
        "sample_id": "hico-1",
    }
    args = cpu_grpo_config(
        tmp_path,
        max_steps=2,
        max_completion_length=1024,
        logging_steps=1,
        reward_weights=[1.0] * len(funcs) + [0.0],  # the spy only records
    )
    trainer = GRPOTrainer(
        model=model,
        reward_funcs=[*funcs, spy],
        args=args,
        train_dataset=Dataset.from_list([row] * 4),
        processing_class=processor,
        environment_factory=HoiEnvironment.factory(profile="qwen3-vl"),
    )
    trainer.train()

    assert trainer.state.global_step == 2
    # the crop reached the turn after the zoom: one image more per rollout, of the crop's size
    expected = processor.image_processor(images=[crop(image, np.array([36.0, 19.2, 192.0, 240.0]), 32)])
    crop_grid = expected["image_grid_thw"].tolist()[0]
    first, after_zoom = grids[0], grids[2]
    assert len(after_zoom) == 2 * len(first)
    assert crop_grid in after_zoom
    # each rollout: detect → result → zoom → crop → answer, judged by the real rewards
    completions, kwargs = seen[0]
    assert len(completions) == 2
    roles = [m["role"] for m in completions[0]]
    assert roles == ["assistant", "tool", "assistant", "tool", "assistant"]
    assert completions[0][3]["content"][0]["type"] == "image"
    humans = json.loads(completions[0][1]["content"])["humans"]
    assert [h["id"] for h in humans] == [0]
    expected_scores = score(
        completions,
        Targets.from_rows(kwargs["pairs"], kwargs["task"], kwargs["width"], kwargs["height"]),
        get_profile("qwen3-vl"),
    )
    assert expected_scores.accuracy.tolist() == [1.0, 1.0]
    assert expected_scores.format.tolist() == [1.0, 1.0]
    assert expected_scores.tool.tolist() == [1.0, 1.0]
    assert expected_scores.spatial.tolist() == [1.0, 1.0]
    logged = trainer.state.log_history[0]
    cfg = RewardConfig()
    assert logged["rewards/accuracy_reward/mean"] == pytest.approx(cfg.accuracy)
    assert logged["rewards/tool_reward/mean"] == pytest.approx(cfg.tool)
    assert logged["reward"] == pytest.approx(cfg.accuracy + cfg.format + cfg.tool + cfg.spatial)
