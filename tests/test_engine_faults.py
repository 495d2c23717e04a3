"""An OpenAI-compatible server that fails: 500, 429, slow, malformed replies, and dying mid-run.

Against a real server on 127.0.0.1 (:mod:`chat_server`): bounded retries, then the sample is a
failed row with its error (never dropped, never a made-up answer); the manifest counts the failed
rows, and rerunning the same command makes exactly those again, so the result equals a run that
never failed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from chat_server import chat_server, reply_text

from hoidata.cli import main
from hoidata.engines.base import Sampling
from hoidata.engines.openai import OpenAIEngine
from hoidata.io import read_manifest, read_table
from hoidata.io.manifest import dataset_fingerprint
from hoidata.pipelines.boxes import BoxesConfig, boxes

FAULTS = ("500", "429", "malformed", "slow")
TRIES = 3  # --retries 2


def _ask(url: str, seeds: list[int], **engine: Any) -> list[Any]:
    client = OpenAIEngine("m", base_url=url, retries=TRIES - 1, timeout=0.4, **engine)
    try:
        conversations = [[{"role": "user", "content": f"question {s}"}] for s in seeds]
        return [g[0] for g in client.generate(conversations, Sampling(n=1), seeds)]
    finally:
        client.close()


def body_answered(body: dict[str, Any], bodies: list[dict[str, Any]]) -> bool:
    """The second try of a seed (the first met the fault)."""
    same = [b for b in bodies if b["seed"] == body["seed"]]
    return len(same) == 2 and body is same[1]


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_that_passes_is_retried_and_answered(fault: str) -> None:
    """Each request's first try fails; the retry gets the answer the healthy server gives."""
    seen: set[int] = set()

    def first_try_fails(n: int, body: dict[str, Any]) -> str | None:
        if body["seed"] in seen:
            return None
        seen.add(body["seed"])
        return fault

    with chat_server(first_try_fails, slow_s=1.0) as server:
        got = _ask(server.url, [1, 2, 3])
        bodies = list(server.requests)
    assert [g.finish_reason for g in got] == ["stop"] * 3, [g.error for g in got]
    answered = {b["seed"]: reply_text(b) for b in bodies if body_answered(b, bodies)}
    assert [g.text for g in got] == [answered[s] for s in (1, 2, 3)]
    assert len(bodies) == 6  # one failed try and one answered try per request


@pytest.mark.parametrize("fault", FAULTS)
def test_a_fault_that_persists_fails_its_sample_only(fault: str) -> None:
    """Seed 2 always meets the fault: it is tried exactly TRIES times, then reported with its
    error; seeds 1 and 3 are answered as if nothing happened."""
    with chat_server(lambda n, body: fault if body["seed"] == 2 else None, slow_s=1.0) as server:
        started = time.perf_counter()
        got = _ask(server.url, [1, 2, 3])
        took = time.perf_counter() - started
        tries = [b["seed"] for b in server.requests]
    assert [g.finish_reason for g in got] == ["stop", "error", "stop"]
    assert got[1].text == "" and got[1].error
    expected = {"500": "500", "429": "429", "malformed": "unreadable reply", "slow": "timed out"}[fault]
    assert expected in got[1].error, got[1].error
    assert tries.count(2) == TRIES and tries.count(1) == tries.count(3) == 1
    assert took < 15  # bounded: backoff doubles from 0.5 s, and Retry-After is honoured


# ---- through the stages ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def demo_boxes(demo_canonical, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("faults") / "boxes"
    boxes(demo_canonical(6), out, BoxesConfig(profile="qwen2.5-vl", max_pixels=64 * 28 * 28))
    return out


def _run(*argv: str) -> None:
    with pytest.raises(SystemExit) as done:
        main([*argv])
    assert done.value.code in (0, None)


def _gen_cot(boxes_dir: Path, out: Path, url: str, *more: str) -> list[str]:
    return [
        "gen-cot", str(boxes_dir), "-o", str(out), "--engine", "openai", "--model", "m", "--base-url", url,
        "--n", "2", "--shard-size", "3", "--concurrency", "2", "--retries", "1", "--timeout", "5", *more,
    ]  # fmt: skip


