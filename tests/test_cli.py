"""The command line derives every stage option from its config dataclass; `--config` files and
flags combine in one order; the app lists its commands in pipeline order without importing them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
import typer
from child_process import said

from hoidata.cli.main import COMMANDS, app
from hoidata.cli.options import RunOptions
from hoidata.cli.startup import GEN0_THRESHOLD
from hoidata.engines.options import EngineOptions
from hoidata.options import config_fields
from hoidata.pipelines.boxes import BoxesConfig
from hoidata.pipelines.build_sft import BuildSftConfig
from hoidata.pipelines.convert import ConvertConfig
from hoidata.pipelines.filter import FilterPrefsConfig, FilterSftConfig
from hoidata.pipelines.gen_cot import GenCotConfig
from hoidata.pipelines.predict import PredictConfig

STAGES = {
    ("convert", "hico"): [ConvertConfig, RunOptions],
    ("convert", "swig"): [ConvertConfig, RunOptions],
    ("convert", "hoiqa"): [ConvertConfig, RunOptions],
    ("boxes",): [BoxesConfig, RunOptions],
    ("build-sft",): [BuildSftConfig, RunOptions],
    ("gen-cot",): [GenCotConfig, EngineOptions, RunOptions],
    ("filter", "sft"): [FilterSftConfig, RunOptions],
    ("filter", "prefs"): [FilterPrefsConfig, RunOptions],
    ("predict",): [PredictConfig, EngineOptions, RunOptions],
}


def command(path: tuple[str, ...]) -> Any:
    root = typer.main.get_command(app)
    ctx = typer.Context(root)
    cmd: Any = root
    for name in path:
        cmd = cmd.get_command(ctx, name)  # type: ignore[attr-defined]
    return cmd


def cli_value(param: Any) -> object:
    """A parameter's default as the command line would give it (a choice's text, not its enum)."""
    value = param.default
    return value.value if hasattr(value, "value") else value


@pytest.mark.parametrize("path", list(STAGES), ids=["-".join(p) for p in STAGES])
def test_every_cli_default_is_its_dataclass_default(path: tuple[str, ...]) -> None:
    params = {p.name: p for p in command(path).params}
    seen = 0
    for cls in STAGES[path]:
        for f in config_fields(cls):
            if f.name not in params:
                continue
            seen += 1
            param = params[f.name]
            if f.info.required or f.info.argument:
                assert param.default is None or f.info.argument, f.name
                continue
            value = cli_value(param)
            assert f.from_text(value) == f.default, (path, f.name, value, f.default)
            assert f.info.help and f.info.help in (param.help or ""), (path, f.name)  # type: ignore[attr-defined]
    assert seen >= 3  # the command really offers its config's options


def test_every_stage_offers_shard_overwrite_and_config() -> None:
    for path in STAGES:
        names = {p.name for p in command(path).params}
        assert {"shard", "overwrite", "config_file"} <= names, path


def test_summaries_are_the_commands_first_doc_lines() -> None:
    for name, entry in COMMANDS.items():
        cmd = command((name,))
        text = (cmd.help or "").strip().splitlines()[0]
        assert text == entry.summary, name


def test_help_lists_commands_in_pipeline_order_and_imports_no_command() -> None:
    code = (
        "import sys; sys.argv=['hoidata','--help']\n"
        "from hoidata.cli import main\n"
        "try: main()\n"
        "except SystemExit: pass\n"
        "print('LOADED', sorted(m for m in sys.modules if m.startswith('hoidata.') and "
        "m.split('.')[1] not in ('cli', 'errors')))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    lines = run.stdout.split("Commands:")[1].splitlines()
    listed = [line.split()[0] for line in lines if line.startswith("  ") and not line.startswith("   ")]
    assert [n for n in listed if n in COMMANDS] == list(COMMANDS)
    assert "<bool>" not in run.stdout
    loaded = run.stdout.split("LOADED")[1]
    assert "pipelines" not in loaded and "eval" not in loaded and "trainers" not in loaded, loaded


def test_config_file_then_flags(demo_canonical: Any, tmp_path: Path) -> None:
    """Defaults < the YAML file < flags on the command line; the manifest records the result."""
    from hoidata.cli import main
    from hoidata.io import read_manifest

    cfg = tmp_path / "boxes.yaml"
    cfg.write_text("union-pad: 4\nno_object: 'null'\nprofile: qwen3-vl\n")
    out = tmp_path / "b"
    argv = ["boxes", str(demo_canonical(4)), "-o", str(out), "--config", str(cfg), "--profile", "qwen2-vl"]
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code in (0, None)
    recorded = read_manifest(out).config
    assert (
        recorded["union_pad"] == 4 and recorded["no_object"] == "null" and recorded["profile"] == "qwen2-vl"
    )
    cfg.write_text("union_padding: 4\n")
    bad = subprocess.run(
        [sys.executable, "-m", "hoidata", *argv[:3], str(tmp_path / "c"), "--config", str(cfg)],
        capture_output=True,
        text=True,
    )
    assert bad.returncode == 2 and "union_padding" in bad.stderr and str(cfg) in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_counts_and_sizes_below_their_least_value_are_one_line_errors(
    demo_canonical: Any, tmp_path: Path
) -> None:
    """A shard size of 0 once crashed in range(), --limit -1 dropped the last prompt, --dp 0 ran
    one process: each is refused before anything runs, from the command line or a config file."""
    data, out = str(demo_canonical(4)), str(tmp_path / "out")
    cfg = tmp_path / "gen.yaml"
    cfg.write_text("shard_size: 0\n")
    gen = ["gen-cot", data, "--engine", "openai", "--model", "m", "-o", out]
    for args, message in (
        ([*gen, "--shard-size", "0"], "--shard-size must be at least 1, got 0"),
        ([*gen, "--n", "0"], "--n must be at least 1"),
        ([*gen, "--max-turns", "0"], "--max-turns must be at least 1"),
        ([*gen, "--limit", "-1"], "--limit must be at least 0"),
        ([*gen, "--dp", "0"], "--dp must be at least 1"),
        ([*gen, "--config", str(cfg)], f"{cfg}"),
        (["imagine", data, "--dp", "-2", "-o", out], "--dp must be at least 1"),
        (
            ["convert", "hico", "-a", "x.json", "--shard-size", "0", "-o", out],
            "--shard-size must be at least 1",
        ),
    ):
        r = subprocess.run([sys.executable, "-m", "hoidata", *args], capture_output=True, text=True)
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and message in r.stderr, r.stderr
    assert not Path(out).exists()


def test_reruns_of_finished_stages_do_nothing(demo_canonical: Any, tmp_path: Path) -> None:
    """A Makefile's second run: every stage says so in one line, exits 0, and leaves its output as it was."""
    from hoidata.cli import main

    boxes_dir, sft_dir = tmp_path / "boxes", tmp_path / "sft"
    runs = [
        ["boxes", str(demo_canonical(4)), "-o", str(boxes_dir)],
        ["build-sft", "referring", str(boxes_dir), "-o", str(sft_dir)],
    ]
    for argv in runs:
        with pytest.raises(SystemExit) as first:
            main(argv)
        assert first.value.code in (0, None)
    for argv, out in zip(runs, (boxes_dir, sft_dir), strict=True):
        before = {p: p.read_bytes() for p in out.rglob("*") if p.is_file()}
        again = subprocess.run([sys.executable, "-m", "hoidata", *argv], capture_output=True, text=True)
        assert again.returncode == 0 and again.stderr == "", again.stderr
        assert again.stdout.strip().splitlines() == [f"{argv[0]}: {out} already complete, nothing to do"]
        assert {p: p.read_bytes() for p in out.rglob("*") if p.is_file()} == before


