"""The demo's HOI-QA step: hand-object scenes through convert hoiqa → boxes → build-sft hoiqa →
train sft → predict → eval hoiqa, and referral questions written about the HICO-DET test split."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

import pyarrow.compute as pc

from hoidata.demo.hands import make_hoiqa_raw
from hoidata.engines.hf import HfEngine
from hoidata.eval.hoiqa import eval_hoiqa
from hoidata.io import read_table
from hoidata.pipelines.boxes import BoxesConfig, boxes
from hoidata.pipelines.build_sft import BuildSftConfig, build_sft
from hoidata.pipelines.convert import ConvertConfig, convert
from hoidata.pipelines.predict import PredictConfig, predict
from hoidata.pipelines.referral import QAConfig, add_qa
from hoidata.trainers.recipe import load_recipe
from hoidata.trainers.run import train


def hoiqa_demo(
    out: Path, model: Path | None, pixels: tuple[int, int], quiet: Callable[[], AbstractContextManager]
) -> None:
    """``model``: the tiny base model (None without the train extra: data steps only); ``pixels``:
    its (min, max) budget; ``quiet``: a context manager factory that hides library notes."""
    annotations, images = make_hoiqa_raw(out / "raw-hoiqa", n=12)
    cfg = ConvertConfig(source="hoiqa", annotations=str(annotations), images=str(images), split="test")
    m = convert(cfg, out / "hoiqa", overwrite=True, progress=False)
    print(f"  convert hoiqa: {m.counts['out']} hand-object images  ({out / 'hoiqa'})")
    budget = BoxesConfig(profile="qwen2.5-vl", min_pixels=pixels[0], max_pixels=pixels[1])
    boxes(out / "hoiqa", out / "hoiqa-boxes", budget, overwrite=True)
    m = build_sft(out / "hoiqa-boxes", out / "sft-hoiqa", BuildSftConfig(task="hoiqa"), overwrite=True)
    print(f"  build-sft hoiqa: {m.counts['rows']} QA samples  ({out / 'sft-hoiqa'})")
    add_qa(out / "hico-test", out / "hico-test-qa", QAConfig(), overwrite=True)
    asked = pc.sum(pc.list_value_length(read_table(out / "hico-test-qa", ["qa"])["qa"])).as_py()
    print(f"  qa: {asked} referral questions about the HICO-DET test pairs  ({out / 'hico-test-qa'})")
    if model is None:
        print("  train, predict and eval skipped: they need the train extra")
        return
    recipe = {
        "method": "sft",
        "model": str(model),
        "profile": "qwen2.5-vl",
        "min_pixels": pixels[0],
        "max_pixels": pixels[1],
        "data": [str(out / "sft-hoiqa")],
        "trainer": {
            "output_dir": str(out / "runs" / "sft-hoiqa"),
            "max_steps": 4,
            "per_device_train_batch_size": 2,
            "learning_rate": 1e-3,
            "report_to": [],
            "save_strategy": "no",
            "disable_tqdm": True,
        },
    }
    with quiet():
        train(load_recipe(None, recipe), console=False)
    run = out / "runs" / "sft-hoiqa"
    pcfg = PredictConfig(
        engine="hf",
        model=str(run),
        profile="qwen2.5-vl",
        min_pixels=pixels[0],
        max_pixels=pixels[1],
        max_tokens=24,
    )
    m = predict(
        out / "hoiqa",
        out / "preds-hoiqa",
        pcfg,
        lambda: HfEngine(str(run), family="qwen2.5-vl"),
        overwrite=True,
    )
    report = eval_hoiqa(out / "preds-hoiqa", out / "hoiqa")
    report.write_json(out / "eval-hoiqa.json")
    o = report.overall
    print(
        f"  train sft (4 steps) → predict {m.counts['rows']} questions → eval hoiqa: noun accuracy "
        f"{100 * (o['noun_accuracy'] or 0):.1f}%, box accuracy {100 * (o['box_accuracy'] or 0):.1f}% "
        f"(a barely trained tiny model)  ({out / 'eval-hoiqa.json'})"
    )
