"""``train sft|grpo|dpo`` with ``spatial_linking:`` on tiny models (CPU): the module trains, is saved
beside the adapter, resumes, survives ``train merge``, and ``predict`` answers with it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file
from spatial_fixtures import BUDGET, FAMILIES, load, spatial_dataset

from hoidata.cli.main import main
from hoidata.engines.options import EngineOptions
from hoidata.errors import HoidataError
from hoidata.io import ProfileSpec, open_dataset
from hoidata.models.spatial_config import CONFIG_FILE, WEIGHTS_FILE
from hoidata.models.spatial_linking import (
    detach_spatial_linking,
    find_linker,
    find_spatial_linking,
    load_spatial_linking,
)
from hoidata.pipelines.predict_sft import with_spatial_linking
from hoidata.profiles import get_profile
from hoidata.trainers.recipe import load_recipe
from hoidata.trainers.run import train
from hoidata.trainers.spatial import check_spatial_data

FAMILY = "qwen2.5-vl"


@pytest.fixture(scope="module")
def data(demo_canonical: Any, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("spatial-train")
    found = {family: spatial_dataset(demo_canonical(10), family, root) for family in FAMILIES}
    found["referring"] = spatial_dataset(demo_canonical(10), FAMILY, root, task="referring")
    return found


def _recipe(model: Path, data: Path, out: Path, family: str = FAMILY, **over: Any) -> Any:
    trainer = {
        "output_dir": str(out),
        "per_device_train_batch_size": 4,
        "report_to": [],
        "save_strategy": "no",
        "dataloader_num_workers": 0,
        "learning_rate": 3e-3,
        **over.pop("trainer", {}),
    }
    recipe = {
        "method": "sft",
        "model": str(model),
        "profile": family,
        "data": [str(data)],
        "max_samples": 8,
        "spatial_linking": {},
        "trainer": trainer,
        **BUDGET,
        **over,
    }
    return load_recipe(None, recipe)


def _cli(argv: list[str]) -> int:
    """``hoidata ARGV`` in this process; its exit code."""
    try:
        main(argv)
    except SystemExit as e:
        return int(e.code or 0)
    return 0


class GradientSpy:
    """Before each optimizer step: which module weights have a non-zero gradient; and the initial weights."""

    def __init__(self) -> None:
        self.steps: list[dict[str, bool]] = []
        self.initial: dict[str, torch.Tensor] = {}
        self.linker: Any = None

    def callback(self) -> Any:
        from transformers import TrainerCallback

        spy = self

        class Spy(TrainerCallback):
            def on_train_begin(
                self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any
            ) -> None:
                module = find_spatial_linking(model)
                spy.initial = {k: v.detach().float().clone() for k, v in module.state_dict().items()}
                spy.linker = find_linker(model)
                spy.linker.record, spy.linker.recorded = True, []  # every box linked in a training forward

            def on_pre_optimizer_step(
                self, args: Any, state: Any, control: Any, model: Any = None, **kw: Any
            ) -> None:
                module = find_spatial_linking(model)
                spy.steps.append(
                    {
                        n: p.grad is not None and bool(p.grad.abs().sum() > 0)
                        for n, p in module.named_parameters()
                    }
                )

        return Spy()


@pytest.mark.parametrize("family", FAMILIES)
def test_sft_trains_every_module_weight_and_loss_falls(
    family: str, data: dict[str, Path], tiny_vlm: Any, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out, spy, losses = tmp_path / "run", GradientSpy(), []
    recipe = _recipe(tiny_vlm(family), data[family], out, family, trainer={"max_steps": 12})
    result = train(
        recipe,
        console=False,
        callbacks=[spy.callback()],
        on_log=lambda logs: losses.extend([logs["loss"]] if "loss" in logs else []),
    )
    assert result.global_step == 12
    assert "spatial linking: 5,488 parameters (hidden 32, attention 32 in 8 heads" in capsys.readouterr().out
    assert len(spy.steps) == 12 and all(all(step.values()) for step in spy.steps), spy.steps[0]
    saved = load_file(str(out / WEIGHTS_FILE))
    assert saved.keys() == spy.initial.keys()
    assert all(not torch.equal(saved[k], spy.initial[k]) for k in saved)  # every tensor moved
    assert json.loads((out / CONFIG_FILE).read_text())["box_frame"] == str(get_profile(family).frame)
    assert not any("spatial" in k for k in load_file(str(out / "model.safetensors")))  # the base stays clean
    assert sum(losses[-3:]) < 0.9 * sum(losses[:3]), losses  # 8 samples, overfit


@pytest.fixture(scope="module")
def lora_run(data: dict[str, Path], tiny_vlm: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("spatial-lora") / "run"
    recipe = _recipe(
        tiny_vlm(FAMILY),
        data[FAMILY],
        out,
        lora={"r": 4, "alpha": 8},
        trainer={"max_steps": 2, "save_strategy": "steps", "save_steps": 2},
    )
    assert train(recipe, console=False).global_step == 2
    return out


def test_lora_run_keeps_the_module_beside_the_adapter_and_resumes_it(
    lora_run: Path, data: dict, tiny_vlm: Any
) -> None:
    for d in (lora_run, lora_run / "checkpoint-2"):
        assert (
            (d / WEIGHTS_FILE).is_file()
            and (d / CONFIG_FILE).is_file()
            and (d / "adapter_config.json").is_file()
        )
    assert not any("spatial" in k for k in load_file(str(lora_run / "adapter_model.safetensors")))
    trained = load_file(str(lora_run / "checkpoint-2" / WEIGHTS_FILE))
    # resuming at step 2 with max_steps 2 trains nothing: what is saved is what the checkpoint held
    recipe = _recipe(
        tiny_vlm(FAMILY),
        data[FAMILY],
        lora_run,
        lora={"r": 4, "alpha": 8},
        trainer={"max_steps": 2, "save_strategy": "no"},
    )
    assert train(recipe, resume=True, console=False).global_step == 2
    again = load_file(str(lora_run / WEIGHTS_FILE))
    assert all(torch.equal(again[k], trained[k]) for k in trained)


def test_merge_keeps_the_module_and_detaching_gives_the_merged_base(
    lora_run: Path, data: dict[str, Path], tmp_path: Path
) -> None:
    assert _cli(["train", "merge", str(lora_run), "--out", str(tmp_path / "merged")]) == 0
    merged = tmp_path / "merged"
    assert (merged / WEIGHTS_FILE).read_bytes() == (lora_run / WEIGHTS_FILE).read_bytes()
    processor, model = load(merged)
    row = open_dataset(data[FAMILY])[0]
    question = row["messages"][0]["content"][1]["text"]
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": question}]}]
    inputs = processor(
        text=[processor.apply_chat_template(messages)], images=[row["images"][0]], return_tensors="pt"
    )
    with torch.no_grad():
        base = model(**inputs).logits
        load_spatial_linking(model, merged, processor.tokenizer)
        linked = model(**inputs).logits
        detach_spatial_linking(model)
        after = model(**inputs).logits
    assert not torch.allclose(base, linked, atol=1e-4)
    assert torch.equal(base, after)


def test_predict_answers_with_the_module_and_eval_scores_it(
    lora_run: Path, data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    profile = get_profile(FAMILY, **BUDGET)
    factory = EngineOptions().factory("hf", str(lora_run), ProfileSpec(FAMILY, *BUDGET.values()))
    engine = with_spatial_linking(factory, "hf", str(lora_run), profile)()
    assert find_spatial_linking(engine.network) is not None
    budget = ["--min-pixels", str(BUDGET["min_pixels"]), "--max-pixels", str(BUDGET["max_pixels"])]
    common = [str(data[FAMILY]), "--model", str(lora_run), "--profile", FAMILY, *budget, "--max-tokens", "4"]
    assert _cli(["predict", *common, "--engine", "vllm", "--out", str(tmp_path / "no")]) == 2
    assert "only --engine hf" in capsys.readouterr().err
    assert _cli(["predict", *common, "--engine", "hf", "--out", str(tmp_path / "preds")]) == 0
    shard = next((tmp_path / "preds").glob("data/*.parquet"))
    assert (
        _cli(["eval", "referring", str(shard), "--gt", str(data[FAMILY]), "--json", str(tmp_path / "r.json")])
        == 0
    )
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["counts"]["answered"] == len(open_dataset(data[FAMILY]))


def test_grpo_and_dpo_train_the_module(data: dict[str, Path], tiny_vlm: Any, tmp_path: Path) -> None:
    import datasets

    rows = open_dataset(data[FAMILY]).select(range(4))
    prefs = tmp_path / "prefs"
    datasets.Dataset.from_list(
        [
            {
                "images": r["images"],
                "prompt": r["messages"][:1],
                "chosen": r["messages"][1:],
                "rejected": [{"role": "assistant", "content": [{"type": "text", "text": "nothing"}]}],
            }
            for r in rows
        ]
    ).to_parquet(str(prefs / "train.parquet"))
    grpo = {
        "num_generations": 2,
        "max_completion_length": 8,
        "per_device_train_batch_size": 2,
        "max_steps": 1,
    }
    for method, source, trainer, extra in (
        ("grpo", data[FAMILY], grpo, {"tools": False, "task": "spatial", "max_samples": 2}),
        ("dpo", prefs, {"max_steps": 1, "per_device_train_batch_size": 2}, {}),
    ):
        out = tmp_path / method
        spy = GradientSpy()
        recipe = _recipe(tiny_vlm(FAMILY), source, out, method=method, trainer=trainer, **extra)
        train(recipe, console=False, callbacks=[spy.callback()])
        assert spy.linker.recorded, method  # the loss forwards linked the prompts' boxes
        assert (out / WEIGHTS_FILE).is_file() and (out / CONFIG_FILE).is_file()
        if method == "dpo":  # GRPO's first step has zero advantages (a random model earns no reward)
            assert spy.steps and all(spy.steps[0].values()), spy.steps
            saved = load_file(str(out / WEIGHTS_FILE))
            assert all(not torch.equal(saved[k], spy.initial[k]) for k in saved)


def _check(data: Any, family: str = FAMILY, **over: Any) -> int:
    recipe = load_recipe(
        None,
        {"method": "sft", "model": "x", "profile": family, "data": ["d"], "spatial_linking": True, **over},
    )
    return check_spatial_data(recipe, data, get_profile(family, **BUDGET))


def test_data_that_cannot_link_is_one_line_naming_sample_and_field(
    data: dict[str, Path], tmp_path: Path
) -> None:
    ds = open_dataset(data[FAMILY])
    assert _check(ds) == len(ds)
    sample = ds[0]["sample_id"]

    def edited(text: Any = None, refer: Any = None) -> Any:
        def change(row: dict[str, Any], k: int) -> dict[str, Any]:
            if k == 0 and text is not None:
                row["messages"][0]["content"][1]["text"] = text(row["messages"][0]["content"][1]["text"])
            if k == 0 and refer is not None:
                row["refer_boxes"] = refer
            return row

        return ds.map(change, with_indices=True)

    cases = [
        (
            edited(text=lambda t: t.replace("<|box_end|>", "", 1)),
            "do not pair up|<\\|box_end\\|>",
            "messages",
        ),
        (
            edited(text=lambda t: t.replace("<|box_start|>[", "<|box_start|>[9999, ", 1)),
            "four numbers",
            "messages",
        ),
        (edited(refer=[[0, 0, 1, 1]] * 3), "do not pair up with refer_boxes", "refer_boxes"),
        (
            edited(
                text=lambda t: t.replace(
                    "<|box_start|>[", "<|box_start|>[0, 0, 9999, 9999]<|box_end|> <|box_start|>[", 1
                )
            ),
            "outside the image",
            "messages",
        ),
    ]
    for broken, message, field in cases[:3]:
        with pytest.raises(HoidataError, match=message) as e:
            _check(broken)
        assert sample in str(e.value) and field in str(e.value) and "\n" not in str(e.value)
    broken, message, field = cases[3]
    with pytest.raises(HoidataError, match=message) as e:
        _check(broken.remove_columns(["refer_boxes"]))
    assert sample in str(e.value) and field in str(e.value)
    with pytest.raises(HoidataError, match="no prompt holds"):
        _check(open_dataset(data["referring"]))
    with pytest.raises(HoidataError, match="pixel budget"):
        recipe = load_recipe(
            None, {"method": "sft", "model": "x", "profile": FAMILY, "data": ["d"], "spatial_linking": True}
        )
        check_spatial_data(
            recipe, ds, get_profile(FAMILY)
        )  # the data's boxes are on the tiny budget's images
    with pytest.raises(HoidataError, match="use_vllm"):
        _check(ds, method="grpo", trainer={"use_vllm": True})


def test_cli_refuses_data_without_box_tokens_before_loading_the_model(
    data: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    recipe = tmp_path / "r.yaml"
    recipe.write_text(
        f"method: sft\nmodel: not/loaded\nprofile: {FAMILY}\ndata: [{data['referring']}]\n"
        f"spatial_linking: {{heads: 4}}\nmin_pixels: {BUDGET['min_pixels']}\nmax_pixels: {BUDGET['max_pixels']}\n"
    )
    assert _cli(["train", "sft", "--config", str(recipe)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no prompt holds <|box_start|>" in err


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (False, None),
        (True, {"heads": 8, "mlp_ratio": 0.5, "attn_dim": None, "identity_init": False}),
        (
            {"heads": 4, "attn_dim": 64, "identity_init": True},
            {"heads": 4, "mlp_ratio": 0.5, "attn_dim": 64, "identity_init": True},
        ),
        ({"heads": 3, "attn_dim": 64}, "must divide by heads"),
        ({"head": 8}, "unknown spatial_linking keys"),
        ("yes", "must be a mapping"),
        ({"mlp_ratio": 0}, "mlp_ratio must be positive"),
    ],
)
def test_the_recipe_key(value: Any, expected: Any, tmp_path: Path) -> None:
    base = {"method": "sft", "model": "m", "data": ["d"], "spatial_linking": value}
    if isinstance(expected, str):
        with pytest.raises(HoidataError, match=expected):
            load_recipe(None, base)
        return
    recipe = load_recipe(None, base)
    got = recipe.to_dict()["spatial_linking"]
    assert got == expected
    recipe.save(tmp_path / "r.yaml")  # the effective recipe, as every process of a launch reads it
    assert load_recipe(tmp_path / "r.yaml").to_dict()["spatial_linking"] == expected