def test_config_file_holds_only_what_the_command_offers(reference: Path, tmp_path: Path) -> None:
    """A YAML value applies (null included); an option the command does not offer is one line, exit 2."""
    from hoidata.io import read_manifest

    annotations = reference / "hico" / "ppdm_test_hico_first100.json"
    cfg = tmp_path / "convert.yaml"
    cfg.write_text("image-check: false\nshard_size: 40\nsplit: null\n")
    base = [sys.executable, "-m", "hoidata", "convert", "hico", "-a", str(annotations), "--config", str(cfg)]
    done = subprocess.run([*base, "-o", str(tmp_path / "a")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(tmp_path / "a")
    assert len(manifest.shards) == 3 and manifest.config["image_check"] is False
    assert manifest.config["split"] == "test"  # null: read from the file name, as without the option
    cfg.write_text("image_check: false\nimage_size: 456x256\n")  # HOI-QA's option, not HICO-DET's
    refused = subprocess.run([*base, "-o", str(tmp_path / "b")], capture_output=True, text=True)
    assert refused.returncode == 2 and "image_size" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "b").exists()
    cfg.write_text("image_check: false\nbox_origin: two-based\n")  # a choice the command line refuses
    refused = subprocess.run([*base, "-o", str(tmp_path / "b")], capture_output=True, text=True)
    assert (
        refused.returncode == 2
        and "box_origin must be one of" in refused.stderr
        and str(cfg) in refused.stderr
    )


def test_data_stages_import_neither_torch_nor_numba() -> None:
    """convert, boxes and build-sft start light: no torch, and no compiled answer scanners (numba,
    ~0.3 s) that only scoring and evaluation use."""
    code = (
        "import sys\n"
        "import hoidata.cli.convert, hoidata.cli.boxes, hoidata.cli.build_sft\n"
        "import hoidata.pipelines.convert, hoidata.pipelines.boxes, hoidata.pipelines.build_sft\n"
        "print(sorted(m for m in ('torch', 'numba', 'transformers') if m in sys.modules))"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.strip() == "[]", run.stdout


def test_the_first_compiled_call_leaves_scipy_linalg_alone() -> None:
    """numba's first call loads its registries, which import scipy.linalg (0.2 s) to probe for BLAS;
    hoidata's kernels need none, so it stays out, and compiled linear algebra still works after."""
    code = (
        "import sys, numpy as np, numba\n"
        "from hoidata.rewards.greedy import PairArrays\n"
        "from hoidata.rewards.greedy_compiled import compiled_matches\n"
        "z = np.zeros((0, 4)); c = np.zeros((0, 2), np.int64); o = np.zeros(2, np.int64)\n"
        "s = PairArrays(o, z, z, c)\n"
        "tp = compiled_matches(s, s, labels=True, iou_threshold=0.5, max_ranked=9)\n"
        "print(tp.tolist(), 'numba.np.arraymath' in sys.modules, 'scipy.linalg' in sys.modules)\n"
        "dot = numba.njit(lambda a, b: np.dot(a, b))\n"
        "print(dot(np.eye(2), np.full((2, 2), 3.0)).tolist(), 'scipy.linalg' in sys.modules)"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert run.stdout.split("\n")[:2] == ["[0] True False", "[[3.0, 3.0], [3.0, 3.0]] True"], run.stdout


def test_the_command_line_keeps_numpy_off_huge_pages_unless_asked() -> None:
    """Huge pages asked for every large array stall short-lived stages where the kernel compacts
    memory on the fault; the command line turns numpy's request off, and a user's setting wins."""
    code = (
        "import os, sys\n"
        "from hoidata.cli import main\n"
        "try: main(['--help'])\n"
        "except SystemExit: pass\n"
        "print('SAID', os.environ['NUMPY_MADVISE_HUGEPAGE'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "NUMPY_MADVISE_HUGEPAGE"}
    assert said(code, env=env) == ["0"]
    assert said(code, env=env | {"NUMPY_MADVISE_HUGEPAGE": "1"}) == ["1"]


def test_boxes_runs_without_loading_pandas(demo_canonical: Any, tmp_path: Path) -> None:
    """pyarrow loads pandas (0.3 s) on its first ``pa.array`` or ``to_numpy`` wherever pandas is
    installed; boxes reads and builds its columns through Arrow's buffers, so it never does."""
    code = (
        "import sys\n"
        "from hoidata.cli import main\n"
        f"try: main(['boxes', {str(demo_canonical(4))!r}, '-o', {str(tmp_path / 'boxed')!r}])\n"
        "except SystemExit as e: assert not e.code, e.code\n"
        "print('SAID', 'pandas' in sys.modules)"
    )
    assert said(code) == ["False"]


def test_a_stage_process_skips_pandas_and_collects_less_a_caller_keeps_the_defaults(
    demo_canonical: Any, tmp_path: Path
) -> None:
    """build-sft still converts with ``pa.array`` / ``Table.from_pylist``, whose first call imports
    pandas (0.26 s). Run as the command (``main()``), the process answers pyarrow's look for it
    with "absent" and never loads it, collects cycles less often and not at its end; called with
    arguments (``main([...])``), nothing changes."""
    boxed = tmp_path / "boxed"
    subprocess.run(
        [sys.executable, "-m", "hoidata", "boxes", str(demo_canonical(4)), "-o", str(boxed)],
        check=True,
        capture_output=True,
    )

    def started(call: str, out: str) -> tuple[bool, tuple[int, int], bool]:
        """Whether pandas was loaded, the young generation's collection threshold before and after,
        and whether the objects alive at the end were frozen (the shutdown's collections skip them)."""
        args = ["build-sft", "referring", str(boxed), "-o", str(tmp_path / out)]
        code = (
            "import gc, sys\n"
            f"sys.argv = ['hoidata', *{args!r}]\n"
            "from hoidata.cli import main\n"
            "default = gc.get_threshold()[0]\n"
            f"try: {call}\n"
            "except SystemExit as e: assert not e.code, e.code\n"
            "print('SAID', 'pandas' in sys.modules, default, gc.get_threshold()[0], gc.get_freeze_count() > 0)"
        )
        loaded, default, threshold, frozen = said(code)
        return loaded == "True", (int(default), int(threshold)), frozen == "True"

    loaded, (default, threshold), frozen = started("main()", "as-command")
    assert not loaded and frozen and threshold == GEN0_THRESHOLD > default
    assert started("main(sys.argv[1:])", "as-call") == (True, (default, default), False)
    rows = [pq.read_table(tmp_path / out / "data").to_pylist() for out in ("as-command", "as-call")]
    assert rows[0] == rows[1] and rows[0]


def test_a_command_validates_its_options_without_pydantic(demo_canonical: Any, tmp_path: Path) -> None:
    """typer 0.29 validates every option through pydantic, 0.1-0.15 s at each start: the pin below
    it holds, and nothing else of ours loads pydantic for a stage."""
    canonical = demo_canonical(2)
    args = ["boxes", str(canonical), "-o", str(tmp_path / "boxed")]
    code = (
        "import sys\n"
        f"sys.argv = ['hoidata', *{args!r}]\n"
        "from hoidata.cli import main\n"
        "try: main()\n"
        "except SystemExit as e: assert not e.code, e.code\n"
        "print('SAID', 'pydantic' in sys.modules)"
    )
    assert said(code) == ["False"]
    assert pq.read_table(tmp_path / "boxed" / "data").num_rows == pq.read_table(canonical / "data").num_rows


def test_a_process_that_loaded_a_model_runtime_ends_as_python_ends_it() -> None:
    """The freeze at a command's end is skipped where torch was loaded: model runtimes (vLLM's
    workers, devices) may clean up in finalizers of objects in cycles."""
    code = (
        "import gc, sys, types\n"
        "from hoidata.cli.startup import skip_final_collections\n"
        "if sys.argv[1] == 'torch': sys.modules['torch'] = types.ModuleType('torch')\n"
        "skip_final_collections()\n"
        "print('SAID', gc.get_freeze_count() > 0)"
    )
    assert said(code, "none") == ["True"]
    assert said(code, "torch") == ["False"]


def test_pandas_works_as_before_once_pyarrows_look_is_skipped() -> None:
    """Skipping the look refuses pandas to nobody: it imports, and pyarrow converts to and from it;
    only pandas' missing-value markers in object data stay unrecognised (without the skip they are)."""
    code = """
import sys
from hoidata.cli.startup import skip_pandas_probe
skip_pandas_probe()
import pyarrow as pa
pa.Table.from_pylist([{"a": 1.5, "b": "x"}]).to_pylist()
assert "pandas" not in sys.modules
import pandas as pd
df = pd.DataFrame({"a": [1.0, None], "b": ["x", None]})
assert pa.Table.from_pandas(df).to_pandas().equals(df)
assert pa.array(pd.Series([1.0, None])).null_count == 1  # pyarrow knows pandas now
try:  # the documented limit: pyarrow's C++ side keeps its first answer
    pa.Table.from_pandas(pd.DataFrame({"x": pd.Series([1, pd.NA], dtype=object)}))
except pa.ArrowInvalid:
    print("OK")
"""
    default = """
import pandas as pd, pyarrow as pa
assert pa.Table.from_pandas(pd.DataFrame({"x": pd.Series([1, pd.NA], dtype=object)})).column(0).null_count == 1
print("OK")
"""
    for program in (code, default):
        run = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True)
        assert run.stdout.strip() == "OK", run.stderr


@pytest.mark.parametrize(
    ("args", "command"),
    [(["--debug", "build-sft", "x"], "build-sft"), (["train", "sft"], "train"), (["--help"], None)],
)
def test_the_command_is_the_first_word_that_is_no_option(args: list[str], command: str | None) -> None:
    from hoidata.cli.startup import KEEP_DEFAULTS, command_of

    assert command_of(args) == command
    assert {"train", "push", "demo"} <= KEEP_DEFAULTS <= set(COMMANDS)
