"""``--executor ray`` on a real local Ray cluster (2 CPUs, loopback only, no dashboard).

gen-cot with the tiny hf engine writes on Ray what it writes locally, row for row; a worker
process killed mid-run loses nothing and duplicates nothing; a bad address is one line, exit 2.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from hoidata.cli.main import main
from hoidata.cli.options import run_worker
from hoidata.executors import RayExecutor
from hoidata.io import ShardSpec, read_manifest, read_table
from hoidata.io.manifest import DATA

TESTS = Path(__file__).resolve().parent


def _gen_cot(boxes: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return [
        "gen-cot",
        str(boxes),
        *("--engine", "hf", "--model", str(model), "--n", "2", "--max-turns", "2", "--max-tokens", "8"),
        *("--shard-size", "1", "--limit", "6", "--temperature", "0.7", "--seed", "5"),
        *extra,
        "--out",
        str(out),
    ]


def _hoidata(args: list[str]) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0"}
    return subprocess.run([sys.executable, "-m", "hoidata", *args], capture_output=True, text=True, env=env)


@pytest.mark.parametrize(
    ("address", "says"),
    [("127.0.0.1:1", "no Ray cluster answers at 127.0.0.1:1"), ("nowhere", "give host:port")],
)
def test_a_bad_address_is_one_line_and_exit_2(tmp_path: Path, address: str, says: str) -> None:
    (tmp_path / "in").mkdir()
    r = _hoidata(
        [
            "build-sft",
            "referring",
            str(tmp_path / "in"),
            "--executor",
            "ray",
            "--ray-address",
            address,
            "-o",
            str(tmp_path / "o"),
        ]
    )
    assert r.returncode == 2, r.stderr
    assert r.stderr.count("\n") == 1 and says in r.stderr and r.stderr.startswith("error: ")


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """A Ray cluster on this machine, bound to 127.0.0.1; its workers can import this module."""
    import ray

    saved = {k: os.environ.get(k) for k in ("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "PYTHONPATH")}
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(TESTS), saved["PYTHONPATH"]) if p)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def local_run(
    tiny_boxes: Any, tiny_vlm: Any, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, Path, Path]:
    """The local run every Ray run must equal."""
    boxes, model = tiny_boxes(4), tiny_vlm("qwen2.5-vl")
    out = tmp_path_factory.mktemp("ray") / "local"
    r = _hoidata(_gen_cot(boxes, model, out))
    assert r.returncode == 0, r.stderr
    return boxes, model, out


def test_gen_cot_on_ray_writes_the_local_rows(
    cluster: str, local_run: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    boxes, model, local = local_run
    out = tmp_path / "ray"
    r = _hoidata(_gen_cot(boxes, model, out, "--executor", "ray", "--ray-address", cluster, "--workers", "2"))
    assert r.returncode == 0, r.stderr
    assert "gen-cot:" in r.stdout and "records in" in r.stdout  # the driver's summary
    assert read_manifest(out).counts == read_manifest(local).counts
    rows, expected = read_table(out).to_pylist(), read_table(local).to_pylist()
    assert [r["sample_id"] for r in rows] == [r["sample_id"] for r in expected]
    assert rows == expected  # the same content: the hf engine is deterministic per seed
    assert read_manifest(out).config == read_manifest(local).config


def kill_once_then_run(argv: list[str]) -> None:
    """A worker's entry that, the first time any worker runs it, kills its own process (SIGKILL,
    by pid) as soon as a shard of the job lands, then leaves the part half done to its retry."""
    out = Path(argv[argv.index("--out") + 1])
    try:
        os.close(os.open(out.parent / "killed", os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return run_worker(argv)

    def kill_when_a_shard_lands() -> None:
        while not any((out / DATA).glob("*.parquet")):
            time.sleep(0.005)
        (out.parent / "killed").write_text(str(os.getpid()))
        os.kill(os.getpid(), signal.SIGKILL)

    threading.Thread(target=kill_when_a_shard_lands, daemon=True).start()
    return run_worker(argv)


def test_a_worker_killed_mid_run_loses_and_duplicates_nothing(
    cluster: str, local_run: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    boxes, model, local = local_run
    out = tmp_path / "ray"
    argv = [*_gen_cot(boxes, model, out), "--executor", "local", "--workers", "1", "--dp", "1"]
    RayExecutor(2, kill_once_then_run, retries=2).run(argv, ShardSpec())
    assert (tmp_path / "killed").read_text().isdigit()  # a worker process did die, by its pid
    try:  # the driver's last step: the manifest, if no worker wrote it
        main(_gen_cot(boxes, model, out))
    except SystemExit as done:
        assert done.code in (0, None)
    manifest = read_manifest(out)
    assert manifest.counts == read_manifest(local).counts
    rows = read_table(out).to_pylist()
    assert len({r["sample_id"] for r in rows}) == len(rows) == manifest.counts["rows"]
    assert rows == read_table(local).to_pylist()
