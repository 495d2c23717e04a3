"""One folder of every kind ``hoidata show`` draws, built once per session from the demo scenes:
canonical datasets (paths, embedded), boxes datasets of two profiles, SFT datasets (referring,
chain-of-focus, grounding in the 0–1000 frame, referring on resized images), gen-cot rollouts with
both filters, predictions, an evaluation report and a folder of maps."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from scripted_engines import ZoomThenAnswer, true_answers

from hoidata.demo import make_raw
from hoidata.engines import Generation, Sampling
from hoidata.eval.hico import eval_hico
from hoidata.models.tiny import TINY_MAX_PIXELS, TINY_MIN_PIXELS
from hoidata.pipelines.boxes import BoxesConfig, boxes
from hoidata.pipelines.build_sft import BuildSftConfig, build_sft
from hoidata.pipelines.convert import ConvertConfig, convert
from hoidata.pipelines.filter import FilterPrefsConfig, FilterSftConfig, filter_prefs, filter_sft
from hoidata.pipelines.gen_cot import GenCotConfig, gen_cot
from hoidata.pipelines.predict import PredictConfig, predict

ANSWER = [
    {
        "person_bbox_2d": [20, 30, 120, 200],
        "verb": "hold",
        "object": "cup",
        "object_bbox_2d": [100, 90, 140, 130],
    }
]
SFT = {
    "sft-referring": "referring",
    "sft-cof": "cof",
    "sft-q3-grounding": "grounding",
    "sft-resize": "referring",
}


class OneAnswer:
    """Answers every image with the same pair (model frame: pixels of the resized image)."""

    name, model = "scripted", "one-answer"

    def generate(
        self, conversations: Sequence[list], sampling: Sampling, seeds: Sequence[int], tools: Any = None
    ) -> list[list[Generation]]:
        return [[Generation(json.dumps(ANSWER), 40, 20)] for _ in conversations]


def build_showcase(root: Path) -> Path:
    files = make_raw(root / "raw", n_train=6, n_test=3)
    for split, embed in (("train", False), ("test", True)):
        cfg = ConvertConfig(
            source="hico",
            annotations=str(files[split]),
            split=split,
            images=str(root / "raw" / "images" / split),
            box_origin="one-based",
            embed_images=embed,
        )
        convert(cfg, root / f"hico-{split}", progress=False)
    tiny = BoxesConfig(profile="qwen2.5-vl", min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS)
    boxes(root / "hico-train", root / "boxes", tiny)
    boxes(root / "hico-train", root / "boxes-q3", BoxesConfig(profile="qwen3-vl"))
    build_sft(root / "boxes", root / "sft-referring", BuildSftConfig(task="referring"))
    build_sft(root / "boxes", root / "sft-cof", BuildSftConfig(task="cof", tool_share=1.0))
    build_sft(root / "boxes-q3", root / "sft-q3-grounding", BuildSftConfig(task="grounding"))
    build_sft(root / "boxes", root / "sft-resize", BuildSftConfig(task="referring", images="resize"))
    answers = true_answers(root / "boxes")
    gen = GenCotConfig(engine="scripted", model="zoomer", n=2, shard_size=4)
    gen_cot(root / "boxes", root / "cot", gen, lambda: ZoomThenAnswer(answers), progress=False)
    filter_sft(root / "cot", root / "cot-sft", FilterSftConfig())
    filter_prefs(root / "cot", root / "cot-dpo", FilterPrefsConfig(min_margin=0.1))
    cfg = PredictConfig(engine="scripted", model="one-answer", profile="qwen2.5-vl")
    predict(root / "hico-test", root / "preds", cfg, OneAnswer)
    eval_hico(root / "preds", root / "hico-test").write_json(root / "eval-hico.json")
    maps = root / "attention" / "maps"
    maps.mkdir(parents=True)
    Image.new("RGB", (64, 48), (200, 30, 30)).save(maps / "sample-0.png")
    captions = {"file": ["sample-0.png"], "sample_id": ["s0"], "question": ["where is the cup?"]}
    pq.write_table(pa.table(captions), maps.parent / "attention.parquet")  # as `hoidata attention` writes
    return root


@pytest.fixture(scope="session")
def showcase(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_showcase(tmp_path_factory.mktemp("showcase"))
