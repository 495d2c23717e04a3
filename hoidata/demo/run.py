"""``hoidata demo``: the synthetic scenes of :mod:`hoidata.demo.scenes`, run through every stage.

Each step prints one line; the steps that train or generate need the train extra (torch) and
are skipped without it.
"""

from __future__ import annotations

import os
import shutil
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from huggingface_hub.utils import disable_progress_bars

from hoidata.demo.hoiqa import hoiqa_demo
from hoidata.demo.scenes import make_raw, one_scene
from hoidata.engines.hf import HfEngine
from hoidata.eval.hico import eval_hico
from hoidata.io import read_manifest, read_table
from hoidata.models.tiny import TINY_MAX_PIXELS, TINY_MIN_PIXELS, build_tiny_vlm
from hoidata.pipelines.boxes import BoxesConfig, boxes
from hoidata.pipelines.build_sft import BuildSftConfig, build_sft
from hoidata.pipelines.convert import ConvertConfig, convert
from hoidata.pipelines.filter import FilterPrefsConfig, FilterSftConfig, filter_prefs, filter_sft
from hoidata.pipelines.gen_cot import GenCotConfig, gen_cot
from hoidata.pipelines.predict import PredictConfig, predict
from hoidata.publish import build_repo_tree, format_tree
from hoidata.sft.tasks import TASKS
from hoidata.show import ShowOptions, write_site
from hoidata.trainers.recipe import load_recipe
from hoidata.trainers.run import train
from hoidata.viz.draw import contact_sheet, draw_sample


@dataclass
class ColdStart:
    boxes: Path  # the scene's boxes dataset, at the tiny model's pixel budget
    model: Path  # the tiny model after SFT on the scene's chain-of-focus data
    loss: float  # its mean training loss


def cold_start(out: Path, steps: int = 150) -> ColdStart:
    """A tiny Qwen2.5-VL cold-started as a real one is, with ``train sft`` on ``build-sft cof`` data, on
    one scene it can learn by heart: afterwards it writes well-formed ``zoom_in`` calls and answers.

    A random tiny model writes noise, which the filters rightly reject; this one shows gen-cot's
    verified traces passing them. About a minute and a half on two CPU cores.
    """

    annotations = one_scene(out / "raw")
    images = str(out / "raw" / "images")
    convert(
        ConvertConfig(
            source="hico", annotations=str(annotations), split="train", images=images, box_origin="one-based"
        ),
        out / "canonical",
        overwrite=True,
        progress=False,
    )
    budget = BoxesConfig(profile="qwen2.5-vl", min_pixels=TINY_MIN_PIXELS, max_pixels=TINY_MAX_PIXELS)
    boxes(out / "canonical", out / "boxes", budget, overwrite=True)
    build_sft(out / "boxes", out / "cof", BuildSftConfig(task="cof", tool_share=1.0), overwrite=True)
    recipe = {
        "method": "sft",
        "model": str(build_tiny_vlm("qwen2.5-vl", out / "random")),
        "profile": "qwen2.5-vl",
        "min_pixels": TINY_MIN_PIXELS,
        "max_pixels": TINY_MAX_PIXELS,
        "data": [str(out / "cof")],
        "trainer": {
            "output_dir": str(out / "model"),
            "max_steps": steps,
            "per_device_train_batch_size": 4,
            "learning_rate": 1e-2,
            "lr_scheduler_type": "constant",
            "report_to": [],
            "save_strategy": "no",
            "disable_tqdm": True,
        },
    }
    with _quiet():
        result = train(load_recipe(None, recipe), console=False)
    return ColdStart(out / "boxes", out / "model", float(result.training_loss))


