"""Interrupted conversions resume: a rerun keeps finished shards, redoes the rest, and the result
equals an uninterrupted run (same records in the same order, none lost, none duplicated)."""

from __future__ import annotations

import copy
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image

from hoidata.io import StageRun
from hoidata.pipelines.convert import ConvertConfig, convert

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"
PPDM_REF = REFERENCE / "hico" / "ppdm_test_hico_first100.json"
HOIDATA = Path(sys.executable).with_name("hoidata")


class Crash(Exception):
    pass


def shards(out: Path) -> pa.Table:
    """All shards in manifest order, as one table."""
    manifest = json.loads((out / "manifest.json").read_text())
    return pa.concat_tables([pq.read_table(out / s["path"]) for s in manifest["shards"]])


def rejects(out: Path) -> list[dict[str, Any]]:
    return pq.read_table(out / "rejects.parquet").to_pylist()


def assert_same_dataset(out: Path, ref: Path) -> None:
    got, want = shards(out), shards(ref)
    ids = got.column("sample_id").to_pylist()
    assert len(ids) == len(set(ids)), "duplicated records"
    assert ids == want.column("sample_id").to_pylist()
    assert got.equals(want)
    assert rejects(out) == rejects(ref)
    m, r = (json.loads((d / "manifest.json").read_text()) for d in (out, ref))
    assert m["counts"] == r["counts"] and m["counts"]["in"] == m["counts"]["out"] + m["counts"]["rejected"]
    assert m["config"] == r["config"] and m["input_fingerprint"] == r["input_fingerprint"]
    assert [s["path"] for s in m["shards"]] == [s["path"] for s in r["shards"]]
    assert not (out / ".work").exists()
    assert not list(out.rglob("*.tmp"))


def ppdm_with_faults(tmp: Path) -> Path:
    """The 100 reference records with a few bad ones spread over the shards."""
    records: list[Any] = json.loads(PPDM_REF.read_text())
    bad = copy.deepcopy(records[5])
    bad["annotations"][0]["bbox"] = "not a box"
    records.insert(3, bad)
    dup = copy.deepcopy(records[40])
    records.insert(47, dup)
    coco12 = copy.deepcopy(records[80])
    coco12["file_name"] = "HICO_coco12.jpg"
    coco12["annotations"][1]["category_id"] = 12
    records.insert(85, coco12)
    path = tmp / "test_hico.json"
    path.write_text(json.dumps(records))
    return path


