"""The asynchronous rollout loop: the wave loop's rollouts, without its waits.

A conversation goes back to the engine as soon as its turn and its tools are done; tools run in a
pool while others generate; at most ``max_open`` prompts are in flight; images are decoded once
per sample and crops encoded once, only for the output. vLLM's async engine is tested against a
stand-in module (vLLM needs a GPU), the OpenAI engine against a small server on loopback.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
import time
import types
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image
from scripted_engines import ZoomThenAnswer, true_answers

from hoidata.engines import Generation, Sampling, get_engine
from hoidata.engines.batching import BatchingEngine
from hoidata.engines.messages import ImageUrls, to_openai
from hoidata.gen.loop import ANSWERED, ENGINE_ERROR, LENGTH, LoopConfig, run_loop
from hoidata.gen.media import CropEncoder, SourceImages
from hoidata.gen.rollouts import run_loop_async, run_rollouts
from hoidata.io import read_manifest, read_table
from hoidata.pipelines.boxes import BoxesConfig, boxes
from hoidata.pipelines.gen_cot import GenCotConfig, gen_cot
from hoidata.tools.environment import HoiEnvironment, tool_schemas

PAIRS = [{"person_bbox": [10.0, 10.0, 120.0, 200.0], "object_bbox": [80.0, 90.0, 150.0, 160.0]}]
PAIRS[0] |= {"verb": "hold", "object": "cup"}


def _image(seed: int = 0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (240, 160, 3), dtype=np.uint8))


def _prompt(image: Image.Image, text: str = "What is the person doing with the cup?") -> list[dict[str, Any]]:
    return [{"role": "user", "content": [{"type": "image", "image": image}, {"type": "text", "text": text}]}]


def _row(image: Image.Image, sid: str) -> dict[str, Any]:
    return {"images": [image], "width": 160, "height": 240, "pairs": PAIRS, "sample_id": sid}


def _call(name: str, arguments: dict[str, Any]) -> str:
    return f"<tool_call>\n{json.dumps({'name': name, 'arguments': arguments})}\n</tool_call>"


def _reply(seed: int, turn: int, conversation: list) -> Generation:
    """A deterministic model: what it writes depends on the seed and the turn only."""
    if turn == 0 and seed % 3 == 0:
        return Generation("<think>Easy.</think><answer>hold</answer>", 10, 4)
    if turn == 0 and seed % 3 == 1:
        return Generation(f"<think>Look.</think>{_call('zoom_in', {'bbox_2d': [50, 40, 950, 700]})}", 10, 5)
    if turn == 0:
        return Generation("<think>Hmm.</think><tool_call>{not json</tool_call>", 10, 4)
    if turn == 1 and seed % 2:
        return Generation(f"<think>Again.</think>{_call('detect_humans', {})}", 20, 5)
    if turn == 1:
        return Generation("<think>Seen.</think><answer>hold</answer>", 30, 6)
    return Generation("<think>Cut", 40, 9, finish_reason="length")


class SeededEngine:
    """A batch engine whose samples follow their seeds (``seed + k``), whatever the batch."""

    name, model = "seeded", "seeded"

    def __init__(self) -> None:
        self.batches: list[int] = []

    def generate(
        self, conversations: Sequence[list], sampling: Sampling, seeds: Sequence[int], tools: Any = None
    ) -> list[list[Generation]]:
        self.batches.append(len(conversations))
        return [
            [_reply(seed + k, sum(m["role"] == "assistant" for m in c), c) for k in range(sampling.n)]
            for c, seed in zip(conversations, seeds, strict=True)
        ]


def test_the_async_loop_writes_the_wave_loops_rollouts() -> None:
    images = [_image(k) for k in range(6)]
    prompts = [_prompt(im) for im in images]
    rows = [_row(im, f"s{k}") for k, im in enumerate(images)]
    cfg = LoopConfig(Sampling(n=4), max_turns=3, seed=11)
    env = HoiEnvironment.factory(profile="qwen3-vl")
    waves = run_loop(SeededEngine(), prompts, rows, env, cfg, tool_schemas(), [f"id{k}" for k in range(6)])
    engine = SeededEngine()
    for max_open in (1, 2, 64):
        got = run_loop_async(
            engine, prompts, rows, env, cfg, tool_schemas(), [f"id{k}" for k in range(6)], max_open=max_open
        )
        assert got == waves  # statuses, turns, tokens, messages (the crops' pixels too) and calls
    assert {ANSWERED, LENGTH} <= {t.status for t in waves}
    assert any(isinstance(m["content"], list) for t in waves for m in t.messages if m["role"] == "tool")


def test_a_conversation_does_not_wait_for_the_others_tools() -> None:
    """Slow tools of one rollout never hold back another: engine time and tool time overlap."""
    latency, tool_s = 0.05, 0.2
    busy: list[tuple[float, float]] = []

    class SlowAsync:
        name, model = "slow", "slow"

        async def agenerate(self, conversation: list, sampling: Sampling, seed: int, tools: Any = None):
            start = time.perf_counter()
            await asyncio.sleep(latency)
            busy.append((start, time.perf_counter()))
            turn = sum(m["role"] == "assistant" for m in conversation)
            text = (
                "Looking." + _call("zoom_in", {"bbox_2d": [0, 0, 500, 500]})
                if turn == 0
                else "<answer>hold</answer>"
            )
            return [Generation(text, 5, 5)] * sampling.n

    class SlowTools(HoiEnvironment):
        def zoom_in(self, bbox_2d: list[float]) -> Any:
            time.sleep(tool_s)
            return super().zoom_in(bbox_2d)

    images = [_image(k) for k in range(8)]
    started = time.perf_counter()
    traces = run_loop_async(
        SlowAsync(),
        [_prompt(im) for im in images],
        [_row(im, f"s{k}") for k, im in enumerate(images)],
        SlowTools,
        LoopConfig(Sampling(n=1)),
        threads=8,
    )
    wall = time.perf_counter() - started
    assert all(t.status == ANSWERED and t.turns == 2 for t in traces)
    # in waves this takes 2 engine calls + 8 tool calls one after another: 0.1 + 1.6 s
    assert wall < 0.1 + 8 * tool_s / 2


def test_backpressure_bounds_the_prompts_in_flight() -> None:
    open_now = peak = 0
    lock = threading.Lock()
    image = _image()

    class Counting:
        name, model = "counting", "counting"

        async def agenerate(self, conversation: list, sampling: Sampling, seed: int, tools: Any = None):
            await asyncio.sleep(0.01)
            return [Generation("<answer>hold</answer>", 1, 1)] * sampling.n

    def load(i: int) -> tuple[list, dict]:
        nonlocal open_now, peak
        with lock:
            open_now += 1
            peak = max(peak, open_now)
        return _prompt(image), _row(image, str(i))

    def done(i: int) -> None:
        nonlocal open_now
        with lock:
            open_now -= 1

    traces, failures = run_rollouts(
        Counting(), 40, load, HoiEnvironment, LoopConfig(Sampling(n=2)), max_open=3, done=done
    )
    assert len(traces) == 80 and not failures
    assert peak <= 3


def test_a_sample_that_cannot_load_is_reported_not_raised() -> None:
    image = _image()

    def load(i: int) -> tuple[list, dict]:
        if i == 1:
            raise FileNotFoundError("no such image")
        return _prompt(image), _row(image, str(i))

    engine = SeededEngine()
    traces, failures = run_rollouts(engine, 3, load, HoiEnvironment, LoopConfig(Sampling(n=1)))
    assert [t.sample for t in traces] == [0, 2] and list(failures) == [1]
    assert isinstance(failures[1], FileNotFoundError)


def test_a_batch_engine_that_raises_fails_its_conversations_only() -> None:
    class Broken:
        name, model = "broken", "broken"

        def generate(self, *args: Any) -> Any:
            raise RuntimeError("CUDA out of memory")

    image = _image()
    (trace,) = run_loop_async(Broken(), [_prompt(image)], [_row(image, "s")], HoiEnvironment, LoopConfig())
    assert trace.status == ENGINE_ERROR and "CUDA out of memory" in (trace.error or "")
    adapter = BatchingEngine(SeededEngine())
    adapter.close()  # a closed adapter's thread is gone
    assert not adapter._thread.is_alive()


def test_images_are_decoded_once_and_crops_encoded_once(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    _image(3).save(tmp_path / "a.png")
    images = SourceImages(str(tmp_path))
    struct = {"path": "a.png", "bytes": None}
    with ThreadPoolExecutor(8) as pool:
        opened = list(pool.map(lambda _: images.open(dict(struct)), range(16)))
    assert images.decoded == 1 and all(im is opened[0] for im in opened)
    crops = [opened[0].crop((0, 0, 50, 60)) for _ in range(5)] + [opened[0].crop((1, 0, 50, 60))]
    with ThreadPoolExecutor(4) as pool:
        encoder = CropEncoder(pool)
        for c in crops:
            encoder.submit(c)
        data = [encoder.encode(c) for c in crops]
    assert encoder.distinct == 2 and len(set(data)) == 2
    assert np.array_equal(np.asarray(Image.open(__import__("io").BytesIO(data[0]))), np.asarray(crops[0]))
    with pytest.raises(FileNotFoundError):
        images.open({"path": "missing.png", "bytes": None})


@pytest.fixture(scope="module")
def demo_boxes(demo_canonical, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("async") / "boxes"
    boxes(demo_canonical(6), out, BoxesConfig(profile="qwen2.5-vl", max_pixels=64 * 28 * 28))
    return out


def test_gen_cot_async_writes_what_waves_write(demo_boxes: Path, tmp_path: Path) -> None:
    answers = true_answers(demo_boxes)
    rows = {}
    for loop in ("waves", "async"):
        cfg = GenCotConfig(engine="scripted", model="zoomer", n=2, shard_size=3, loop=loop, max_open=2)
        gen_cot(demo_boxes, tmp_path / loop, cfg, lambda: ZoomThenAnswer(answers), progress=False)
        rows[loop] = read_table(tmp_path / loop).to_pylist()
    assert rows["async"] == rows["waves"]  # crops byte for byte: one encoder, deduplicated
    assert read_manifest(tmp_path / "async").counts == read_manifest(tmp_path / "waves").counts
    assert any(len(r["images"]) == 2 for r in rows["async"])


# ---- vLLM's async engine, against a stand-in module --------------------------------------------
@pytest.fixture
def fake_async_vllm(monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    seen: dict[str, Any] = {"requests": []}

    class SamplingParams:
        def __init__(self, **kwargs: Any) -> None:
            self.kwargs = kwargs

    class AsyncEngineArgs:
        def __init__(self, **kwargs: Any) -> None:
            seen["args"] = kwargs

    class Completion:
        def __init__(self, text: str, finish: str) -> None:
            self.text, self.token_ids, self.finish_reason = text, [1, 2, 3], finish

    class Output:
        def __init__(self, outputs: list[Completion], finished: bool) -> None:
            self.prompt_token_ids, self.outputs, self.finished = [0] * 17, outputs, finished

    class AsyncLLMEngine:
        @classmethod
        def from_engine_args(cls, args: AsyncEngineArgs) -> AsyncLLMEngine:
            seen["loop"] = asyncio.get_running_loop()  # built on the engine's own loop
            return cls()

        async def generate(self, prompt: dict, params: SamplingParams, request_id: str):
            assert asyncio.get_running_loop() is seen["loop"]
            seen["requests"].append((prompt, params.kwargs, request_id))
            turn = prompt["prompt"].count("<|im_start|>assistant") - 1
            text = _call("zoom_in", {"bbox_2d": [10, 10, 90, 90]}) if turn == 0 else "<answer>hold</answer>"
            yield Output([Completion("", "length")] * params.kwargs["n"], False)  # streamed partial
            await asyncio.sleep(0)
            yield Output([Completion(text, "stop")] * params.kwargs["n"], True)

    module = types.ModuleType("vllm")
    module.AsyncEngineArgs, module.AsyncLLMEngine = AsyncEngineArgs, AsyncLLMEngine  # type: ignore[attr-defined]
    module.SamplingParams = SamplingParams  # type: ignore[attr-defined]
    # installed by the test once the tiny model is built (building it imports trl, which probes vllm)
    seen["install"] = lambda: monkeypatch.setitem(sys.modules, "vllm", module)
    return seen


@pytest.mark.parametrize("family", ["qwen2.5-vl", "qwen3-vl"])
def test_async_vllm_follows_the_documented_api(
    fake_async_vllm: dict[str, Any], tiny_vlm: Any, family: str
) -> None:
    model = str(tiny_vlm(family))
    fake_async_vllm["install"]()
    engine = get_engine("vllm", model, asynchronous=True, family=family, tp=2, max_pixels=50176)
    assert fake_async_vllm["args"]["tensor_parallel_size"] == 2
    assert fake_async_vllm["args"]["mm_processor_kwargs"] == {"max_pixels": 50176}
    images = [_image(0), _image(1)]
    traces = run_loop_async(
        engine,
        [_prompt(im) for im in images],
        [_row(im, f"s{k}") for k, im in enumerate(images)],
        HoiEnvironment.factory(profile=family),
        LoopConfig(Sampling(n=2), seed=3),
        tools=tool_schemas(),
    )
    engine.close()
    assert [t.status for t in traces] == [ANSWERED] * 4 and all(t.turns == 2 for t in traces)
    assert all(t.prompt_tokens == 34 and t.completion_tokens == 6 for t in traces)
    requests = fake_async_vllm["requests"]
    assert len(requests) == 2 + 4 and len({r[2] for r in requests}) == 6  # one request per turn, ids unique
    # by turn, not by position: a prompt's second turn may go out before another prompt's first
    opening = [r[0]["prompt"].count("<|im_start|>assistant") == 1 for r in requests]
    first = [r for r, o in zip(requests, opening, strict=True) if o]
    later = [r for r, o in zip(requests, opening, strict=True) if not o]
    assert len(first) == 2 and all(r[1]["n"] == 2 for r in first) and all(r[1]["n"] == 1 for r in later)
    assert all(r[1]["skip_special_tokens"] is False for r in requests)
    for prompt, _, _ in later:  # the crop goes to vLLM as the PIL image the tool cut: no encoding
        shown = prompt["multi_modal_data"]["image"]
        assert len(shown) == 2 and all(isinstance(im, Image.Image) for im in shown)
        assert shown[0] in images and prompt["prompt"].count("<|vision_start|>") == 2
        assert '"name": "zoom_in"' in prompt["prompt"] or "zoom_in" in prompt["prompt"]
    assert {r[0]["multi_modal_data"]["image"][0] is images[0] for r in first} == {True, False}


# ---- the OpenAI engine: concurrent requests, images encoded once ---------------------------------
class _Server(BaseHTTPRequestHandler):
    """A chat-completions endpoint that takes its time and counts requests in flight."""

    state: dict[str, Any]

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        state = self.state
        with state["lock"]:
            state["open"] += 1
            state["peak"] = max(state["peak"], state["open"])
            state["images"] += sum(
                b.get("type") == "image_url"
                for m in body["messages"]
                if isinstance(m["content"], list)
                for b in m["content"]
            )
        time.sleep(0.1)
        turn = sum(m["role"] == "assistant" for m in body["messages"])
        text = _call("zoom_in", {"bbox_2d": [0, 0, 500, 500]}) if turn == 0 else "<answer>hold</answer>"
        reply = {
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
            ],
            "usage": {"prompt_tokens": 7, "completion_tokens": 3, "total_tokens": 10},
        }
        data = json.dumps(reply).encode()
        with state["lock"]:
            state["open"] -= 1
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args: Any) -> None:
        pass


def test_openai_engine_serves_many_conversations_at_once() -> None:
    from hoidata.engines.openai import OpenAIEngine

    state = {"lock": threading.Lock(), "open": 0, "peak": 0, "images": 0}
    handler = type("Handler", (_Server,), {"state": state})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        engine = OpenAIEngine(
            "m", base_url=f"http://127.0.0.1:{server.server_port}/v1", concurrency=4, retries=0
        )
        images = [_image(k) for k in range(6)]
        traces = run_loop_async(
            engine,
            [_prompt(im) for im in images],
            [_row(im, f"s{k}") for k, im in enumerate(images)],
            HoiEnvironment.factory(profile="qwen3-vl"),
            LoopConfig(Sampling(n=1)),
        )
        engine.close()
    finally:
        server.shutdown()
        server.server_close()
    assert [t.status for t in traces] == [ANSWERED] * 6, [t.error for t in traces]
    assert 1 < state["peak"] <= 4  # concurrent, and bounded by --concurrency
    assert state["images"] == 6 + 12  # every turn resends the whole conversation, as the API wants


def test_image_urls_encode_each_image_once() -> None:
    urls = ImageUrls()
    image = _image()
    conversation = [*_prompt(image), {"role": "assistant", "content": "x"}, *_prompt(image, "again")]
    first = to_openai(conversation, urls)
    assert len(urls) == 1
    assert to_openai(conversation, urls) == first
    assert first[0]["content"][0]["image_url"]["url"].startswith("data:image/png;base64,")
    del image, conversation
    import gc

    gc.collect()
    assert len(urls) == 0  # an entry goes with its image
