"""gen-prefs pipeline overhead with an instant engine, against a one-request-at-a-time loop.

The engine answers at once (boxes: the pair's union or a corner box; answers: right or wrong), so
what is timed is hoidata's own work: decoding, crops, PNG encoding, batching and judging with the
reward module. The baseline does the same work the way a reference script does: one engine request
per box and per answer, one reward call per answer. Figure: candidates × answers judged per second.
"""

from __future__ import annotations

import io
import re
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
from timing import timed_interleaved

from hoidata.demo.scenes import make_raw
from hoidata.engines import Generation, Sampling
from hoidata.io import read_manifest, read_table
from hoidata.io.images import open_images
from hoidata.pipelines.boxes import BoxesConfig, boxes
from hoidata.pipelines.build_sft import BuildSftConfig, build_sft
from hoidata.pipelines.convert import ConvertConfig, convert
from hoidata.pipelines.gen_prefs import GenPrefsConfig, gen_prefs
from hoidata.profiles import get_profile
from hoidata.rewards import Targets, score
from hoidata.sft.box_answer import box_turn, crop_text, first_box
from hoidata.tools.zoom import crop

K, M = 4, 4


class Instant:
    name, model = "instant", "instant"

    def generate(self, conversations: list, sampling: Sampling, seeds: list, tools: object = None) -> list:
        out = []
        for c in conversations:
            if len(c) == 1:
                b = np.array(re.findall(r"\[(\d+), (\d+), (\d+), (\d+)\]", c[0]["content"][1]["text"]), int)
                union = f"<box>[{b[:, 0].min()}, {b[:, 1].min()}, {b[:, 2].max()}, {b[:, 3].max()}]</box>"
                texts = [union if k % 2 == 0 else "<box>[0, 0, 12, 12]</box>" for k in range(sampling.n)]
            else:
                texts = [
                    "<answer>hold</answer>" if k % 2 else "<answer>kick</answer>" for k in range(sampling.n)
                ]
            out.append([Generation(t, 10, 5) for t in texts])
        return out


def baseline(sft: Path) -> int:
    """One request at a time, one reward call per answer."""
    m = read_manifest(sft)
    profile = get_profile(*m.profile_spec)
    engine, judged = Instant(), 0
    rows = read_table(sft).to_pylist()
    for r, im in zip(rows, open_images([r["images"][0] for r in rows], m.config["images"]), strict=True):
        q = r["messages"][0]["content"][1]["text"]
        user = {"role": "user", "content": [{"type": "image", "image": im}, {"type": "text", "text": q}]}
        for k in range(K):
            text = engine.generate([[user]], Sampling(1, 2.0), [k])[0][0].text
            box = first_box(text, profile, r["width"], r["height"])
            if box is None:
                continue
            view = crop(im, box, profile.factor)
            view.save(io.BytesIO(), format="PNG")  # stored, as gen-prefs stores every crop
            model = profile.to_model(box[None], r["width"], r["height"])[0]
            turns = [
                user,
                {"role": "assistant", "content": box_turn(profile, model)},
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "image": view},
                        {"type": "text", "text": crop_text(profile, model)},
                    ],
                },
            ]
            for j in range(M):
                answer = engine.generate([turns], Sampling(1, 1.0), [j])[0][0].text
                t = Targets.from_rows([r["pairs"]], ["referring"], [r["width"]], [r["height"]])
                score([answer], t, profile)
                judged += 1
    return judged


def main() -> None:
    tmp = Path(tempfile.mkdtemp())
    files = make_raw(tmp / "raw", n_train=48, n_test=1)
    convert(
        ConvertConfig(
            source="hico",
            annotations=str(files["train"]),
            split="train",
            images=str(tmp / "raw" / "images" / "train"),
            box_origin="one-based",
        ),
        tmp / "canonical",
        progress=False,
    )
    boxes(tmp / "canonical", tmp / "boxes", BoxesConfig())
    build_sft(tmp / "boxes", tmp / "sft", BuildSftConfig(task="box-answer"))
    cfg = GenPrefsConfig(engine="instant", model="instant", boxes=K, answers=M, shard_size=1024)
    t_base, t_ours = timed_interleaved(
        [
            lambda: baseline(tmp / "sft"),
            lambda: gen_prefs(tmp / "sft", tmp / "prefs", cfg, Instant, overwrite=True, progress=False),
        ],
        repeats=3,
    )
    rows = read_table(tmp / "prefs", ["candidates"]).to_pylist()
    judged = sum(len(c["answers"]) for r in rows for c in r["candidates"])
    assert judged == baseline(tmp / "sft"), "hoidata and the baseline judged different numbers of answers"
    shutil.rmtree(tmp)
    print(f"gen-prefs, instant engine: {len(rows)} questions x {K} boxes x {M} answers ({judged:,} judged)")
    print(f"  one request at a time: {judged / t_base:9,.0f} answers/s")
    print(f"  hoidata gen-prefs:     {judged / t_ours:9,.0f} answers/s")
    print(f"  speed-up: {t_base / t_ours:.1f}x")


if __name__ == "__main__":
    sys.exit(main())