def run_demo(out: Path | str, cold: bool = False) -> None:

    out = Path(out)
    t0 = time.perf_counter()
    disable_progress_bars()  # before transformers loads: no weight-loading bar for every tiny model
    steps = 9
    print(f"[1/{steps}] drawing a synthetic HOI dataset → {out / 'raw'}")
    files = make_raw(out / "raw")
    print(f"[2/{steps}] convert (PPDM layout, one-based boxes, images embedded)")
    for split, ann in files.items():
        cfg = ConvertConfig(
            source="hico",
            annotations=str(ann),
            split=split,
            images=str(out / "raw" / "images" / split),
            box_origin="one-based",
            embed_images=True,
        )
        m = convert(cfg, out / f"hico-{split}", overwrite=True)
        print(
            f"  {split}: {m.counts['in']} in → {m.counts['out']} out, {m.counts['rejected']} rejected"
            f"  ({out / f'hico-{split}'})"
        )
    samples = read_table(out / "hico-test").slice(0, 8).to_pylist()
    contact_sheet([draw_sample(s) for s in samples], cell=488).save(out / "preview.png")
    print(f"[3/{steps}] boxes (qwen2.5-vl profile: union/refer boxes, pixels on the smart_resize'd image)")
    m = boxes(out / "hico-train", out / "hico-train-boxes", BoxesConfig(profile="qwen2.5-vl"), overwrite=True)
    print(f"  train: {m.counts['out']} images  ({out / 'hico-train-boxes'})")
    hico_tasks = [t for t in TASKS if t != "hoiqa"]  # hoiqa asks QA items: step 9
    print(f"[4/{steps}] build-sft: {', '.join(hico_tasks)}")
    for task in hico_tasks:
        m = build_sft(
            out / "hico-train-boxes", out / f"sft-{task}", BuildSftConfig(task=task), overwrite=True
        )
        print(
            f"  {task:<10} {m.counts['rows']:>3} samples from {m.counts['out']} images  ({out / f'sft-{task}'})"
        )
    print(f"[5/{steps}] push --dry-run (the exact Hub repository tree, built locally)")
    _push_dry_run(out / "sft-referring", out / "hub-preview")
    if cold:
        print(
            f"[6/{steps}] cold start: a tiny model learns chain-of-focus on one scene (train sft, "
            "150 steps, about 1.5 min), then gen-cot, filter sft and filter prefs"
        )
    else:
        print(
            f"[6/{steps}] gen-cot with a tiny random model (hf engine), then filter sft and filter prefs: "
            "it writes\n  noise, so little passes (`hoidata demo --cold-start` trains one that zooms and answers)"
        )
    model = _generate(out, cold)
    print(
        f"[7/{steps}] predict on the test split with the tiny random model, then eval hico (official protocol)"
    )
    _predict_and_evaluate(out, model)
    print(f"[8/{steps}] train sft, then train grpo (tools + hierarchical reward), a few steps each on CPU")
    _train(out, model)
    print(
        f"[9/{steps}] HOI-QA: hand-object scenes, convert hoiqa → build-sft hoiqa → train sft → predict → eval"
    )
    spec = read_manifest(out / "hico-train-boxes").profile_spec
    hoiqa_demo(out, model, (spec.min_pixels, spec.max_pixels), _quiet)
    site = write_site(out, out / "site", ShowOptions(progress=False))
    print(
        f"done in {time.perf_counter() - t0:.1f} s. Look at {out / 'preview.png'}; load a split with\n"
        f"  datasets.load_dataset('parquet', data_dir='{out / 'hico-test'}')\n"
        f"Every output, in pictures ({site.cards:,} records on {site.pages:,} pages): {site.index}"
    )


def _generate(out: Path, cold: bool) -> Path | None:
    """Tool-augmented rollouts (tools, crops, rewards, resume-safe shards) on CPU, then the filters.

    A tiny random Qwen2.5-VL writes noise, so almost nothing passes; with ``cold`` a tiny model that
    has learnt chain-of-focus on one scene generates instead (:func:`cold_start`). Returns the
    random model, which the later steps use."""
    try:
        import torch  # noqa: F401
    except ImportError:
        print("  skipped: needs the train extra (pip install 'hoidata[train]'; `make demo` installs it)")
        return None

    spec = read_manifest(out / "hico-train-boxes").profile_spec
    model = build_tiny_vlm(
        "qwen2.5-vl", out / "tiny-qwen2.5-vl", min_pixels=spec.min_pixels, max_pixels=spec.max_pixels
    )
    prompts, generator = out / "hico-train-boxes", model
    cfg = GenCotConfig(
        engine="hf", model=str(model), n=2, max_turns=2, temperature=1.0, max_tokens=24, limit=8, shard_size=4
    )
    if cold:
        started = cold_start(out / "cold-start")
        print(f"  train sft: mean loss {started.loss:.3f}  ({started.model})")
        prompts, generator = started.boxes, started.model
        cfg = GenCotConfig(engine="hf", model=str(generator), n=2, max_turns=3, temperature=0.5, shard_size=8)
    m = gen_cot(
        prompts, out / "cot", cfg, lambda: HfEngine(str(generator), family="qwen2.5-vl"), overwrite=True
    )
    rows = read_table(out / "cot", ["status", "rewards"]).to_pylist()
    statuses = sorted({r["status"] for r in rows})
    mean = sum(r["rewards"]["total"] for r in rows) / max(len(rows), 1)
    print(
        f"  gen-cot: {m.counts['rows']} rollouts of {m.counts['out']} prompts, status {', '.join(statuses)}, "
        f"mean reward {mean:.2f}  ({out / 'cot'})"
    )
    m = filter_sft(out / "cot", out / "cot-sft", FilterSftConfig(), overwrite=True)
    print(
        f"  filter sft: {m.counts['out']} kept, {m.counts['rejected']} rejected (reasons in rejects.parquet)"
        f"  ({out / 'cot-sft'})"
    )
    m = filter_prefs(out / "cot", out / "cot-dpo", FilterPrefsConfig(), overwrite=True)
    print(
        f"  filter prefs: {m.counts.get('rows', 0)} pairs, {m.counts['rejected']} rollouts unpaired"
        f"  ({out / 'cot-dpo'})"
    )
    return model


