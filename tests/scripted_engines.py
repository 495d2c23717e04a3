"""Scripted engines for stage tests: they answer from the ground truth, so rewards are known."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, ClassVar

from hoidata.engines import Generation, Sampling
from hoidata.io import read_manifest, read_table


class ZoomThenAnswer:
    """Rollout 0 zooms in (or, with ``zoom=False``, answers at once), then answers with the true
    verbs; rollout 1 answers 'kick' at once. ``answers`` maps each prompt text to its true answer."""

    name, model = "scripted", "zoomer"
    ZOOM: ClassVar[list[int]] = [
        40,
        40,
        110,
        110,
    ]  # model frame: on some people and objects of the demo scenes, not all

    def __init__(self, answers: dict[str, str], zoom: bool = True) -> None:
        self.answers, self.zoom = answers, zoom
        self.waves: list[int] = []

    def generate(
        self, conversations: Sequence[list], sampling: Sampling, seeds: Sequence[int], tools: Any = None
    ) -> list[list[Generation]]:
        self.waves.append(len(conversations))
        out = []
        for c in conversations:
            question = c[0]["content"][1]["text"]
            if len(c) == 1 and not self.zoom:
                good = Generation(f"<think>Clear.</think><answer>{self.answers[question]}</answer>", 50, 8)
                out.append(
                    [good, Generation("<think>Obvious.</think><answer>kick</answer>", 50, 8)][: sampling.n]
                )
            elif len(c) == 1:
                zoom = json.dumps({"name": "zoom_in", "arguments": {"bbox_2d": self.ZOOM}})
                out.append(
                    [
                        Generation(f"<think>Look closer.</think>\n<tool_call>\n{zoom}\n</tool_call>", 50, 20),
                        Generation("<think>Obvious.</think><answer>kick</answer>", 50, 8),
                    ][: sampling.n]
                )
            else:
                out.append(
                    [Generation(f"<think>I see it.</think><answer>{self.answers[question]}</answer>", 90, 9)]
                )
        return out


def true_answers(boxes_dir: Path) -> dict[str, str]:
    from hoidata.pipelines.build_sft import BuildSftConfig, build_table
    from hoidata.pipelines.gen_cot import question
    from hoidata.profiles import get_profile

    spec = read_manifest(boxes_dir).config["profile_spec"]
    profile = get_profile(spec["name"], spec["min_pixels"], spec["max_pixels"])
    table, _ = build_table(read_table(boxes_dir), profile, BuildSftConfig(task="referring"), "path", None)
    return {question(r): r["messages"][1]["content"][0]["text"] for r in table.to_pylist()}
