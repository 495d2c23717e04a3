"""The multi-turn tool loop: waves, tool results fed back, honest endings; and the hf engine."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from PIL import Image

from hoidata.engines import Generation, Sampling
from hoidata.gen.loop import ANSWERED, ENGINE_ERROR, LENGTH, MAX_TURNS, LoopConfig, run_loop
from hoidata.rewards import Targets, score
from hoidata.tools.environment import HoiEnvironment, is_tool_error, tool_schemas

PAIRS = [
    {
        "person_bbox": [10.0, 10.0, 120.0, 200.0],
        "object_bbox": [80.0, 90.0, 150.0, 160.0],
        "verb": "hold",
        "object": "cup",
    }
]


def _image(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (240, 160, 3), dtype=np.uint8))


def _prompt(image: Image.Image) -> list[dict[str, Any]]:
    text = "What is the person doing with the cup? Think, use tools if needed, then answer."
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}]


def _row(image: Image.Image, sid: str) -> dict[str, Any]:
    return {"images": [image], "width": 160, "height": 240, "pairs": PAIRS, "sample_id": sid}


def _call(name: str, arguments: dict[str, Any]) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


class ScriptedEngine:
    """Answers from a script keyed by (sample, rollout, turn); records what it was asked."""

    name, model = "scripted", "script"

    def __init__(self, script: Any) -> None:
        self.script = script
        self.calls: list[tuple[list, Sampling, list[int]]] = []

    def generate(
        self, conversations: Sequence[list], sampling: Sampling, seeds: Sequence[int], tools: Any = None
    ) -> list[list[Generation]]:
        self.calls.append((list(conversations), sampling, list(seeds)))
        out = []
        for conversation in conversations:
            sample = conversation[0]["content"][1]["text"]
            turn = sum(1 for m in conversation if m["role"] == "assistant")
            out.append(
                [
                    self.script(sample, r if sampling.n > 1 else None, turn, conversation)
                    for r in range(sampling.n)
                ]
            )
        return out


def test_waves_tools_and_endings() -> None:
    zoom = _call("zoom_in", {"bbox_2d": [50, 40, 950, 700]})

    def script(sample: str, rollout: int | None, turn: int, conversation: list) -> Generation:
        if turn == 0:  # first wave: four different rollouts
            return [
                Generation(f"<think>Look closer.</think>{zoom}", 10, 5),
                Generation("<think>Easy.</think><answer>hold</answer>", 10, 4),
                Generation("<think>Hmm.</think><tool_call>{not json</tool_call>", 10, 4),
                Generation.failed("CUDA out of memory"),
            ][rollout]
        if turn == 1:
            last = conversation[-1]
            if isinstance(last["content"], list):  # the crop came back: answer
                assert last["role"] == "tool" and isinstance(last["content"][0]["image"], Image.Image)
                return Generation("<think>The hand grips the cup.</think><answer>hold</answer>", 30, 6)
            assert is_tool_error(last["content"])  # the malformed call got the tool's error
            return Generation(f"<think>Retry.</think>{zoom}", 30, 5)
        return Generation("<think>Cut", 40, 9, finish_reason="length")

    engine = ScriptedEngine(script)
    image = _image()
    traces = run_loop(
        engine,
        [_prompt(image)],
        [_row(image, "s0")],
        HoiEnvironment.factory(profile="qwen3-vl"),
        LoopConfig(Sampling(n=4), max_turns=3),
        tools=tool_schemas(),
    )
    assert [t.status for t in traces] == [ANSWERED, ANSWERED, LENGTH, ENGINE_ERROR]
    assert [t.turns for t in traces] == [2, 1, 3, 1]
    assert traces[0].prompt_tokens == 40 and traces[0].completion_tokens == 11
    assert traces[3].error == "CUDA out of memory" and traces[3].messages == []
    assert [(c.name, c.ok) for c in traces[0].calls] == [("zoom_in", True)]
    assert [c.ok for c in traces[2].calls] == [False, True]  # unreadable call, then a zoom
    # waves: 1 prompt × n=4, then the two open rollouts together, then the last one
    assert [len(c[0]) for c in engine.calls] == [1, 2, 1]
    assert [c[1].n for c in engine.calls] == [4, 1, 1]
    # the rollouts are judged by the rewards GRPO uses
    s = score([t.messages for t in traces], Targets.from_rows([PAIRS] * 4, "referring", 160, 240), _profile())
    assert s.accuracy.tolist() == [1.0, 1.0, 0.0, 0.0]
    assert s.tool.tolist()[0] == 1.0


def test_max_turns_stops_a_rollout_that_keeps_calling() -> None:
    call = _call("detect_humans", {})
    engine = ScriptedEngine(lambda *_: Generation(f"<think>Again.</think>{call}", 5, 5))
    image = _image()
    (trace,) = run_loop(
        engine,
        [_prompt(image)],
        [_row(image, "s")],
        HoiEnvironment.factory(),
        LoopConfig(Sampling(n=1), max_turns=2),
    )
    assert trace.status == MAX_TURNS and trace.turns == 2 and len(trace.calls) == 1
    assert [m["role"] for m in trace.messages] == ["assistant", "tool", "assistant"]


def test_seeds_follow_the_sample_not_the_batch() -> None:
    engine = ScriptedEngine(lambda *_: Generation("<think>x</think><answer>hold</answer>", 1, 1))
    images = [_image(0), _image(1)]
    cfg = LoopConfig(Sampling(n=2), seed=7)
    run_loop(
        engine,
        [_prompt(i) for i in images],
        [_row(i, f"s{k}") for k, i in enumerate(images)],
        HoiEnvironment,
        cfg,
        sample_ids=["a", "b"],
    )
    run_loop(engine, [_prompt(images[1])], [_row(images[1], "s1")], HoiEnvironment, cfg, sample_ids=["b"])
    assert engine.calls[0][2][1] == engine.calls[1][2][0]  # "b" gets the same seed alone or in a batch
    assert engine.calls[0][2][0] != engine.calls[0][2][1]


def _profile() -> Any:
    from hoidata.profiles import get_profile

    return get_profile("qwen3-vl")


@pytest.mark.parametrize("family", ["qwen2.5-vl", "qwen3-vl"])
def test_hf_engine_runs_the_loop_reproducibly(tiny_vlm: Any, family: str) -> None:
    from hoidata.engines.hf import HfEngine

    engine = HfEngine(str(tiny_vlm(family)), family=family)
    images = [_image(0), _image(1)]
    prompts, rows = [_prompt(i) for i in images], [_row(i, f"s{k}") for k, i in enumerate(images)]
    cfg = LoopConfig(Sampling(n=2, temperature=1.0, max_tokens=12), max_turns=2, seed=3)
    first = run_loop(engine, prompts, rows, HoiEnvironment.factory(profile=family), cfg, tools=tool_schemas())
    again = run_loop(engine, prompts, rows, HoiEnvironment.factory(profile=family), cfg, tools=tool_schemas())
    assert len(first) == 4 and {t.status for t in first} <= {ANSWERED, LENGTH, MAX_TURNS}
    assert all(t.prompt_tokens > 0 and 0 < t.completion_tokens <= 12 * t.turns for t in first)
    assert [t.messages for t in first] == [t.messages for t in again]
    texts = [t.messages[0]["content"] for t in first]
    assert len(set(texts)) > 1  # sampled, not four copies
    assert not any("<|image_pad|>" in x for x in texts)


# ---- the openai engine against a real server on loopback --------------------------------------
@pytest.fixture(scope="module")
def served_model(tiny_vlm: Any, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """``transformers serve`` on 127.0.0.1 with the tiny Qwen2.5-VL, saved with our tool template."""
    import shutil

    from tiny_fixtures import transformers_serve
    from transformers import AutoProcessor

    from hoidata.profiles.chat import use_tool_template

    model = tmp_path_factory.mktemp("served") / "tiny"
    shutil.copytree(tiny_vlm("qwen2.5-vl"), model)
    use_tool_template(AutoProcessor.from_pretrained(model), "qwen2.5-vl").save_pretrained(model)
    with transformers_serve(model) as base_url:
        yield str(model), base_url


def test_openai_engine_against_transformers_serve(served_model: Any) -> None:
    from hoidata.engines.openai import OpenAIEngine

    model, base_url = served_model
    engine = OpenAIEngine(model, base_url=base_url, concurrency=4)
    images = [_image(0), _image(1)]
    cfg = LoopConfig(Sampling(n=2, temperature=1.0, max_tokens=10), max_turns=2, seed=1)
    traces = run_loop(
        engine,
        [_prompt(i) for i in images],
        [_row(i, f"s{k}") for k, i in enumerate(images)],
        HoiEnvironment.factory(profile="qwen2.5-vl"),
        cfg,
        tools=tool_schemas(),
    )
    assert len(traces) == 4 and {t.status for t in traces} <= {ANSWERED, LENGTH, MAX_TURNS}
    assert all(t.prompt_tokens > 0 and t.completion_tokens > 0 for t in traces)
    assert all(t.messages[0]["role"] == "assistant" for t in traces)


def test_openai_engine_records_an_unreachable_server() -> None:
    import socket

    from hoidata.engines.openai import OpenAIEngine

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    engine = OpenAIEngine("m", base_url=f"http://127.0.0.1:{port}/v1", retries=0, timeout=5)
    image = _image()
    (trace,) = run_loop(
        engine, [_prompt(image)], [_row(image, "s")], HoiEnvironment, LoopConfig(Sampling(n=1))
    )
    assert trace.status == ENGINE_ERROR and "Connection" in (trace.error or "")
    assert trace.messages == []  # no invented answer


@pytest.mark.parametrize(
    ("reply", "text"),
    [
        (
            {"content": "<answer>ride</answer>", "reasoning_content": "I look."},
            "<think>I look.</think><answer>ride</answer>",
        ),
        (
            {"content": "<answer>ride</answer>", "reasoning": " I look.\n"},
            "<think>I look.</think><answer>ride</answer>",
        ),
        (
            {"content": "<think>Mine.</think><answer>ride</answer>", "reasoning_content": "x"},
            "<think>Mine.</think><answer>ride</answer>",
        ),
        ({"content": None, "reasoning_content": "Zoom first."}, "<think>Zoom first.</think>"),
        ({"content": "<answer>ride</answer>"}, "<answer>ride</answer>"),
    ],
)
def test_openai_engine_puts_a_lifted_thought_back(reply: dict[str, Any], text: str) -> None:
    """vLLM's and transformers' reasoning parsers move <think> out of ``content``; rewards need it."""
    from openai.types.chat import ChatCompletionMessage

    from hoidata.engines.openai import _with_reasoning

    assert _with_reasoning(ChatCompletionMessage.model_validate({"role": "assistant", **reply})) == text


@pytest.mark.parametrize("family", ["qwen2.5-vl", "qwen3-vl"])
def test_tool_results_as_user_turns_render_the_same_prompt(tiny_vlm: Any, family: str) -> None:
    from transformers import AutoProcessor

    from hoidata.engines.messages import with_tool_turns_as_user
    from hoidata.profiles.chat import use_tool_template

    processor = use_tool_template(AutoProcessor.from_pretrained(tiny_vlm(family)), family)
    image = _image()
    crop = {
        "role": "tool",
        "content": [{"type": "image", "image": image}, {"type": "text", "text": "Zoomed view"}],
    }
    conversation = [
        *_prompt(image),
        {"role": "assistant", "content": "<think>x</think>" + _call("zoom_in", {"bbox_2d": [1, 2, 3, 4]})},
        crop,
        {"role": "tool", "content": '{"humans": []}'},
        {"role": "assistant", "content": "<think>y</think>" + _call("detect_humans", {})},
        {"role": "tool", "content": '{"error": "budget"}'},
    ]

    def render(c: list) -> str:
        return processor.apply_chat_template(
            c, tools=tool_schemas(), add_generation_prompt=True, tokenize=False
        )

    assert render(with_tool_turns_as_user(conversation)) == render(conversation)
    assert render(conversation).count("<|vision_start|>") == 2


def test_hf_engine_names_a_model_it_cannot_load(tmp_path: Any) -> None:
    from hoidata.engines.hf import HfEngine
    from hoidata.errors import HoidataError

    missing = str(tmp_path / "no-such-model")
    with pytest.raises(HoidataError, match="cannot load the model") as raised:
        HfEngine(missing)
    assert missing in str(raised.value) and "\n" not in str(raised.value)
