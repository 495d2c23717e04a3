"""A disk that fills up and an output on a read-only file system: one line naming the file, exit
code 2, no partial shard visible, and the rerun (with room again) resumes to the full result.

The tests run the real command in a child process. A full disk is a file-size limit
(``RLIMIT_FSIZE``: writes past it fail with EFBIG, through the same write path as ENOSPC); a
read-only file system is a read-only bind mount in a private mount namespace (``unshare -m``), so
nothing leaks to the machine.
"""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from hoidata.io import read_table


def _convert(reference: Path, out: Path) -> list[str]:
    ann = reference / "hico" / "upt_instances_test2015.json"
    return [
        sys.executable,
        "-m",
        "hoidata",
        "convert",
        "hico",
        "-a",
        str(ann),
        "--no-image-check",
        "-o",
        str(out),
    ]


def _visible(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.rglob("*") if p.is_file() and not p.name.startswith("."))


def test_a_full_disk_stops_with_one_line_and_the_rerun_resumes(reference: Path, tmp_path: Path) -> None:
    def small_disk() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    out = tmp_path / "out"
    argv = [*_convert(reference, out), "--shard-size", "2000"]  # five shards of ~130 kB each
    full = subprocess.run(argv, preexec_fn=small_disk, capture_output=True, text=True)
    assert full.returncode == 2, full.stderr
    lines = full.stderr.strip().splitlines()
    assert len(lines) == 1 and "File too large" in lines[0] and "test-00000-of-00005.parquet" in lines[0]
    assert not list((out / "data").iterdir())  # no shard, not even a temp file
    assert not (out / "manifest.json").exists()

    again = subprocess.run(argv, capture_output=True, text=True)
    assert again.returncode == 0, again.stderr
    clean = tmp_path / "clean"
    subprocess.run([*_convert(reference, clean), "--shard-size", "2000"], check=True, capture_output=True)
    assert read_table(out).equals(read_table(clean))


def test_a_read_only_output_is_one_line(reference: Path, tmp_path: Path) -> None:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a read-only file system privately")
    target = tmp_path / "ro"
    target.mkdir()
    mount = f"mount --bind {target} {target} && mount -o remount,bind,ro {target}"
    probe = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", mount], capture_output=True
    )
    if probe.returncode != 0:
        pytest.skip("this machine does not allow a private read-only mount (needs CAP_SYS_ADMIN)")
    command = " ".join(_convert(reference, target / "out"))
    run = subprocess.run(
        ["unshare", "-m", "--propagation", "private", "sh", "-c", f"{mount} && exec {command}"],
        capture_output=True,
        text=True,
    )
    assert run.returncode == 2, run.stderr
    lines = run.stderr.strip().splitlines()
    assert len(lines) == 1 and "Read-only file system" in lines[0] and str(target / "out") in lines[0]
    assert _visible(target) == []