def _predict_and_evaluate(out: Path, model: Path | None) -> None:
    if model is None:
        print("  skipped: needs the train extra")
        return

    cfg = PredictConfig(engine="hf", model=str(model), profile="qwen2.5-vl", max_tokens=48)
    m = predict(
        out / "hico-test",
        out / "preds",
        cfg,
        lambda: HfEngine(str(model), family="qwen2.5-vl"),
        overwrite=True,
    )
    print(f"  predict: {m.counts['out']} images  ({out / 'preds'})")
    report = eval_hico(out / "preds", out / "hico-test")
    report.write_json(out / "eval-hico.json")
    full = report.map["full"] or 0.0
    print(
        f"  eval hico: mAP {100 * full:.2f} (Full; a random model scores about 0)  ({out / 'eval-hico.json'})"
    )


def _train(out: Path, model: Path | None) -> None:
    if model is None:
        print("  skipped: needs the train extra")
        return

    spec = read_manifest(out / "hico-train-boxes").profile_spec
    common = {
        "model": str(model),
        "profile": "qwen2.5-vl",
        "min_pixels": spec.min_pixels,
        "max_pixels": spec.max_pixels,
        "max_samples": 8,
    }
    quiet = {"report_to": [], "save_strategy": "no", "per_device_train_batch_size": 2, "disable_tqdm": True}
    sft = load_recipe(
        None,
        {
            **common,
            "method": "sft",
            "data": [str(out / "sft-cof"), str(out / "sft-referring")],
            "lora": {"r": 8, "alpha": 16},
            "trainer": {
                **quiet,
                "output_dir": str(out / "runs" / "sft"),
                "max_steps": 4,
                "learning_rate": 1e-3,
            },
        },
    )
    losses: list[float] = []
    with _quiet():
        train(sft, on_log=lambda logs: losses.extend([logs["loss"]] if "loss" in logs else []), console=False)
    print(f"  sft: 4 steps with LoRA, loss {losses[0]:.3f} → {losses[-1]:.3f}  ({out / 'runs' / 'sft'})")
    grpo = load_recipe(
        None,
        {
            **common,
            "method": "grpo",
            "data": [str(out / "hico-train-boxes")],
            "trainer": {
                **quiet,
                "output_dir": str(out / "runs" / "grpo"),
                "max_steps": 2,
                "num_generations": 2,
                "max_completion_length": 24,
                "log_completions": False,
            },
        },
    )
    rewards: list[float] = []
    with _quiet():
        train(
            grpo,
            on_log=lambda logs: rewards.extend([logs["reward"]] if "reward" in logs else []),
            console=False,
        )
    print(
        f"  grpo: 2 steps, tools on, mean reward {sum(rewards) / max(len(rewards), 1):.2f}  ({out / 'runs' / 'grpo'})"
    )


@contextmanager
def _quiet() -> Iterator[None]:
    """The demo shows one line per step of the chain; library deprecation notes would drown it."""

    old = os.environ.get("TRL_EXPERIMENTAL_SILENCE")
    os.environ["TRL_EXPERIMENTAL_SILENCE"] = "1"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            yield
    finally:
        if old is None:
            os.environ.pop("TRL_EXPERIMENTAL_SILENCE", None)
        else:
            os.environ["TRL_EXPERIMENTAL_SILENCE"] = old


def _push_dry_run(dataset: Path, tree: Path) -> None:

    if tree.exists():
        shutil.rmtree(tree)
    files = build_repo_tree(dataset, tree, repo_id="demo/hoi-sft-referring")
    print("  " + format_tree(tree, files).replace("\n", "\n  "))