@pytest.mark.parametrize("input_kind", ["reference", "with_faults"])
@pytest.mark.parametrize("crash", ["after_shard", "between_rejects_and_shard"])
def test_resume_after_a_crash_equals_an_uninterrupted_run(
    input_kind: str, crash: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ann = PPDM_REF if input_kind == "reference" else ppdm_with_faults(tmp_path)
    cfg = ConvertConfig(source="hico", annotations=str(ann), split="test", image_check=False, shard_size=10)
    ref = tmp_path / "ref"
    convert(cfg, ref, progress=False)

    out = tmp_path / "out"
    real_write = StageRun.write_shard
    written: list[int] = []

    def crashing(self: StageRun, i: int, table: pa.Table, rej: pa.Table) -> None:
        if len(written) == 2:
            if crash == "between_rejects_and_shard":  # the rejects landed, the shard (the commit) did not
                real_write(self, i, table.slice(0, 0), rej)
                self.shard_path(i).unlink()
            raise Crash("simulated crash")
        written.append(i)
        real_write(self, i, table, rej)

    monkeypatch.setattr(StageRun, "write_shard", crashing)
    with pytest.raises(Crash):
        convert(cfg, out, progress=False)
    assert not (out / "manifest.json").exists()
    num = -(-len(json.loads(ann.read_text())) // 10)
    assert sorted(p.name for p in (out / "data").glob("*.parquet")) == [
        f"test-{i:05d}-of-{num:05d}.parquet" for i in (0, 1)
    ]
    # a half-written shard of the crashed process must be ignored and cleaned up
    (out / "data" / ".test-00002-of-00010.parquet.999999.tmp").write_bytes(b"PAR1 half a shard")

    rewritten: list[int] = []

    def spying(self: StageRun, i: int, table: pa.Table, rej: pa.Table) -> None:
        rewritten.append(i)
        real_write(self, i, table, rej)

    monkeypatch.setattr(StageRun, "write_shard", spying)
    manifest = convert(cfg, out, progress=False)
    assert manifest.extra["resumed"] is True
    assert rewritten == list(range(2, num)), "finished shards must be kept, the rest redone"
    assert_same_dataset(out, ref)

    import datasets

    ds = datasets.load_dataset("parquet", data_dir=str(out), cache_dir=str(tmp_path / "hf-cache"))["test"]
    assert ds["sample_id"] == shards(ref).column("sample_id").to_pylist()


def test_rerun_of_a_different_job_does_not_resume(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An interrupted run's shards are never mixed into a different job's output."""
    cfg = ConvertConfig(
        source="hico", annotations=str(PPDM_REF), split="test", image_check=False, shard_size=10
    )

    def crashing(self: StageRun, i: int, table: pa.Table, rej: pa.Table) -> None:
        raise Crash

    monkeypatch.setattr(StageRun, "write_shard", crashing)
    with pytest.raises(Crash):
        convert(cfg, tmp_path / "out", progress=False)
    monkeypatch.undo()
    other = ConvertConfig(**{**cfg.__dict__, "shard_size": 25})
    from hoidata.errors import HoidataError

    with pytest.raises(HoidataError, match="another job"):
        convert(other, tmp_path / "out", progress=False)
    m = convert(other, tmp_path / "out", overwrite=True, progress=False)
    assert m.extra["resumed"] is False and m.counts["out"] == 100


# --------------------------------------------------------------------------- a real SIGKILL


N_IMAGES = 600
SHARD = 20


def _image_job(tmp: Path) -> tuple[Path, Path]:
    """PPDM records over N_IMAGES tiny PNGs; a few images are missing or unreadable (rejects)."""
    root = tmp / "images"
    root.mkdir()
    template = json.loads(PPDM_REF.read_text())[0]
    records = []
    for i in range(N_IMAGES):
        name = f"img_{i:05d}.png"
        if i % 97 == 13:
            (root / name).write_bytes(b"not a png")
        elif i % 89 != 7:  # else: missing
            Image.new("L", (24, 16), i % 256).save(root / name, format="PNG")
        rec = copy.deepcopy(template)
        rec["file_name"] = name
        for a in rec["annotations"]:
            a["bbox"] = [1 + i % 5, 1, 20, 16]
        records.append(rec)
    ann = tmp / "test_hico.json"
    ann.write_text(json.dumps(records))
    return ann, root


def _args(ann: Path, root: Path, out: Path) -> list[str]:
    return ["convert", "hico", "-a", str(ann), "-i", str(root), "-o", str(out), "--shard-size", str(SHARD)]


def _exe() -> list[str]:
    return [str(HOIDATA)] if HOIDATA.exists() else [sys.executable, "-m", "hoidata"]


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_killed_then_rerun_loses_and_duplicates_nothing(sig: signal.Signals, tmp_path: Path) -> None:
    ann, root = _image_job(tmp_path)
    ref, out = tmp_path / "ref", tmp_path / "out"
    convert(
        ConvertConfig(source="hico", annotations=str(ann), split="test", images=str(root), shard_size=SHARD),
        ref,
        progress=False,
    )
    env = {k: v for k, v in os.environ.items() if k != "HOIDATA_DEBUG"}

    proc = subprocess.Popen(
        [*_exe(), *_args(ann, root, out)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env
    )
    deadline = time.monotonic() + 60
    data = out / "data"
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            if data.is_dir() and any(p.suffix == ".parquet" for p in data.iterdir()):
                break
            time.sleep(0.001)
    finally:
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=30)
    if sig == signal.SIGKILL:
        assert proc.returncode == -signal.SIGKILL, "the conversion finished before it could be killed"
    else:  # Ctrl-C: one line that says how to go on, exit code 130, no traceback
        assert proc.returncode == 130, stderr
        assert stderr.decode().splitlines() == ["interrupted: rerun the same command to resume"]
    assert not (out / "manifest.json").exists()
    done = sorted(p.name for p in data.glob("*.parquet"))
    assert 1 <= len(done) < N_IMAGES // SHARD
    assert (out / ".work" / "state.json").is_file()
    (data / ".test-00029-of-00030.parquet.4242.tmp").write_bytes(b"PAR1 torn")  # as a kill mid-write leaves

    res = subprocess.run(
        [*_exe(), *_args(ann, root, out)], capture_output=True, text=True, env=env, timeout=120
    )
    assert res.returncode == 0, res.stderr
    assert f"{N_IMAGES:,} records in" in res.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["extra"]["resumed"] is True
    assert_same_dataset(out, ref)
    assert manifest["counts"]["rejected"] > 0 and manifest["counts"]["out"] > 0

    import datasets

    ds = datasets.load_dataset("parquet", data_dir=str(out), cache_dir=str(tmp_path / "hf-cache"))["test"]
    ids = ds["sample_id"]
    assert len(ids) == len(set(ids)) == manifest["counts"]["out"]
    assert ids == shards(ref).column("sample_id").to_pylist()
