"""Launch commands (checked by accelerate's own parser and CLI), shipped accelerate configs, LoRA merge."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from tiny_fixtures import TinyVLM

from hoidata.errors import HoidataError
from hoidata.trainers.launch import (
    BACKENDS,
    RUN_MODULE,
    config_file,
    default_backend,
    format_command,
    launch_command,
    needs_launcher,
    validate_command,
)

ACCELERATE = Path(sys.executable).parent / "accelerate"
RECIPE = Path("runs/grpo 7b/recipe.yaml")  # a space: the printed command must quote it


def _opt(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


# ---- launch commands --------------------------------------------------------------------------------


def test_eight_gpu_zero3_command_is_printed_and_accepted_by_accelerate(capsys: pytest.CaptureFixture) -> None:
    argv = launch_command(RECIPE, num_gpus=8, backend="zero3")
    assert argv == [
        "accelerate",
        "launch",
        "--config_file",
        str(config_file("zero3")),
        "--num_processes",
        "8",
        "--num_machines",
        "1",
        "--machine_rank",
        "0",
        "-m",
        RUN_MODULE,
        str(RECIPE),
    ]
    assert launch_command(RECIPE, num_gpus=8) == argv  # zero3 is the multi-GPU default
    line = format_command(argv)
    print(line)
    assert capsys.readouterr().out.strip() == line
    assert "'runs/grpo 7b/recipe.yaml'" in line
    import shlex

    assert shlex.split(line) == argv  # copy-pasteable: the shell gives back the same argv

    args = validate_command(argv)  # accelerate's own launch parser, nothing run
    assert args.config_file == str(config_file("zero3"))
    assert (args.num_processes, args.num_machines, args.machine_rank) == (8, 1, 0)
    assert args.module is True
    assert args.training_script == RUN_MODULE
    assert args.training_script_args == [str(RECIPE)]


def test_every_option_of_the_command_is_in_accelerate_launch_help() -> None:
    argv = launch_command(
        RECIPE, num_gpus=8, nodes=2, node_rank=1, main_process_ip="10.0.0.1", mixed_precision="bf16"
    )
    help_text = subprocess.run(
        [str(ACCELERATE), "launch", "--help"], capture_output=True, text=True, check=True, timeout=120
    ).stdout
    known = set(re.findall(r"(?<![\w-])(--?[A-Za-z][\w]*)", help_text))
    used = [a for a in argv[2:] if a.startswith("-")]
    assert used == [
        "--config_file",
        "--num_processes",
        "--num_machines",
        "--machine_rank",
        "--main_process_ip",
        "--main_process_port",
        "--mixed_precision",
        "-m",
    ]
    missing = [a for a in used if a not in known]
    assert not missing, f"not in `accelerate launch --help`: {missing}"
    assert "total number of processes" in help_text  # --num_processes counts all machines


def test_two_nodes_of_eight_gpus() -> None:
    commands = [
        launch_command(
            RECIPE, num_gpus=8, nodes=2, node_rank=r, main_process_ip="10.1.2.3", main_process_port=29600
        )
        for r in (0, 1)
    ]
    for rank, argv in enumerate(commands):
        assert _opt(argv, "--num_processes") == "16"  # the total over machines, not per node
        assert _opt(argv, "--num_machines") == "2"
        assert _opt(argv, "--machine_rank") == str(rank)
        assert _opt(argv, "--main_process_ip") == "10.1.2.3"
        assert _opt(argv, "--main_process_port") == "29600"
        args = validate_command(argv)
        assert (args.num_processes, args.num_machines, args.machine_rank) == (16, 2, rank)
        assert (args.main_process_ip, args.main_process_port) == ("10.1.2.3", 29600)
    assert [a for a in commands[0] if a != "0"] == [
        a for a in commands[1] if a != "1"
    ]  # only the rank differs


@pytest.mark.parametrize("backend", BACKENDS)
def test_each_backend_uses_its_config(backend: str) -> None:
    argv = launch_command(RECIPE, num_gpus=4, backend=backend, mixed_precision="fp16")
    assert _opt(argv, "--config_file") == str(config_file(backend))
    assert _opt(argv, "--mixed_precision") == "fp16"
    assert validate_command(argv).mixed_precision == "fp16"


def test_single_process_needs_no_launcher() -> None:
    assert not needs_launcher(1, 1)
    assert needs_launcher(2, 1) and needs_launcher(1, 2)
    assert default_backend(1) is None
    assert default_backend(2) == "zero3"
    # one GPU with a sharded backend is allowed (e.g. ZeRO-3 offload), plain DDP is not
    assert _opt(launch_command(RECIPE, num_gpus=1, backend="zero3"), "--num_processes") == "1"
    with pytest.raises(HoidataError, match="ddp needs at least 2 processes"):
        launch_command(RECIPE, num_gpus=1, backend="ddp")


def test_single_node_port_only_when_not_default() -> None:
    assert "--main_process_port" not in launch_command(RECIPE, num_gpus=2)
    argv = launch_command(RECIPE, num_gpus=2, main_process_port=29501)  # a second job on the same machine
    assert _opt(argv, "--main_process_port") == "29501"
    assert "--main_process_ip" not in argv


def test_own_config_file_replaces_the_shipped_one(tmp_path: Path) -> None:
    own = tmp_path / "cluster.yaml"
    own.write_text(config_file("zero2").read_text())
    argv = launch_command(RECIPE, num_gpus=2, config=own)
    assert _opt(argv, "--config_file") == str(own)
    validate_command(argv)
    with pytest.raises(HoidataError, match="accelerate config file not found"):
        launch_command(RECIPE, num_gpus=2, config=tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_gpus": 0}, r"num_gpus must be >= 1, got 0"),
        ({"num_gpus": -8}, r"num_gpus must be >= 1"),
        ({"num_gpus": 2.0}, r"num_gpus must be an integer"),
        ({"num_gpus": True}, r"num_gpus must be an integer"),
        ({"num_gpus": 8, "nodes": 0}, r"nodes must be >= 1"),
        ({"num_gpus": 8, "nodes": 2}, r"2 nodes need main_process_ip"),
        ({"num_gpus": 8, "nodes": 2, "node_rank": 2, "main_process_ip": "h"}, r"node_rank must be in 0\.\.1"),
        ({"num_gpus": 8, "node_rank": -1}, r"node_rank must be >= 0"),
        ({"num_gpus": 8, "node_rank": 1}, r"node_rank must be in 0\.\.0"),
        (
            {"num_gpus": 8, "backend": "zero4"},
            r"unknown backend 'zero4'; choose one of ddp, zero2, zero3, fsdp",
        ),
        ({"num_gpus": 8, "backend": "deepspeed"}, r"unknown backend"),
        ({"num_gpus": 8, "main_process_port": 70000}, r"main_process_port must be in 1\.\.65535"),
        (
            {"num_gpus": 8, "mixed_precision": "bfloat16"},
            r"mixed_precision must be one of no, fp16, bf16, fp8",
        ),
    ],
)
def test_bad_launch_inputs_are_one_line_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(HoidataError, match=message) as err:
        launch_command(RECIPE, **kwargs)
    assert "\n" not in str(err.value)


def test_unknown_backend_has_no_config() -> None:
    with pytest.raises(HoidataError, match="unknown backend 'tpu'"):
        config_file("tpu")


def test_accelerate_parser_rejects_what_it_does_not_know() -> None:
    good = launch_command(RECIPE, num_gpus=8)
    i = good.index("--num_processes")
    cases = {
        "unrecognized arguments: --num_gpus": [*good[:i], "--num_gpus", "8", *good[i:]],
        "invalid int value: 'eight'": [*good[: i + 1], "eight", *good[i + 2 :]],
        "invalid choice: 'bfloat16'": [*good[:i], "--mixed_precision", "bfloat16", *good[i:]],
    }
    for message, argv in cases.items():
        with pytest.raises(HoidataError, match=re.escape(message)) as err:
            validate_command(argv)
        assert "\n" not in str(err.value)
    with pytest.raises(HoidataError, match="not an accelerate launch command"):
        validate_command(["torchrun", "--nproc_per_node", "8", "x.py"])


def test_validation_checks_sizes_and_config(tmp_path: Path) -> None:
    good = launch_command(RECIPE, num_gpus=8, nodes=2, node_rank=0, main_process_ip="h")

    def swap(argv: list[str], name: str, value: str) -> list[str]:
        out = list(argv)
        out[out.index(name) + 1] = value
        return out

    with pytest.raises(HoidataError, match="a multiple of --num_machines 2"):
        validate_command(swap(good, "--num_processes", "15"))
    with pytest.raises(HoidataError, match=r"--machine_rank 2 is outside 0\.\.1"):
        validate_command(swap(good, "--machine_rank", "2"))
    no_ip = [a for a in good if a not in ("--main_process_ip", "h")]
    with pytest.raises(HoidataError, match="needs --main_process_ip"):
        validate_command(no_ip)
    bad_cfg = tmp_path / "bad.yaml"
    bad_cfg.write_text("distributed_type: DEEPSPEED\nnum_gpus: 8\n")
    with pytest.raises(
        HoidataError, match=r"accelerate cannot read the config: .*unknown keys \(\['num_gpus'\]\)"
    ):
        validate_command(swap(good, "--config_file", str(bad_cfg)))
    with pytest.raises(HoidataError, match="does not exist"):
        validate_command(swap(good, "--config_file", str(tmp_path / "none.yaml")))


@pytest.mark.parametrize("backend", BACKENDS)
def test_accelerate_pre_launch_merge_sees_the_backend(backend: str) -> None:
    """What ``accelerate launch`` does before it starts processes: merge the config and the options.

    A private accelerate helper, so only the tests use it: a version that drops it fails here.
    """
    from accelerate.commands.launch import _validate_launch_command, launch_command_parser

    argv = launch_command(RECIPE, num_gpus=8, nodes=2, node_rank=1, main_process_ip="h", backend=backend)
    args, _, _ = _validate_launch_command(validate_command(argv))
    assert (args.num_processes, args.num_machines, args.machine_rank) == (16, 2, 1)  # the command wins
    assert args.mixed_precision == "bf16"
    assert (args.multi_gpu, args.use_deepspeed, args.use_fsdp) == (
        backend == "ddp",
        backend in ("zero2", "zero3"),
        backend == "fsdp",
    )
    if backend == "zero3":
        assert (args.zero_stage, args.zero3_init_flag, args.zero3_save_16bit_model) == (3, True, True)
    if backend == "fsdp":
        assert int(args.fsdp_version) == 2

    # the configs' num_processes: -1 placeholder makes accelerate refuse a command without the size
    no_size = [a for a in argv if a not in ("--num_processes", "16")]
    with pytest.raises(ValueError, match="manually pass in `--num_processes`"):
        _validate_launch_command(launch_command_parser().parse_args(no_size[2:]))
    with pytest.raises(HoidataError, match="needs --num_processes"):
        validate_command(no_size)


# ---- shipped accelerate configs ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("backend", "distributed_type"),
    [("ddp", "MULTI_GPU"), ("zero2", "DEEPSPEED"), ("zero3", "DEEPSPEED"), ("fsdp", "FSDP")],
)
def test_shipped_configs_load_in_accelerate(backend: str, distributed_type: str) -> None:
    from accelerate.commands.config.config_args import ClusterConfig, load_config_from_file

    path = config_file(backend)
    assert path.parent.name == "accelerate" and path.parent.parent.name == "trainers"
    text = path.read_text()
    assert text.startswith("# "), "each config opens with a comment saying when to use it"
    raw = yaml.safe_load(text)
    assert raw["num_processes"] == -1 and raw["num_machines"] == 1 and raw["machine_rank"] == 0
    cfg = load_config_from_file(str(path))  # raises on keys accelerate does not know
    assert isinstance(cfg, ClusterConfig)
    assert cfg.distributed_type.value == distributed_type
    assert cfg.mixed_precision == "bf16"
    assert cfg.num_processes == -1  # accelerate refuses to start unless --num_processes is given
    if backend in ("zero2", "zero3"):
        ds = cfg.deepspeed_config
        assert ds["zero_stage"] == int(backend[-1])
        assert ds["deepspeed_multinode_launcher"] == "standard"
        assert ds["zero3_init_flag"] is (backend == "zero3")
        if backend == "zero3":
            assert ds["zero3_save_16bit_model"] is True  # checkpoints loadable without conversion
    if backend == "fsdp":
        fsdp = cfg.fsdp_config
        assert fsdp["fsdp_version"] == 2
        assert fsdp["fsdp_auto_wrap_policy"] == "TRANSFORMER_BASED_WRAP"
        assert fsdp["fsdp_state_dict_type"] == "FULL_STATE_DICT"
        assert "fsdp_transformer_layer_cls_to_wrap" not in fsdp  # the model's _no_split_modules
        assert fsdp["fsdp_activation_checkpointing"] is False  # TRL turns on the trainer's own


@pytest.mark.parametrize(
    ("family", "expected"),
    [
        ("qwen2.5-vl", {"Qwen2_5_VLDecoderLayer", "Qwen2_5_VLVisionBlock"}),
        ("qwen3-vl", {"Qwen3VLTextDecoderLayer", "Qwen3VLVisionBlock"}),
    ],
)
def test_fsdp_wraps_decoder_layers_and_vision_blocks(
    tiny_vlm: TinyVLM, family: str, expected: set[str]
) -> None:
    """The FSDP config names no classes: accelerate wraps ``_no_split_modules``, which must be these."""
    from transformers import AutoModelForImageTextToText

    model = AutoModelForImageTextToText.from_pretrained(tiny_vlm(family))
    assert set(model._no_split_modules) == expected
    present = {type(m).__name__ for m in model.modules()}
    assert expected <= present
    assert all(name in config_file("fsdp").read_text() for name in expected)  # the header names them


# ---- LoRA merge -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def adapter(tiny_vlm: TinyVLM, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A LoRA adapter on the tiny Qwen2.5-VL whose B weights are non-zero, so it changes the outputs."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForImageTextToText, AutoProcessor

    base_dir = tiny_vlm("qwen2.5-vl")
    processor = AutoProcessor.from_pretrained(base_dir)
    inputs = _inputs(processor)
    model = AutoModelForImageTextToText.from_pretrained(base_dir).eval()
    with torch.no_grad():
        base_logits = model(**inputs).logits.clone()
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules="all-linear"))
    torch.manual_seed(1)
    with torch.no_grad():
        touched = 0
        for name, p in peft_model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.2)
                touched += 1
    assert touched > 0
    peft_model.eval()
    with torch.no_grad():
        adapted_logits = peft_model(**inputs).logits.clone()
    out = tmp_path_factory.mktemp("adapter")
    peft_model.save_pretrained(out)
    processor.chat_template = processor.chat_template + "{# trained with a changed template #}"
    processor.save_pretrained(out)
    targets = set(peft_model.peft_config["default"].target_modules)
    return {
        "dir": out,
        "base": base_dir,
        "inputs": inputs,
        "base_logits": base_logits,
        "adapted_logits": adapted_logits,
        "targets": targets,
        "processor": processor,
    }


def _inputs(processor: Any) -> dict[str, Any]:
    from PIL import Image

    image = Image.new("RGB", (84, 56), (200, 30, 90))
    for x in range(0, 84, 7):
        image.putpixel((x, x % 56), (0, 255, 0))
    messages = [
        {
            "role": "user",
            "content": [{"type": "image", "image": image}, {"type": "text", "text": "ride horse?"}],
        }
    ]
    return dict(processor.apply_chat_template(messages, tokenize=True, return_dict=True, return_tensors="pt"))


def test_merged_model_equals_the_adapted_model(adapter: dict[str, Any], tmp_path: Path) -> None:
    import torch
    from transformers import AutoModelForImageTextToText, AutoProcessor

    from hoidata.trainers.merge import merge_lora

    cfg = json.loads((adapter["dir"] / "adapter_config.json").read_text())
    assert cfg["base_model_name_or_path"] == str(adapter["base"])  # found from the adapter alone
    assert any("visual" in t or "qkv" in t for t in adapter["targets"])  # the vision tower is adapted too

    out = merge_lora(adapter["dir"], tmp_path / "merged")
    assert out == tmp_path / "merged"
    assert not (out / "adapter_config.json").exists()
    merged = AutoModelForImageTextToText.from_pretrained(out).eval()
    assert not any("lora" in name for name, _ in merged.named_parameters())
    with torch.no_grad():
        logits = merged(**adapter["inputs"]).logits
    torch.testing.assert_close(logits, adapter["adapted_logits"], atol=1e-5, rtol=0)
    assert (logits - adapter["base_logits"]).abs().max() > 1e-2  # the adapter mattered

    # the processor is the adapter's (its changed chat template), copied byte for byte
    assert (out / "chat_template.jinja").read_bytes() == (adapter["dir"] / "chat_template.jinja").read_bytes()
    reloaded = AutoProcessor.from_pretrained(out)
    assert reloaded.chat_template.endswith("{# trained with a changed template #}")
    assert type(reloaded).__name__ == "Qwen2_5_VLProcessor"


def test_merge_with_explicit_base_and_processor_from_base(adapter: dict[str, Any], tmp_path: Path) -> None:
    import shutil

    import torch
    from transformers import AutoModelForImageTextToText

    from hoidata.trainers.merge import merge_lora

    bare = tmp_path / "bare-adapter"  # adapter weights only, no processor files
    bare.mkdir()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        shutil.copy2(adapter["dir"] / name, bare / name)
    cfg = json.loads((bare / "adapter_config.json").read_text())
    cfg["base_model_name_or_path"] = None
    (bare / "adapter_config.json").write_text(json.dumps(cfg))

    with pytest.raises(HoidataError, match="adapter names no base model; pass base_model"):
        merge_lora(bare, tmp_path / "m0")
    out = merge_lora(bare, tmp_path / "m1", base_model=str(adapter["base"]))
    with torch.no_grad():
        logits = AutoModelForImageTextToText.from_pretrained(out).eval()(**adapter["inputs"]).logits
    torch.testing.assert_close(logits, adapter["adapted_logits"], atol=1e-5, rtol=0)
    assert (out / "tokenizer.json").read_bytes() == (adapter["base"] / "tokenizer.json").read_bytes()
    assert (out / "chat_template.jinja").read_bytes() == (
        adapter["base"] / "chat_template.jinja"
    ).read_bytes()


def test_merge_rejects_what_is_not_a_lora_adapter(adapter: dict[str, Any], tmp_path: Path) -> None:
    from hoidata.trainers.merge import merge_lora

    with pytest.raises(HoidataError, match=r"not a LoRA adapter: no adapter_config\.json") as err:
        merge_lora(adapter["base"], tmp_path / "out")  # a full model directory
    assert "\n" not in str(err.value)
    assert str(adapter["base"]) in str(err.value)
    with pytest.raises(HoidataError, match="adapter directory not found"):
        merge_lora(tmp_path / "nowhere", tmp_path / "out")

    prefix = tmp_path / "prefix"
    prefix.mkdir()
    (prefix / "adapter_config.json").write_text(json.dumps({"peft_type": "PREFIX_TUNING"}))
    with pytest.raises(HoidataError, match="not a LoRA adapter: peft_type is 'PREFIX_TUNING'"):
        merge_lora(prefix, tmp_path / "out")
    (prefix / "adapter_config.json").write_text("{not json")
    with pytest.raises(HoidataError, match="not valid JSON"):
        merge_lora(prefix, tmp_path / "out")

    no_weights = tmp_path / "no-weights"
    no_weights.mkdir()
    (no_weights / "adapter_config.json").write_text((adapter["dir"] / "adapter_config.json").read_text())
    with pytest.raises(HoidataError, match="adapter has no weights"):
        merge_lora(no_weights, tmp_path / "out")

    full = tmp_path / "full"
    full.mkdir()
    (full / "config.json").write_text("{}")
    with pytest.raises(HoidataError, match="out_dir is not empty"):
        merge_lora(adapter["dir"], full)
    with pytest.raises(HoidataError, match="out_dir must differ from the adapter directory"):
        merge_lora(adapter["dir"], adapter["dir"], overwrite=True)
    with pytest.raises(HoidataError, match="cannot load base model"):
        merge_lora(adapter["dir"], tmp_path / "out2", base_model=str(tmp_path / "no-such-model"))
