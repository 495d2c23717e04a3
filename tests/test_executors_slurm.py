"""``--executor slurm``: the sbatch array and merge scripts, and a job run task by task.

No Slurm here: the scripts are read, a stand-in ``sbatch`` records the submissions, and the
array's tasks are run by hand (``bash array.sbatch`` with Slurm's array variables set), then the
merge script; the dataset equals a local run's.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from hoidata.errors import HoidataError
from hoidata.executors import SlurmArray, array_task
from hoidata.io import ShardSpec, read_manifest, read_table


def _hoidata(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "hoidata", *args], capture_output=True, text=True, env={**os.environ, **env}
    )


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from hoidata.demo import make_raw

    root = tmp_path_factory.mktemp("slurm-raw")
    files = make_raw(root, n_train=12, n_test=1)
    return files["train"], root / "images" / "train"


def _convert(raw: tuple[Path, Path], out: Path, *extra: str) -> list[str]:
    annotations, images = raw
    args = ["convert", "hico", "-a", str(annotations), "--split", "train", "-i", str(images)]
    return [*args, "--shard-size", "2", *extra, "-o", str(out)]


def test_every_gpu_stage_asks_its_workers_gpus(tmp_path: Path) -> None:
    """gen-prefs holds a vLLM engine of --tp GPUs, imagine a diffusers pipeline on one CUDA device;
    a CPU backend asks none."""
    data, out = str(tmp_path / "in"), str(tmp_path / "out")
    slurm = ["--executor", "slurm", "--dp", "2", "--dry-run", "-o", out]
    for args, gres in (
        (["gen-prefs", data, "--engine", "vllm", "--model", "M", "--tp", "2"], "#SBATCH --gres=gpu:2"),
        (
            ["imagine", data, "--backend", "diffusers", "--model", "M", "--device", "cuda"],
            "#SBATCH --gres=gpu:1",
        ),
        (["imagine", data], None),
    ):
        r = _hoidata([*args, *slurm])
        assert r.returncode == 0, r.stderr
        array = r.stdout.split("\n# ")[0]
        assert (gres in array) if gres else ("--gres" not in array), array


def test_array_task_reads_slurms_variables() -> None:
    assert array_task({}) is None
    assert array_task({"SLURM_ARRAY_TASK_ID": "2", "SLURM_ARRAY_TASK_COUNT": "4"}) == (2, 4)
    # an array numbered from 1 (--array=1-4) still gives parts 0..3
    assert array_task(
        {"SLURM_ARRAY_TASK_ID": "1", "SLURM_ARRAY_TASK_MIN": "1", "SLURM_ARRAY_TASK_MAX": "4"}
    ) == (0, 4)
    with pytest.raises(HoidataError, match="outside the array"):
        array_task({"SLURM_ARRAY_TASK_ID": "4", "SLURM_ARRAY_TASK_COUNT": "4"})
    with pytest.raises(HoidataError, match="must be numbers"):
        array_task({"SLURM_ARRAY_TASK_ID": "x", "SLURM_ARRAY_TASK_COUNT": "4"})


def test_dry_run_prints_the_array_and_the_merge(tmp_path: Path) -> None:
    args = ["gen-cot", str(tmp_path / "boxes"), "--engine", "vllm", "--model", "M", "--tp", "4", "--dp", "3"]
    args += ["--executor", "slurm", "--slurm-partition", "gpu", "--slurm-time", "12:00:00"]
    args += ["--slurm-options", "account=hoi,qos=high", "--slurm-setup", "module load cuda", "--dry-run"]
    r = _hoidata([*args, "--out", str(tmp_path / "cot")])
    assert r.returncode == 0, r.stderr
    array, merge, submit = r.stdout.split("\n# ")[0], r.stdout.split("\n# ")[1], r.stdout.split("\n# ")[2]
    assert "#SBATCH --array=0-2" in array  # --dp 3: three tasks
    assert "#SBATCH --gres=gpu:4" in array and "#SBATCH --cpus-per-task=1" in array  # --tp 4 GPUs each
    for line in ("--partition=gpu", "--time=12:00:00", "--account=hoi", "--qos=high"):
        assert f"#SBATCH {line}" in array
    assert f"#SBATCH --output={tmp_path}/cot.slurm/logs/%A_%a.out" in array
    assert f"cd {os.getcwd()}" in array and "module load cuda" in array and "set -euo pipefail" in array
    command = array.strip().splitlines()[-1]
    assert command.startswith(f"exec {sys.executable} -m hoidata gen-cot ")
    assert command.endswith(" --workers 1 --dp 1 --shard 0/1 --executor slurm")
    for gone in ("--dry-run", "--slurm-partition", "--slurm-setup", "--dp 3"):
        assert gone not in command
    assert "--gres" not in merge and "#SBATCH --kill-on-invalid-dep=yes" in merge
    assert merge.strip().splitlines()[-1].endswith(" --workers 1 --dp 1 --executor local --shard 0/1")
    assert "--dependency=afterok:ARRAY_JOB_ID" in submit
    assert not (tmp_path / "cot.slurm").exists() and not (tmp_path / "cot").exists()  # nothing written


def test_a_share_of_a_job_gets_no_merge() -> None:
    slurm = SlurmArray(2, Path("out"), dry_run=True)
    assert "--shard 1/2 --executor slurm" in slurm.array_script(["x", "--shard", "1/2"], "n")


def test_no_sbatch_is_one_line_and_exit_2(tmp_path: Path) -> None:
    r = _hoidata(
        [
            "build-sft",
            "referring",
            str(tmp_path),
            "--executor",
            "slurm",
            "--workers",
            "2",
            "-o",
            str(tmp_path / "o"),
        ],
        PATH=str(Path(sys.executable).parent),
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "sbatch not found" in r.stderr


def test_array_tasks_run_by_hand_then_the_merge_equal_a_local_run(
    raw: tuple[Path, Path], tmp_path: Path
) -> None:
    local = tmp_path / "local"
    assert _hoidata(_convert(raw, local)).returncode == 0
    # a stand-in sbatch: records its arguments, answers a job id
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(f'#!/bin/sh\necho "$@" >> {tmp_path / "submitted"}\necho 4242\n')
    sbatch.chmod(sbatch.stat().st_mode | stat.S_IEXEC)
    out = tmp_path / "array"
    path = f"{bin_dir}{os.pathsep}{os.environ['PATH']}"
    r = _hoidata(_convert(raw, out, "--executor", "slurm", "--workers", "3"), PATH=path)
    assert r.returncode == 0, r.stderr
    assert "submitted array job 4242 (3 tasks) and merge job 4242" in r.stdout
    folder = tmp_path / "array.slurm"
    submitted = (tmp_path / "submitted").read_text().splitlines()
    assert submitted == [
        f"--parsable {folder / 'array.sbatch'}",
        f"--parsable --dependency=afterok:4242 {folder / 'merge.sbatch'}",
    ]
    assert (folder / "logs").is_dir() and not out.exists()  # submitted only
    for task in (2, 0, 1):  # the array's tasks, in any order, as Slurm runs them
        env = {**os.environ, "SLURM_ARRAY_TASK_ID": str(task), "SLURM_ARRAY_TASK_COUNT": "3"}
        done = subprocess.run(["bash", str(folder / "array.sbatch")], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
    done = subprocess.run(["bash", str(folder / "merge.sbatch")], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    manifest = read_manifest(out)
    assert manifest.counts == read_manifest(local).counts and len(manifest.shards) == 6
    assert read_table(out).to_pylist() == read_table(local).to_pylist()
    assert manifest.config == read_manifest(local).config


def test_the_parts_of_a_share_split_exactly_that_share() -> None:
    """``--shard i/N`` with ``--dp``/``--workers``/an array: its parts own its shards, each once, so
    machines that split a job differently (one with --dp 2, one without) still cover it."""
    assert str(ShardSpec.parse("1/2").part(2, 3)) == "5/6"
    for index, count, parts in ((0, 2, 2), (1, 2, 2), (2, 3, 4), (0, 1, 3), (4, 5, 2)):
        share = ShardSpec(index, count)
        owners = [[j for j in range(parts) if share.part(j, parts).owns(k)] for k in range(120)]
        assert all(len(o) == (1 if share.owns(k) else 0) for k, o in enumerate(owners))


def test_machines_may_split_their_share_differently_and_main_args_reach_the_workers(
    raw: tuple[Path, Path], tmp_path: Path
) -> None:
    """One machine runs ``--shard 0/2`` as two local workers, the other ``--shard 1/2`` alone: the
    job completes and equals one process. Workers run the arguments ``main([...])`` was given, not
    the calling script's own."""
    assert _hoidata(_convert(raw, tmp_path / "one")).returncode == 0
    split = tmp_path / "split"
    script = (
        "import sys; from hoidata.cli import main; sys.argv = ['caller.py', '--not-for-hoidata']; "
        f"main({_convert(raw, split, '--shard', '0/2', '--workers', '2')!r})"
    )
    first = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    second = _hoidata(_convert(raw, split, "--shard", "1/2"))
    assert second.returncode == 0, second.stderr
    assert read_manifest(split).counts == read_manifest(tmp_path / "one").counts
    assert read_table(split).to_pylist() == read_table(tmp_path / "one").to_pylist()
