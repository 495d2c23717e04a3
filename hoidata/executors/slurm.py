"""``--executor slurm``: a job as an sbatch array, and a merge step after it.

From a login node the command writes two scripts next to the output directory and submits them:
an array of ``workers`` tasks, each running the same command with ``--executor slurm``, and a
merge job that runs once the whole array has succeeded (``afterok``) and writes the manifest if
no task has (it runs the command on this machine's whole share, which by then has nothing left
to generate). ``--dry-run`` prints both scripts and the ``sbatch`` lines instead.

Run inside an array task, the command takes its part of the job from Slurm's variables:
task ``SLURM_ARRAY_TASK_ID`` of ``SLURM_ARRAY_TASK_COUNT`` (ids counted from
``SLURM_ARRAY_TASK_MIN``), within the job's own ``--shard i/N``. Each task holds ``gpus_each``
GPUs (Slurm sets ``CUDA_VISIBLE_DEVICES``) and ``cpus_each`` CPUs. Tasks write disjoint shards
of one output directory on a shared file system; a failed task is rerun by resubmitting the same
command (finished shards are skipped).
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from hoidata.errors import HoidataError
from hoidata.executors.base import without_options
from hoidata.io import ShardSpec


@dataclass(frozen=True)
class SlurmArray:
    """The array's shape and the options every task gets; ``out`` names the scripts and logs."""

    workers: int
    out: Path
    gpus_each: int = 0
    cpus_each: int = 1
    partition: str | None = None
    time_limit: str | None = None
    sbatch: tuple[str, ...] = ()  # more #SBATCH options, as "account=A" or "--account=A"
    setup: str | None = None  # shell lines each task runs first (module load ..., source ...)
    dry_run: bool = False
    python: str = sys.executable

    @property
    def folder(self) -> Path:
        return self.out.absolute().parent / f"{self.out.name}.slurm"

    def array_script(self, argv: list[str], name: str) -> str:
        """The array: task k runs part k of ``argv``'s share (``--executor slurm`` reads which)."""
        lines = self._header(name, "%A_%a.out", self.cpus_each, self.gpus_each)
        lines.insert(2, f"#SBATCH --array=0-{self.workers - 1}")
        return "\n".join([*lines, *self._body([*argv, "--executor", "slurm"])]) + "\n"

    def merge_script(self, argv: list[str], name: str) -> str:
        """After the array: finish the dataset (its manifest) if the last task has not."""
        lines = self._header(f"{name}-merge", "%j-merge.out", cpus=1, gpus=0)
        lines.append("#SBATCH --kill-on-invalid-dep=yes")
        return "\n".join([*lines, *self._body([*argv, "--executor", "local", "--shard", "0/1"])]) + "\n"

    def run(self, argv: list[str], shard: ShardSpec, name: str = "hoidata") -> None:
        """Write and submit the array (``argv`` keeps the job's ``--shard``), then its merge when
        this submission covers the whole job."""
        array = self.array_script(argv, name)
        merge = self.merge_script(without_options(argv, {"--shard": 1}), name) if shard.count == 1 else None
        if self.dry_run:
            print(f"# {self.folder / 'array.sbatch'}\n{array}")
            if merge is not None:
                print(f"# {self.folder / 'merge.sbatch'}\n{merge}")
            print(f"# submit:\nsbatch --parsable {self.folder / 'array.sbatch'}")
            if merge is not None:
                print(f"sbatch --parsable --dependency=afterok:ARRAY_JOB_ID {self.folder / 'merge.sbatch'}")
            return
        sbatch = shutil.which("sbatch")
        if sbatch is None:
            raise HoidataError(
                "--executor slurm: sbatch not found (run on a Slurm login node, or --dry-run to print the scripts)"
            )
        (self.folder / "logs").mkdir(parents=True, exist_ok=True)
        (self.folder / "array.sbatch").write_text(array)
        job = submit([sbatch, "--parsable", str(self.folder / "array.sbatch")])
        message = f"slurm: submitted array job {job} ({self.workers} tasks)"
        if merge is not None:
            (self.folder / "merge.sbatch").write_text(merge)
            after = f"--dependency=afterok:{job}"
            message += (
                f" and merge job {submit([sbatch, '--parsable', after, str(self.folder / 'merge.sbatch')])}"
            )
        print(f"{message}; logs in {self.folder / 'logs'}; {self.out} completes when they have run")

    def _header(self, name: str, log: str, cpus: int, gpus: int) -> list[str]:
        lines = [
            "#!/bin/bash",
            f"#SBATCH --job-name={name}",
            "#SBATCH --ntasks=1",
            f"#SBATCH --cpus-per-task={cpus}",
            *([f"#SBATCH --gres=gpu:{gpus}"] if gpus else []),
            f"#SBATCH --output={self.folder / 'logs' / log}",
        ]
        if self.partition:
            lines.append(f"#SBATCH --partition={self.partition}")
        if self.time_limit:
            lines.append(f"#SBATCH --time={self.time_limit}")
        lines += [f"#SBATCH {o if o.startswith('-') else '--' + o}" for o in self.sbatch]
        return lines

    def _body(self, argv: list[str]) -> list[str]:
        setup = [self.setup] if self.setup else []
        command = " ".join(shlex.quote(a) for a in [self.python, "-m", "hoidata", *argv])
        return ["set -euo pipefail", f"cd {shlex.quote(os.getcwd())}", *setup, f"exec {command}"]


def array_task(env: Mapping[str, str] = os.environ) -> tuple[int, int] | None:
    """(this task's index from 0, the array's task count) inside a Slurm array task, else None."""
    if "SLURM_ARRAY_TASK_ID" not in env:
        return None
    try:
        task = int(env["SLURM_ARRAY_TASK_ID"])
        low = int(env.get("SLURM_ARRAY_TASK_MIN", "0"))
        if "SLURM_ARRAY_TASK_COUNT" in env:
            count = int(env["SLURM_ARRAY_TASK_COUNT"])
        else:
            count = int(env["SLURM_ARRAY_TASK_MAX"]) - low + 1
    except (KeyError, ValueError):
        raise HoidataError(
            "inside a Slurm array task, SLURM_ARRAY_TASK_ID and SLURM_ARRAY_TASK_COUNT must be numbers"
        ) from None
    index = task - low
    if not 0 <= index < count:
        raise HoidataError(
            f"Slurm array task {task} is outside the array ({count} tasks from {low}): "
            "submit with --array=0-(N-1)"
        )
    return index, count


def submit(command: list[str]) -> str:
    """The job id ``sbatch --parsable`` prints (``id`` or ``id;cluster``)."""
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        message = (done.stderr or done.stdout).strip().splitlines()
        raise HoidataError(f"sbatch failed: {message[0] if message else f'exit {done.returncode}'}")
    return done.stdout.strip().split(";")[0]
