"""``filter box-prefs`` and ``filter answer-prefs``: gen-prefs rows → the two DPO datasets of the
box-then-answer recipe, with the reference's rules as defaults.

A question is kept when its lowest box score is ≤ ``max_low`` and its highest ≥ ``min_high`` (the
policy both can and cannot find the region). Step 1 (box pairs): a box scoring ≥ ``chosen`` against
one scoring ≤ ``rejected``, best against worst first. Step 2 (answer pairs): on the best box's crop,
an answer judged ≥ ``chosen`` against one judged ≤ ``rejected``. Rows are TRL DPO rows with images
(``prompt``/``chosen``/``rejected`` messages, as ``filter prefs`` writes), so ``train dpo`` reads
them as they are. A question that yields no pair is a reject with the rule it failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hoidata.io import (
    ALL_SHARDS,
    Manifest,
    Output,
    ShardSpec,
    dataset_fingerprint,
    read_manifest,
    require_stage,
)
from hoidata.io.stage import run_stage_on_shards
from hoidata.options import option, recorded
from hoidata.pipelines.filter import DPO_SCHEMA, dpo_features
from hoidata.profiles import get_profile
from hoidata.schemas.canonical import REJECTS_SCHEMA
from hoidata.sft.box_answer import answer_turn, crop_text
from hoidata.sft.messages import IMAGE_BLOCK, message, text

STEPS = ("box", "answer")


@dataclass
class FilterBoxPrefsConfig:
    """The selection rules (the reference's by default); recorded in the manifest."""

    max_low: float = option(0.2, "Keep a question only when its lowest box score is at most this.")
    min_high: float = option(0.8, "... and its highest box score at least this.")
    chosen: float = option(0.8, "A chosen box (step 1) or answer (step 2) scores at least this.")
    rejected: float = option(0.2, "A rejected one scores at most this.")
    max_pairs: int = option(1, "Pairs per question at most (best against worst first).", minimum=1)


def filter_box_prefs(
    input_dir: Path | str,
    out: Path | str,
    cfg: FilterBoxPrefsConfig,
    step: str,
    *,
    overwrite: bool = False,
    shard: ShardSpec = ALL_SHARDS,
) -> Manifest | None:
    """Step ``box`` (1) or ``answer`` (2) pairs from a gen-prefs dataset."""
    manifest = read_manifest(input_dir)
    require_stage(manifest, input_dir, "gen-prefs")
    profile = get_profile(*manifest.profile_spec)  # type: ignore[misc]
    output = Output(
        stage=f"filter {step}-prefs",
        config=recorded(cfg) | {"step": step, "input": str(Path(input_dir).resolve()), "split": "train"},
        input_fingerprint=dataset_fingerprint(input_dir),
        features=dpo_features(),
        schema=DPO_SCHEMA,
        split="train",
    )

    def transform(table: pa.Table, path: str) -> tuple[pa.Table, pa.Table]:
        rows, rejects = [], []
        for i, q in enumerate(table.to_pylist()):
            if q.get("status") == "engine_error":  # unknown judgements: rerun gen-prefs to retry it
                pairs, reason = [], f"engine error: {q.get('error')}"
            else:
                pairs, reason = (_box_pairs if step == "box" else _answer_pairs)(q, cfg, profile)
            rows.extend(pairs)
            if reason:
                rejects.append(
                    {
                        "source_file": path,
                        "record_index": i,
                        "sample_id": q["sample_id"],
                        "field": "candidates",
                        "reason": reason,
                        "raw": None,
                    }
                )
        return pa.Table.from_pylist(rows, DPO_SCHEMA), pa.Table.from_pylist(rejects, REJECTS_SCHEMA)

    return run_stage_on_shards(
        input_dir,
        out,
        output,
        transform,
        shard=shard,
        overwrite=overwrite,
        rows_are_records=False,
        progress=f"filter {step}-prefs",
    )


def _kept(q: dict[str, Any], cfg: FilterBoxPrefsConfig) -> tuple[list[dict[str, Any]], str | None]:
    scores = [c["score"] for c in q["candidates"]]
    if not scores:
        return [], "no candidates"
    if min(scores) > cfg.max_low:
        return [], f"lowest box score {min(scores):.2f} > {cfg.max_low} (every box works)"
    if max(scores) < cfg.min_high:
        return [], f"highest box score {max(scores):.2f} < {cfg.min_high} (no box works)"
    return sorted(q["candidates"], key=lambda c: -c["score"]), None


def _question_turn(q: dict[str, Any]) -> dict[str, Any]:
    return message("user", [IMAGE_BLOCK, text(q["question"])])


def _dpo(
    q: dict[str, Any],
    k: int,
    kind: str,
    prompt: list,
    images: list,
    good: str,
    bad: str,
    rewards: tuple[float, float],
) -> dict[str, Any]:
    return {
        "sample_id": f"{q['sample_id']}#{kind}{k}",
        "prompt_id": q["sample_id"],
        "images": images,
        "prompt": prompt,
        "chosen": [message("assistant", [text(good)])],
        "rejected": [message("assistant", [text(bad)])],
        "chosen_reward": rewards[0],
        "rejected_reward": rewards[1],
        "tools": None,
    }


def _box_pairs(q: dict[str, Any], cfg: FilterBoxPrefsConfig, profile: Any) -> tuple[list[dict], str | None]:
    ranked, reason = _kept(q, cfg)
    if reason:
        return [], reason
    good = [c for c in ranked if c["score"] >= cfg.chosen]
    bad = [c for c in reversed(ranked) if c["score"] <= cfg.rejected]
    pairs = [
        _dpo(
            q, k, "box", [_question_turn(q)], q["images"][:1], g["text"], b["text"], (g["score"], b["score"])
        )
        for k, (g, b) in enumerate(zip(good, bad, strict=False))
        if g["text"] != b["text"]
    ][: cfg.max_pairs]
    return pairs, None if pairs else "no distinct chosen/rejected box texts"


def _answer_pairs(
    q: dict[str, Any], cfg: FilterBoxPrefsConfig, profile: Any
) -> tuple[list[dict], str | None]:
    ranked, reason = _kept(q, cfg)
    if reason:
        return [], reason
    best = ranked[0]
    order = np.argsort(-np.asarray(best["accuracy"]), kind="stable")
    answers = [best["answers"][i] for i in order]
    acc = [best["accuracy"][i] for i in order]
    good = [(a, s) for a, s in zip(answers, acc, strict=True) if s >= cfg.chosen]
    bad = [(a, s) for a, s in reversed(list(zip(answers, acc, strict=True))) if s <= cfg.rejected]
    w, h = q["width"], q["height"]
    model = profile.to_model(np.asarray(best["box"])[None], w, h)[0]
    prompt = [
        _question_turn(q),
        message("assistant", [text(best["text"])]),
        message("user", [IMAGE_BLOCK, text(crop_text(profile, model))]),
    ]
    images = [q["images"][0], q["images"][best["crop"]]]
    pairs = [
        _dpo(q, k, "answer", prompt, images, _as_answer(g), _as_answer(b), (gs, bs))
        for k, ((g, gs), (b, bs)) in enumerate(zip(good, bad, strict=False))
        if g != b
    ][: cfg.max_pairs]
    return pairs, None if pairs else "the best box's answers hold no chosen/rejected pair"


def _as_answer(completion: str) -> str:
    """The answer turn as trained (``<answer>…</answer>``), whatever else the sample wrote around it."""
    return completion if "<answer>" in completion else answer_turn(completion.strip())
