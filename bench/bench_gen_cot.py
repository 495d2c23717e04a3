"""gen-cot's own overhead with an instant engine, and how long a real engine would sit idle.

1. Overhead. Every loop runs the same rollouts: the model (an engine that answers at once) zooms in
   on the pair, then answers. The work left is the pipeline's: prompts with images, tool calls run
   in the environment, crops, rewards, and writing. The seed-style loop does what the published
   scripts do: one request at a time, and the whole output file rewritten after each sample;
   ``--loop waves`` is the wave loop (one engine call per turn); ``--loop async`` the default.
   Goal: at least 5,000 rollout records/s (one record per prompt and rollout), so a GPU engine
   never waits on the pipeline. One process is bound by its interpreter (the loop's Python holds
   the GIL, whatever the cores), so the run is also shared among ``--dp`` processes (each its own
   engine, or clients of one server), as many as the machine's cores feed.
2. Idle engine. A fake engine that takes a fixed time per call (per request, in flight together,
   as continuous batching serves them) and tools that take a fixed time: the share of the run the
   engine has nothing to generate because every open conversation waits for its tools. Goal for
   the async loop: at most 5%.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from gen_cot_instant import InstantEngine
from PIL import Image
from timing import WholeProcess, timed_interleaved, whole_process

from hoidata.demo import make_raw
from hoidata.engines import Generation, Sampling
from hoidata.gen.loop import LoopConfig, run_loop
from hoidata.gen.media import SourceImages
from hoidata.gen.rollouts import run_loop_async
from hoidata.io import read_table
from hoidata.pipelines.boxes import BoxesConfig, boxes
from hoidata.pipelines.convert import ConvertConfig, convert
from hoidata.pipelines.gen_cot import GenCotConfig, gen_cot
from hoidata.profiles import get_profile
from hoidata.rewards import Targets, score
from hoidata.sft.prompts import COT_INSTRUCTION
from hoidata.tools.environment import HoiEnvironment, call_tool, tool_schemas

N_IMAGES = 400
N_LARGE = 4000  # ten times more: the whole-process rate once start-up is a small part
# --dp shares: each process decodes and encodes in 4 threads, so one per 2 cores at least
DP = [dp for dp in (2, 4, 8) if 2 * dp <= max(4, os.cpu_count() or 1)]


def seed_style(boxed: Path, root: Path, out: Path, n: int) -> int:
    """One request at a time; every record so far rewritten to one JSON file after each sample."""
    from hoidata.pipelines.build_sft import BuildSftConfig, build_table

    profile = get_profile("qwen3-vl")
    table, _ = build_table(read_table(boxed), profile, BuildSftConfig(task="referring"), "path", str(root))
    engine = InstantEngine()
    records: list[dict[str, Any]] = []
    (out / "crops").mkdir(parents=True, exist_ok=True)
    for k, s in enumerate(table.to_pylist()):
        image = Image.open(root / s["images"][0]["path"]).convert("RGB")
        question = s["messages"][0]["content"][1]["text"] + "\n" + COT_INSTRUCTION
        prompt = [
            {
                "role": "user",
                "content": [{"type": "image", "image": image}, {"type": "text", "text": question}],
            }
        ]
        for r in range(n):
            env = HoiEnvironment(profile)
            env.reset(**{**s, "images": [image]})
            messages = list(prompt)
            for _ in range(3):
                g = engine.generate([messages], Sampling(n=1), [k])[0][0]
                messages.append({"role": "assistant", "content": g.text})
                if "<tool_call>" not in g.text:
                    break
                call = json.loads(g.text.split("<tool_call>")[1].split("</tool_call>")[0])
                result = call_tool(env, call["name"], call["arguments"])
                crop_file = out / "crops" / f"{k}-{r}.png"
                result[0]["image"].save(crop_file)
                messages.append({"role": "tool", "content": result})
            reward = score(
                [messages[1:]], Targets.from_rows([s["pairs"]], "referring", s["width"], s["height"]), profile
            )
            records.append(
                {
                    "id": f"{s['sample_id']}/{r}",
                    "messages": [
                        m["content"] if isinstance(m["content"], str) else "<blocks>" for m in messages[1:]
                    ],
                    "reward": float(reward.total[0]),
                }
            )
        (out / "results.json").write_text(json.dumps(records))  # the whole file, every sample
    return len(table)


def boxes_dataset(tmp: Path, n_images: int) -> tuple[Path, Path]:
    """The demo's scenes as a ``boxes`` dataset: (its directory, the image root)."""
    files = make_raw(tmp / "raw", n_train=n_images, n_test=1)
    images = tmp / "raw" / "images" / "train"
    convert(
        ConvertConfig(
            source="hico",
            annotations=str(files["train"]),
            split="train",
            images=str(images),
            box_origin="one-based",
        ),
        tmp / "canonical",
        progress=False,
    )
    boxes(tmp / "canonical", tmp / "boxed", BoxesConfig(profile="qwen3-vl"))
    return tmp / "boxed", images


