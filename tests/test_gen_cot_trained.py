"""The acceptance run of gen-cot with a real model through the filters into TRL.

A random tiny model writes noise, so the model here is first cold-started the way a real one is
(``hoidata demo --cold-start`` does the same): ``hoidata train sft`` on ``build-sft cof`` data
(think, ``zoom_in``, look at the crop, answer) from a scene seen 16 times, until it writes
well-formed tool calls. It then generates through the ``hf`` engine and through a real
``transformers serve`` on loopback; ``filter sft`` and ``filter prefs`` turn the rollouts into
data that TRL's SFT and DPO trainers train on.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from light_cli import run_light

from hoidata.io import read_manifest, read_table

FAMILY = "qwen2.5-vl"
SCENES = 16


def _train(data: Path, model: Path, out: Path, method: str, **trainer: Any) -> Any:
    from hoidata.models.tiny import TINY_MAX_PIXELS, TINY_MIN_PIXELS
    from hoidata.trainers.recipe import load_recipe
    from hoidata.trainers.run import train

    recipe = {
        "method": method,
        "model": str(model),
        "profile": FAMILY,
        "min_pixels": TINY_MIN_PIXELS,
        "max_pixels": TINY_MAX_PIXELS,
        "data": [str(data)],
        "trainer": {
            "output_dir": str(out),
            "per_device_train_batch_size": 2,
            "report_to": [],
            "save_strategy": "no",
            "disable_tqdm": True,
            **trainer,
        },
    }
    return train(load_recipe(None, recipe), console=False)


@pytest.fixture(scope="module")
def cold_started(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The scene's boxes dataset, and the tiny model after 150 SFT steps on its chain-of-focus data
    (the demo's ``--cold-start``)."""
    from hoidata.demo import cold_start

    started = cold_start(tmp_path_factory.mktemp("cold-start"))
    assert started.loss < 1.5  # the mean over all steps, from about 6: well-formed traces, not noise
    return {"boxes": started.boxes, "model": started.model}


def _gen_cot(cold_started: dict[str, Path], out: Path, *engine: str) -> None:
    command = [str(Path(sys.executable).with_name("hoidata")), "gen-cot", str(cold_started["boxes"])]
    command += [*engine, "--n", "2", "--max-turns", "3", "--temperature", "0.5", "-o", str(out)]
    done = subprocess.run(command, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]


def _filter_and_train(cold_started: dict[str, Path], cot: Path, tmp: Path) -> None:
    rows = read_table(cot).to_pylist()
    assert read_manifest(cot).counts["rows"] == len(rows) == 2 * SCENES
    # the cold-started model zooms with well-formed calls: the crop is a second image, the zoom is on the pair
    zoomed = [r for r in rows if len(r["images"]) == 2 and r["rewards"]["tool"] > 0]
    assert zoomed, "no rollout made a successful zoom_in call"
    assert any(r["rewards"]["total"] == 0 for r in rows)  # and sampling makes mistakes too

    done = run_light("filter", "sft", str(cot), "-o", str(tmp / "sft"))
    assert done.returncode == 0, done.stderr
    kept = read_table(tmp / "sft").to_pylist()
    assert any(len(r["images"]) == 2 for r in kept)  # verified traces, with their crops
    kept_ids = {r["sample_id"] for r in kept}
    assert all(
        r["rewards"]["accuracy"] == r["rewards"]["format"] == 1 for r in rows if r["sample_id"] in kept_ids
    )
    done = run_light("filter", "prefs", str(cot), "-o", str(tmp / "prefs"))
    assert done.returncode == 0, done.stderr
    pairs = read_table(tmp / "prefs").to_pylist()
    assert pairs and all(p["chosen_reward"] > p["rejected_reward"] for p in pairs)

    for method, data in (("sft", tmp / "sft"), ("dpo", tmp / "prefs")):
        result = _train(data, cold_started["model"], tmp / f"{method}-run", method, max_steps=2)
        assert result.global_step == 2


def test_hf_engine_rollouts_filter_into_trl_training(cold_started: dict[str, Path], tmp_path: Path) -> None:
    _gen_cot(cold_started, tmp_path / "cot", "--engine", "hf", "--model", str(cold_started["model"]))
    _filter_and_train(cold_started, tmp_path / "cot", tmp_path)


def test_openai_engine_rollouts_filter_into_trl_training(
    cold_started: dict[str, Path], tmp_path: Path
) -> None:
    from tiny_fixtures import transformers_serve

    with transformers_serve(cold_started["model"]) as base_url:
        engine = ["--engine", "openai", "--model", str(cold_started["model"]), "--base-url", base_url]
        _gen_cot(cold_started, tmp_path / "cot", *engine)
    _filter_and_train(cold_started, tmp_path / "cot", tmp_path)