def test_gen_cot_survives_a_dying_server_and_a_rerun_retries_exactly_the_failed(
    demo_boxes: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with chat_server() as healthy:
        _run(*_gen_cot(demo_boxes, tmp_path / "uninterrupted", healthy.url))
    expected = read_table(tmp_path / "uninterrupted").to_pylist()
    assert len(expected) == 12 and {r["status"] for r in expected} == {"answered"}

    out = tmp_path / "cot"
    with chat_server(lambda n, body: "die" if n == 5 else None) as dying:
        _run(*_gen_cot(demo_boxes, out, dying.url))
        port = dying.port
    manifest = read_manifest(out)
    rows = read_table(out).to_pylist()
    failed = [r for r in rows if r["status"] == "engine_error"]
    assert 0 < len(failed) < 12 and manifest.counts["failed"] == len(failed)
    assert manifest.counts["in"] == manifest.counts["out"] + manifest.counts["rejected"] == 6
    assert all(r["error"] and r["messages"][-1]["role"] == "user" for r in failed)  # no made-up answer
    assert "rerun to retry them" in capsys.readouterr().out
    before = dataset_fingerprint(out)

    time.sleep(0.1)  # the dead server's port is free again
    with chat_server(port=port) as back:
        _run(*_gen_cot(demo_boxes, out, back.url))
        retried_prompts = {r["prompt_id"] for r in failed}
        assert len(back.requests) == 2 * len(retried_prompts)  # both rollouts of each failed prompt
        assert (
            f"retried {len(failed)} failed rows: {len(failed)} made, 0 still failed"
            in capsys.readouterr().out
        )
        assert read_table(out).to_pylist() == expected
        assert read_manifest(out).counts["failed"] == 0 and dataset_fingerprint(out) != before
        _run(*_gen_cot(demo_boxes, out, back.url))
        assert len(back.requests) == 2 * len(retried_prompts)  # complete: nothing asked
    assert "already complete, nothing to do" in capsys.readouterr().out


def test_predict_records_failed_images_and_a_rerun_asks_only_those(
    demo_canonical, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    canonical = demo_canonical(6)

    def predict(out: Path, url: str, *more: str) -> list[str]:
        return [
            "predict", str(canonical), "-o", str(out), "--engine", "openai", "--model", "m",
            "--base-url", url, "--profile", "qwen2.5-vl", "--retries", "0", *more,
        ]  # fmt: skip

    with chat_server() as healthy:
        _run(*predict(tmp_path / "uninterrupted", healthy.url))
    expected = read_table(tmp_path / "uninterrupted").to_pylist()

    out = tmp_path / "pred"
    with chat_server(lambda n, body: "500" if n < 2 else None) as flaky:
        _run(*predict(out, flaky.url, "--concurrency", "1"))
    rows = read_table(out).to_pylist()
    failed = {r["sample_id"] for r in rows if r["finish_reason"] == "error"}
    assert len(failed) == 2 and read_manifest(out).counts["failed"] == 2
    assert all("500" in r["error"] for r in rows if r["sample_id"] in failed)

    with chat_server() as back:  # --dp 2: a rerun that only retries runs in this one process
        _run(*predict(out, back.url, "--dp", "2"))
        assert len(back.requests) == 2
    assert read_table(out).to_pylist() == expected
    assert "retried 2 failed rows: 2 made, 0 still failed" in capsys.readouterr().out

    out = tmp_path / "pred-workers"  # --workers 2 (or Ray's): likewise, in this one process
    with chat_server(lambda n, body: "500" if n < 2 else None) as flaky:
        _run(*predict(out, flaky.url, "--concurrency", "1"))
    assert read_manifest(out).counts["failed"] == 2
    with chat_server() as back:
        _run(*predict(out, back.url, "--workers", "2"))
        assert len(back.requests) == 2
    assert read_table(out).to_pylist() == expected
    assert "retried 2 failed rows: 2 made, 0 still failed" in capsys.readouterr().out


def test_a_reply_holding_a_lone_surrogate_is_stored_not_a_crashed_shard(
    demo_boxes: Path, demo_canonical, tmp_path: Path
) -> None:
    """A server's JSON "\\ud800" escape decodes to a lone surrogate, which no writer can store: it
    becomes U+FFFD in the reply, in gen-cot and predict alike, and the other replies are untouched."""
    odd = lambda n, body: "surrogate" if n % 3 == 0 else None  # noqa: E731
    with chat_server(odd) as server:
        _run(*_gen_cot(demo_boxes, tmp_path / "cot", server.url))
        predict = ["predict", str(demo_canonical(4)), "-o", str(tmp_path / "pred"), "--engine", "openai"]
        _run(*predict, "--model", "m", "--base-url", server.url, "--profile", "qwen2.5-vl")
    rows = read_table(tmp_path / "cot").to_pylist()
    texts = [b["text"] for r in rows for m in r["messages"] if m["role"] == "assistant" for b in m["content"]]
    assert len(rows) == 12 and {r["status"] for r in rows} == {"answered"}
    assert any("\ufffd</think>" in t for t in texts) and any("\ufffd" not in t for t in texts)
    predictions = read_table(tmp_path / "pred").to_pylist()
    assert predictions and {r["finish_reason"] for r in predictions} == {"stop"}
    assert any("\ufffd" in r["completion"] for r in predictions)
