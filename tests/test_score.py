"""``hoidata score``: completions in JSONL/Parquet judged against SFT or canonical datasets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from light_cli import run_light

from hoidata.eval.score import score_file
from hoidata.io import read_table
from hoidata.pipelines.boxes import BoxesConfig, boxes
from hoidata.pipelines.build_sft import BuildSftConfig, build_sft


@pytest.fixture(scope="module")
def built(demo_canonical, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("score")
    boxes(demo_canonical(12), root / "boxes", BoxesConfig(profile="qwen3-vl"))
    out = {"canonical": demo_canonical(12), "boxes": root / "boxes"}
    for task in ("referring", "detection"):
        build_sft(root / "boxes", root / task, BuildSftConfig(task=task))
        out[task] = root / task
    return out


def _answers(path: Path) -> list[tuple[str, str, str]]:
    """``(sample_id, source_id, answer)`` of each SFT sample, as a perfect model would answer."""
    rows = read_table(path, ["sample_id", "source_id", "messages"]).to_pylist()
    return [(r["sample_id"], r["source_id"], r["messages"][-1]["content"][0]["text"]) for r in rows]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_perfect_answers_score_full_marks_against_sft_and_canonical(
    built: dict[str, Path], tmp_path: Path
) -> None:
    rows = []
    for task in ("referring", "detection"):
        rows += [
            {"sample_id": sid, "completion": f"<think>Look at the pose.</think><answer>{answer}</answer>"}
            for sid, _, answer in _answers(built[task])
        ]
    rows.append(
        {"sample_id": rows[0]["sample_id"], "completion": "<think>Unsure.</think><answer>eat</answer>"}
    )
    rows.append({"sample_id": "not-a-sample", "completion": "x"})
    report = score_file(_jsonl(tmp_path / "c.jsonl", rows), built["referring"], out=tmp_path / "s.parquet")
    n_ref = len(_answers(built["referring"]))
    assert report.completions == len(rows) and report.scored == n_ref + 1
    n_det = len(_answers(built["detection"]))
    assert report.completions - report.scored == n_det + 1  # detection samples and the stranger
    assert report.unmatched[-1] == f"… {n_det + 1 - 5:,} more"
    assert report.by_task["referring"]["format"] == 1.0
    assert report.means["accuracy"] == pytest.approx(n_ref / (n_ref + 1))
    scores = pq.read_table(tmp_path / "s.parquet")
    assert scores.num_rows == n_ref + 1 and scores.column("accuracy").to_pylist()[-1] == 0.0

    # detection answers against the canonical dataset: every interaction of the image
    detection = [
        {"sample_id": source, "completion": f"<think>Scan the scene.</think><answer>{answer}</answer>"}
        for _, source, answer in _answers(built["detection"])
    ]
    parquet = tmp_path / "det.parquet"
    pq.write_table(pa.Table.from_pylist(detection), parquet)
    report = score_file(parquet, built["canonical"], profile="qwen3-vl")
    assert report.scored == len(detection) and report.unmatched == []
    assert report.means["accuracy"] == 1.0 and report.by_task == {"detection": pytest.approx(report.means)}


def test_cli_prints_means_and_stays_light(built: dict[str, Path], tmp_path: Path) -> None:
    sid, _, answer = _answers(built["referring"])[0]
    path = _jsonl(
        tmp_path / "c.jsonl", [{"sample_id": sid, "completion": f"<think>x</think><answer>{answer}</answer>"}]
    )
    r = run_light("score", str(path), "--gt", str(built["referring"]), "--json")
    assert r.returncode == 0, r.stderr
    report = json.loads(r.stdout)
    assert report["profile"] == "qwen3-vl" and report["means"]["accuracy"] == 1.0
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "hoidata",
            "score",
            str(path),
            "--gt",
            str(built["referring"]),
            "--weight",
            "format=2",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "1 of 1 completions scored (qwen3-vl)" in r.stdout
    assert "3.000" in r.stdout  # accuracy 1 + 2 × format 1; no tool or spatial claims


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        ('{"sample_id": "a"}\n', [], "record line 1: field 'completion': missing"),
        ("not json\n", [], "record line 1: not JSON"),
        ('{"sample_id": "a", "completion": NaN}\n', [], "record line 1: not JSON"),
        ('{"sample_id": "a", "completion": 3}\n', [], "must be a string or a list of messages"),
        ('{"sample_id": "nope", "completion": "x"}\n', [], "none of the 1 completions has a sample_id"),
        ('{"sample_id": "a", "completion": "x"}\n', ["--weight", "speed=1"], "the parts are accuracy"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    built: dict[str, Path], tmp_path: Path, content: str, args: list[str], message: str
) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(content)
    r = subprocess.run(
        [sys.executable, "-m", "hoidata", "score", str(path), "--gt", str(built["referring"]), *args],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr


def test_a_line_holding_a_lone_surrogate_is_a_wrong_answer_not_a_refused_file(
    built: dict[str, Path], tmp_path: Path
) -> None:
    """A "\\ud800" escape (what a model's server may write) is JSON the strict reader refuses: that
    line scores as wrong and its neighbours as before, in the file's order."""
    answers = _answers(built["referring"])[:3]
    lines = [
        json.dumps({"sample_id": sid, "completion": f"<think>x</think><answer>{answer}</answer>"})
        for sid, _, answer in answers
    ]
    lines[1] = json.dumps({"sample_id": answers[1][0], "completion": "<answer>\ud800</answer>"})
    assert "\\ud800" in lines[1]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(lines) + "\n")
    r = run_light("score", str(path), "--gt", str(built["referring"]), "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["means"]["accuracy"] == pytest.approx(2 / 3)


def test_canonical_dataset_needs_a_profile(built: dict[str, Path], tmp_path: Path) -> None:
    from hoidata.errors import HoidataError

    path = _jsonl(tmp_path / "c.jsonl", [{"sample_id": "x", "completion": "y"}])
    with pytest.raises(HoidataError, match="pass --profile"):
        score_file(path, built["canonical"])
