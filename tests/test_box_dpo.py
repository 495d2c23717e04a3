"""Box-then-answer DPO in two stages on the tiny model: gen-prefs judged by an LLM judge over a real
OpenAI-compatible HTTP server on 127.0.0.1, both filters, DPO stage 1 on box pairs, then stage 2 on
a 0.5 / 0.5 mix of box and answer pairs, continuing stage 1's adapter."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_gen_prefs import Policy, _answers

from hoidata.engines.options import EngineOptions
from hoidata.errors import HoidataError
from hoidata.io import read_manifest, read_table
from hoidata.models.tiny import TINY_MAX_PIXELS, TINY_MIN_PIXELS
from hoidata.pipelines.build_sft import BuildSftConfig, build_sft
from hoidata.pipelines.filter_box_prefs import FilterBoxPrefsConfig, filter_box_prefs
from hoidata.pipelines.gen_prefs import GenPrefsConfig, gen_prefs
from hoidata.trainers.recipe import load_recipe
from hoidata.trainers.run import train


@pytest.fixture
def judge_server() -> Iterator[tuple[str, list[str]]]:
    """/v1/chat/completions: "10" when the candidate answer names the reference, else "0"."""
    prompts: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            prompt = body["messages"][-1]["content"]
            prompt = prompt if isinstance(prompt, str) else "".join(b.get("text", "") for b in prompt)
            prompts.append(prompt)
            ref = re.search(r"Reference answer: (.*)\n", prompt).group(1)
            cand = re.search(r"Candidate answer: (.*)\n", prompt).group(1)
            data = json.dumps(
                {
                    "id": "x",
                    "object": "chat.completion",
                    "created": 0,
                    "model": body["model"],
                    "choices": [
                        {
                            "index": 0,
                            "message": {"role": "assistant", "content": "10" if ref in cand else "0"},
                            "finish_reason": "stop",
                        }
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            ).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1", prompts
    server.shutdown()
    server.server_close()


def test_two_stage_dpo_from_judged_preferences(
    tiny_boxes: Any, tiny_vlm: Any, tmp_path: Path, judge_server: tuple[str, list[str]]
) -> None:
    base_url, asked = judge_server
    build_sft(tiny_boxes(10), tmp_path / "warmup", BuildSftConfig(task="box-answer", images="embed"))
    budget = {"profile": "qwen2.5-vl", "min_pixels": TINY_MIN_PIXELS, "max_pixels": TINY_MAX_PIXELS}
    warm = load_recipe(
        None,
        budget
        | {
            "method": "sft",
            "model": str(tiny_vlm("qwen2.5-vl")),
            "data": [str(tmp_path / "warmup")],
            "trainer": {
                "output_dir": str(tmp_path / "warm"),
                "max_steps": 2,
                "per_device_train_batch_size": 2,
                "report_to": [],
                "save_strategy": "no",
            },
        },
    )
    assert train(warm, console=False).global_step == 2
    # a tiny model two steps into training writes no readable box yet: the policy sampled here is
    # scripted (a box that works and one that does not); judging, filtering and DPO are real
    cfg = GenPrefsConfig(
        engine="scripted",
        model="policy",
        boxes=2,
        answers=2,
        judge="llm",
        judge_model="judge",
        judge_base_url=base_url,
    )
    judge = EngineOptions(base_url=base_url).factory("openai", "judge", None)
    gen_prefs(
        tmp_path / "warmup",
        tmp_path / "prefs",
        cfg,
        lambda: Policy(_answers(tmp_path / "warmup")),
        judge=judge,
        progress=False,
    )
    rows = read_table(tmp_path / "prefs").to_pylist()
    judged = [c for r in rows for c in r["candidates"] if c["answers"]]
    assert asked and all(len(c["judge_raw"]) == len(c["answers"]) for c in judged)
    assert read_manifest(tmp_path / "prefs").config["judge_prompt"].startswith("You grade answers")
    rules = FilterBoxPrefsConfig(min_high=0.5, chosen=0.5)
    filter_box_prefs(tmp_path / "prefs", tmp_path / "box-pairs", rules, "box")
    filter_box_prefs(tmp_path / "prefs", tmp_path / "answer-pairs", rules, "answer")
    n_box = read_manifest(tmp_path / "box-pairs").counts["rows"]
    n_answer = read_manifest(tmp_path / "answer-pairs").counts["rows"]
    assert n_box > 0 and n_answer > 0

    common = {"method": "dpo"} | budget
    trainer = {
        "max_steps": 2,
        "per_device_train_batch_size": 2,
        "report_to": [],
        "save_strategy": "no",
        "learning_rate": 1e-3,
        "dataloader_num_workers": 0,
    }
    stage1 = load_recipe(
        None,
        common
        | {
            "model": str(tiny_vlm("qwen2.5-vl")),
            "data": [str(tmp_path / "box-pairs")],
            "lora": {"r": 4, "alpha": 8},
            "trainer": trainer | {"output_dir": str(tmp_path / "stage1")},
        },
    )
    assert train(stage1, console=False).global_step == 2
    assert (tmp_path / "stage1" / "adapter_config.json").is_file()
    stage2 = load_recipe(
        None,
        common
        | {
            "model": str(tmp_path / "stage1"),  # stage 1's weights (its adapter, merged)
            "lora": {"r": 4, "alpha": 8},
            "data": [str(tmp_path / "box-pairs"), str(tmp_path / "answer-pairs")],
            "data_mix": [1, 1],
            "trainer": trainer | {"output_dir": str(tmp_path / "stage2")},
        },
    )
    assert stage2.data_mix == [0.5, 0.5]
    assert train(stage2, console=False).global_step == 2
    saved = json.loads((tmp_path / "stage2" / "adapter_config.json").read_text())
    assert saved["base_model_name_or_path"] == str(tmp_path / "stage2" / "start")  # stage 1, merged
    # predict and eval: the stage-2 model asked greedily, box then answer, scored by eval box-answer
    merged = tmp_path / "stage2-merged"
    subprocess.run(
        [sys.executable, "-m", "hoidata", "train", "merge", str(tmp_path / "stage2"), "--out", str(merged)],
        check=True,
        capture_output=True,
    )
    greedy = [
        sys.executable,
        "-m",
        "hoidata",
        "gen-prefs",
        str(tmp_path / "warmup"),
        "--engine",
        "hf",
        "--model",
        str(merged),
        "--boxes",
        "1",
        "--answers",
        "1",
        "--box-temperature",
        "0",
        "--answer-temperature",
        "0",
        "--max-tokens",
        "8",
        "--limit",
        "4",
        "-o",
        str(tmp_path / "preds"),
    ]
    subprocess.run(greedy, check=True, capture_output=True)
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "hoidata",
            "eval",
            "box-answer",
            str(tmp_path / "preds"),
            "--json",
            str(tmp_path / "r.json"),
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["questions"] == 4 and 0.0 <= report["mean_iou"] <= 1.0


def test_recipe_mix_and_imagine_keys_are_checked() -> None:
    base = {"method": "dpo", "model": "m", "data": ["a", "b"]}
    with pytest.raises(HoidataError, match="one positive share per data entry"):
        load_recipe(None, base | {"data_mix": [1]})
    with pytest.raises(HoidataError, match="one positive share per data entry"):
        load_recipe(None, base | {"data_mix": [1, -1]})
    assert load_recipe(None, base | {"data_mix": [3, 1]}).data_mix == [0.75, 0.25]
    with pytest.raises(HoidataError, match="imagine_backend must be context or none"):
        load_recipe(None, base | {"imagine_backend": "diffusers"})
