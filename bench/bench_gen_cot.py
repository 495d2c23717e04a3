"""gen-cot's own overhead with an instant engine, against a seed-style generation loop.

Both run the same rollouts: the model (an engine that answers at once) zooms in on the pair, then
answers. The work left is the pipeline's: prompts with images, tool calls run in the environment,
crops, rewards, and writing. The seed-style loop does what the published scripts do: one request
at a time, and the whole output file rewritten after each sample. Goal on 2 cores: at least
1,000 samples/s of overhead throughput, so a GPU engine never waits on the pipeline. Both rates
are printed: prompts/s, and rollout records/s (one record per prompt and rollout); decoding each
image and PNG-encoding each crop, in threads, are most of what is left.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from PIL import Image
from timing import timed

from hoidata.demo import make_raw
from hoidata.engines import Generation, Sampling
from hoidata.io import read_table
from hoidata.pipelines.boxes import BoxesConfig, boxes
from hoidata.pipelines.convert import ConvertConfig, convert
from hoidata.pipelines.gen_cot import GenCotConfig, gen_cot
from hoidata.profiles import get_profile
from hoidata.rewards import Targets, score
from hoidata.sft.prompts import COT_INSTRUCTION
from hoidata.tools.environment import HoiEnvironment, call_tool

N_IMAGES = 400
ZOOM = {"name": "zoom_in", "arguments": {"bbox_2d": [100, 100, 700, 900]}}


class InstantEngine:
    """Zooms on the first turn, answers on the second, in no time."""

    name, model = "instant", "instant"

    def generate(
        self, conversations: Sequence[list], sampling: Sampling, seeds: Sequence[int], tools: Any = None
    ) -> list[list[Generation]]:
        out = []
        for c in conversations:
            if len(c) == 1:
                g = Generation(
                    f"<think>Look closer.</think>\n<tool_call>\n{json.dumps(ZOOM)}\n</tool_call>", 300, 30
                )
            else:
                g = Generation("<think>The hands hold it.</think><answer>hold</answer>", 600, 12)
            out.append([g] * sampling.n)
        return out


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


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    files = make_raw(tmp / "raw", n_train=N_IMAGES, n_test=1)
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
    n = 4
    cfg = GenCotConfig(engine="instant", model="instant", n=n, max_turns=3, shard_size=256)

    def ours() -> None:
        gen_cot(tmp / "boxed", tmp / "cot", cfg, InstantEngine, overwrite=True, progress=False)

    t_ours = timed(ours, repeats=3)
    prompts = read_table(tmp / "cot").num_rows // n
    t0 = time.perf_counter()
    base_prompts = seed_style(tmp / "boxed", images, tmp / "seed", n)
    t_base = time.perf_counter() - t0
    shutil.rmtree(tmp)
    print(
        f"demo scenes, {prompts:,} referring prompts × {n} rollouts, each: zoom_in → crop → answer → rewards"
    )
    print(
        f"  seed-style loop (one request, file rewritten): {t_base:7.2f} s  ({base_prompts / t_base:8,.0f} prompts/s)"
    )
    print(
        f"  hoidata gen-cot (waves, shards):               {t_ours:7.2f} s  ({prompts / t_ours:8,.0f} prompts/s, "
        f"{prompts * n / t_ours:,.0f} rollout records/s)"
    )
    print(
        f"  speed-up: {t_base / t_ours * prompts / base_prompts:.1f}x   (goal: ≥ 1,000 samples/s of overhead, a "
        "sample being what the engine generates: one rollout of a prompt)"
    )


if __name__ == "__main__":
    main()