def decoding_alone(images: Path) -> float:
    """Seconds to decode every scene once, in gen-cot's 4 threads: a floor under any whole run."""
    decoder = SourceImages(str(images))
    names = sorted(p.name for p in images.iterdir())
    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda name: decoder.open({"path": name, "bytes": None}).size, names))
    return time.perf_counter() - started


def overhead() -> None:
    tmp = Path(tempfile.mkdtemp())
    boxed, images = boxes_dataset(tmp, N_IMAGES)
    n = 4

    def run(loop: str) -> None:
        cfg = GenCotConfig(engine="instant", model="instant", n=n, max_turns=3, shard_size=256, loop=loop)
        gen_cot(boxed, tmp / loop, cfg, InstantEngine, overwrite=True, progress=False)

    t_waves, t_async = timed_interleaved([lambda: run("waves"), lambda: run("async")], repeats=3)
    prompts = read_table(tmp / "async").num_rows // n
    assert read_table(tmp / "async").to_pylist() == read_table(tmp / "waves").to_pylist()
    t0 = time.perf_counter()
    base_prompts = seed_style(boxed, images, tmp / "seed", n)
    t_base = time.perf_counter() - t0
    runner = [sys.executable, str(Path(__file__).with_name("gen_cot_instant.py"))]
    cli = whole_process("gen-cot, instant engine", [*runner, str(boxed), str(tmp / "cli")], repeats=3)
    large_boxed, large_images = boxes_dataset(tmp / "large", N_LARGE)

    def large_run(label: str, name: str, *flags: str) -> WholeProcess:
        args = [*runner, str(large_boxed), str(tmp / name), *flags]
        return whole_process(f"gen-cot, instant{label}", args, repeats=3)

    large = {"--loop waves (today's loop)": large_run(", --loop waves", "large_waves", "--loop", "waves")}
    large["--loop async, one process"] = large_run("", "large_cli")
    for dp in DP:
        large[f"--loop async, --dp {dp}"] = large_run(f", --dp {dp}", f"large_dp{dp}", "--dp", str(dp))
    one = read_table(tmp / "large_cli")
    for name in ("large_waves", *(f"large_dp{dp}" for dp in DP)):
        assert read_table(tmp / name).equals(one), name
    floor = decoding_alone(large_images)
    shutil.rmtree(tmp)
    records = prompts * n
    print(
        f"demo scenes, {prompts:,} referring prompts × {n} rollouts, each: zoom_in → crop → answer → rewards"
    )
    print(
        f"  seed-style loop (one request, file rewritten): {t_base:7.2f} s  "
        f"({base_prompts * n / t_base:8,.0f} rollout records/s)"
    )
    for label, t in (("--loop waves (today's loop)", t_waves), ("--loop async (the default) ", t_async)):
        print(f"  gen-cot {label}:         {t:7.2f} s  ({records / t:8,.0f} rollout records/s)")
    print(
        f"  async / waves: {t_waves / t_async:.1f}x; async / seed-style: "
        f"{t_base / t_async * prompts / base_prompts:.0f}x   (goal: ≥ 5,000 rollout records/s)"
    )
    print(cli.line())
    print(
        f"{N_LARGE:,} scenes, {one.num_rows:,} rollout records, whole processes on {os.cpu_count()} cores "
        "(the same rows from each):"
    )
    waves = statistics.median(large["--loop waves (today's loop)"].seconds)
    for label, run in large.items():
        median = statistics.median(run.seconds)
        print(run.line())
        print(
            f"    {label}: {one.num_rows / median:,.0f} rollout records/s (median), "
            f"{waves / median:.1f}x today's loop   (goal: ≥ 5,000)"
        )
    print(f"  decoding the {N_LARGE:,} scenes alone, in 4 threads: {floor:.2f} s")


