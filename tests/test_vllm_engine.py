"""The vLLM engine against vLLM's documented offline API.

vLLM needs a CUDA GPU, which this machine lacks: a stand-in ``vllm`` module records the calls
(constructor arguments, one ``SamplingParams`` per conversation, ``LLM.chat`` arguments) so the
engine's side of the contract is tested here; the real run is the GPU-only test at the end.
"""

from __future__ import annotations

import sys
import types
from typing import Any

import numpy as np
import pytest
from PIL import Image

from hoidata.engines import Sampling, get_engine
from hoidata.gen.loop import LENGTH, LoopConfig, run_loop
from hoidata.profiles.chat import tool_template
from hoidata.tools.environment import HoiEnvironment, tool_schemas


class _Out:
    def __init__(self, text: str, tokens: int, finish: str) -> None:
        self.text, self.token_ids, self.finish_reason = text, list(range(tokens)), finish


class _Request:
    def __init__(self, prompt_tokens: int, outputs: list[_Out]) -> None:
        self.prompt_token_ids, self.outputs = list(range(prompt_tokens)), outputs


@pytest.fixture
def fake_vllm(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {"chat": []}

    class SamplingParams:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

    class LLM:
        def __init__(self, **kwargs: Any) -> None:
            seen["init"] = kwargs

        def chat(self, messages: list, sampling_params: list, **kwargs: Any) -> list[_Request]:
            seen["chat"].append(
                {"messages": messages, "params": [p.kwargs for p in sampling_params], **kwargs}
            )
            return [
                _Request(30, [_Out("<think>x</think>" + "y" * 5, 9, "length") for _ in range(p.kwargs["n"])])
                for p in sampling_params
            ]

    module = types.ModuleType("vllm")
    module.LLM, module.SamplingParams = LLM, SamplingParams  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "vllm", module)
    return seen


def _image() -> Image.Image:
    return Image.fromarray(np.zeros((64, 48, 3), np.uint8))


@pytest.mark.parametrize("family", ["qwen2.5-vl", "qwen3-vl"])
def test_engine_follows_the_offline_api(fake_vllm: dict[str, Any], family: str) -> None:
    engine = get_engine("vllm", "Qwen/Qwen2.5-VL-72B-Instruct", family=family, tp=4, max_pixels=1003520)
    assert fake_vllm["init"]["tensor_parallel_size"] == 4
    assert fake_vllm["init"]["mm_processor_kwargs"] == {"max_pixels": 1003520}
    assert fake_vllm["init"]["limit_mm_per_prompt"] == {"image": 8}
    image = _image()
    prompt = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "Q"}]}]
    row = {"images": [image], "width": 48, "height": 64, "pairs": [], "sample_id": "a"}
    traces = run_loop(
        engine,
        [prompt, prompt],
        [row, row],
        HoiEnvironment,
        LoopConfig(Sampling(n=3), seed=5),
        tools=tool_schemas(),
    )
    assert [t.status for t in traces] == [LENGTH] * 6
    assert traces[0].prompt_tokens == 30 and traces[0].completion_tokens == 9
    (call,) = fake_vllm["chat"]
    assert call["chat_template"] == tool_template(family)  # ours for Qwen2.5-VL, the model's for Qwen3-VL
    assert call["tools"] == tool_schemas() and call["add_generation_prompt"] is True
    assert [p["n"] for p in call["params"]] == [3, 3]
    assert call["params"][0]["seed"] != call["params"][1]["seed"]  # each prompt its own seed
    assert call["params"][0]["skip_special_tokens"] is False
    part = call["messages"][0][0]["content"][0]
    assert part == {"type": "image_pil", "image_pil": image}


def test_missing_vllm_is_a_one_line_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from hoidata.errors import HoidataError

    monkeypatch.setitem(sys.modules, "vllm", None)  # import fails as on a machine without it
    with pytest.raises(HoidataError, match="needs vLLM"):
        get_engine("vllm", "m")


def test_real_vllm_runs_a_tiny_model(tiny_vlm: Any) -> None:
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("vLLM needs a CUDA GPU; this machine has none")
    pytest.importorskip("vllm", reason="vLLM is not installed (pip install 'hoidata[gen]' on a GPU machine)")
    engine = get_engine("vllm", str(tiny_vlm("qwen2.5-vl")), family="qwen2.5-vl", gpu_memory_utilization=0.3)
    image = _image()
    prompt = [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": "Q"}]}]
    (gens,) = engine.generate([prompt], Sampling(n=2, max_tokens=8), [1], tool_schemas())
    assert len(gens) == 2 and all(g.completion_tokens > 0 for g in gens)