ENGINE_S, TOOL_S = 0.05, 0.01  # per engine call (a request, or a wave), per tool call


class TimedEngine:
    """Takes ENGINE_S per call and logs when it was busy; zooms twice, then answers."""

    name, model = "timed", "timed"

    def __init__(self) -> None:
        self.busy: list[tuple[float, float]] = []

    def reply(self, conversation: list, n: int) -> list[Generation]:
        turn = sum(m["role"] == "assistant" for m in conversation)
        zoom = json.dumps({"name": "zoom_in", "arguments": {"bbox_2d": [100 + 50 * turn, 100, 700, 900]}})
        text = (
            f"<think>Closer.</think>\n<tool_call>\n{zoom}\n</tool_call>"
            if turn < 2
            else "<answer>hold</answer>"
        )
        return [Generation(text, 300, 30)] * n

    def generate(self, conversations: Sequence[list], sampling: Sampling, seeds: Any, tools: Any = None):
        start = time.perf_counter()
        time.sleep(ENGINE_S)  # one batched call for the whole wave
        self.busy.append((start, time.perf_counter()))
        return [self.reply(c, sampling.n) for c in conversations]

    async def agenerate(self, conversation: list, sampling: Sampling, seed: int, tools: Any = None):
        start = time.perf_counter()
        await asyncio.sleep(ENGINE_S)  # continuous batching: requests in flight together
        self.busy.append((start, time.perf_counter()))
        return self.reply(conversation, sampling.n)

    def idle_share(self) -> float:
        """The share of the run, first call to last, with no call in flight."""
        spans = sorted(self.busy)
        covered, end = 0.0, spans[0][0]
        for a, b in spans:
            covered += max(0.0, b - max(a, end))
            end = max(end, b)
        return 1 - covered / (end - spans[0][0])


class SlowTools(HoiEnvironment):
    def zoom_in(self, bbox_2d: list[float]) -> Any:
        time.sleep(TOOL_S)
        return super().zoom_in(bbox_2d)


def idle() -> None:
    rng = np.random.default_rng(0)
    scenes = [Image.fromarray(rng.integers(0, 256, (360, 480, 3), dtype=np.uint8)) for _ in range(64)]
    prompts = [
        [{"role": "user", "content": [{"type": "image", "image": im}, {"type": "text", "text": "What?"}]}]
        for im in scenes
    ]
    rows = [
        {"images": [im], "width": 480, "height": 360, "pairs": [], "sample_id": str(k)}
        for k, im in enumerate(scenes)
    ]
    cfg = LoopConfig(Sampling(n=4), max_turns=3)
    waves, started = TimedEngine(), time.perf_counter()
    run_loop(waves, prompts, rows, SlowTools.factory(profile="qwen3-vl"), cfg, tool_schemas())
    t_waves = time.perf_counter() - started
    runs = []  # three: one stall of the shared machine is a tenth of a run this short
    for _ in range(3):
        ours, started = TimedEngine(), time.perf_counter()
        run_loop_async(
            ours, prompts, rows, SlowTools.factory(profile="qwen3-vl"), cfg, tool_schemas(), threads=8
        )
        runs.append((ours.idle_share(), time.perf_counter() - started))
    (idle_share, t_async), worst = sorted(runs)[1], max(runs)[0]
    rollouts = len(prompts) * cfg.sampling.n
    print(
        f"engine idle while tools run: {rollouts} rollouts × 2 zooms, engine {ENGINE_S * 1e3:.0f} ms per call, "
        f"tools {TOOL_S * 1e3:.0f} ms per call"
    )
    print(f"  waves (today's loop): idle {waves.idle_share():5.1%} of {t_waves:5.2f} s")
    print(
        f"  async (8 tool threads): idle {idle_share:5.1%} of {t_async:5.2f} s, median of 3 runs "
        f"(worst {worst:.1%})   (goal: ≤ 5%)"
    )


def main() -> None:
    overhead()
    idle()


if __name__ == "__main__":
    main()
