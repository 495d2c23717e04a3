"""``hoidata gen-prefs``: self-generated preferences for box-then-answer models (the VisRL recipe).

Per question of a ``build-sft box-answer`` dataset: sample ``boxes`` candidate regions from the policy
at a high temperature; when every readable candidate overlaps the target region (IoU ≥
``negative_iou``), add one random box that overlaps none of them (a negative the policy did not
think of); crop each; sample ``answers`` answers per crop; judge each answer (hoidata's accuracy
reward against the ground truth, or an LLM judge through an OpenAI-compatible server for open
questions, its prompt and raw reply stored); score each box by the mean accuracy of its answers.
One row per question, every candidate, crop, answer and judgement in it: ``filter box-prefs`` and
``filter answer-prefs`` turn them into the two DPO datasets. Sharded and resumable as gen-cot. A
question on which the policy or the judge failed (a server error past its retries) is a row with
``status=engine_error`` and the error, its unknown judgements NaN, never a made-up score; the
filters reject it, and rerunning the command makes exactly those rows again.
"""

from __future__ import annotations

import functools
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hoidata.engines import Engine, Sampling
from hoidata.engines.options import GenerationConfig
from hoidata.errors import HoidataError
from hoidata.gen.loop import ENGINE_ERROR, sample_seed
from hoidata.io import ALL_SHARDS, Manifest, Output, ShardSpec, dataset_fingerprint, read_manifest, run_stage
from hoidata.io.dataset_dir import read_table
from hoidata.io.images import open_images
from hoidata.io.retry import Retry, by_column
from hoidata.options import option, recorded
from hoidata.profiles import Profile, get_profile
from hoidata.rewards import Targets, score
from hoidata.schemas.canonical import BBOX, IMAGE, REJECTS_SCHEMA, list_feature, value_feature
from hoidata.sft.box_answer import box_turn, crop_text, first_box
from hoidata.sft.schema import MESSAGE, PAIR, sft_features
from hoidata.tools.zoom import crop

JUDGES = ("reward", "llm")
JUDGE_PROMPT = (
    "You grade answers to questions about an image.\nQuestion: {question}\nReference answer: {reference}\n"
    "Candidate answer: {answer}\nReply with one number from 0 (wrong) to 10 (fully right), nothing else."
)
CANDIDATE = pa.struct(
    [
        ("text", pa.string()),  # what the policy wrote (the box turn); the negative's written box
        ("box", BBOX),  # canonical pixels; null when the text names no readable box
        ("origin", pa.string()),  # policy | negative
        ("crop", pa.int32()),  # index of its crop in ``images``; -1 without a box
        ("answers", pa.list_(pa.string())),
        ("accuracy", pa.list_(pa.float64())),  # per answer, from the judge
        ("judge_raw", pa.list_(pa.string())),  # the LLM judge's replies (empty with the reward judge)
        ("score", pa.float64()),  # mean accuracy of its answers; 0 without a box
    ]
)
PREFS_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("source_id", pa.string()),
        ("task", pa.string()),
        ("images", pa.list_(IMAGE)),  # the scene, then one crop per candidate with a box
        ("question", pa.string()),  # the first user turn's text (the box instruction included)
        ("reference", pa.string()),  # the ground-truth answer
        ("target", BBOX),  # the warm-up data's region
        ("width", pa.int32()),
        ("height", pa.int32()),
        ("pairs", pa.list_(PAIR)),
        ("candidates", pa.list_(CANDIDATE)),
        ("prompt", pa.list_(MESSAGE)),  # the question turn, as asked
        ("status", pa.string()),  # ok | engine_error
        ("error", pa.string()),  # the first engine error of the question
    ]
)


def prefs_features() -> dict[str, Any]:
    """The `datasets` Features of :data:`PREFS_SCHEMA` (images decode; messages as SFT writes them)."""
    sft = sft_features(True)
    bbox = list_feature(value_feature("float32"), 4)
    value = value_feature
    return {
        "sample_id": value("string"),
        "source_id": value("string"),
        "task": value("string"),
        "images": sft["images"],
        "question": value("string"),
        "reference": value("string"),
        "target": bbox,
        "width": value("int32"),
        "height": value("int32"),
        "pairs": sft["pairs"],
        "candidates": list_feature(
            {
                "text": value("string"),
                "box": bbox,
                "origin": value("string"),
                "crop": value("int32"),
                "answers": list_feature(value("string")),
                "accuracy": list_feature(value("float64")),
                "judge_raw": list_feature(value("string")),
                "score": value("float64"),
            }
        ),
        "prompt": sft["messages"],
        "status": value("string"),
        "error": value("string"),
    }


@dataclass
class GenPrefsConfig(GenerationConfig):
    """What decides the preferences; recorded in the manifest."""

    boxes: int = option(4, "Box candidates sampled per question.", minimum=1)
    box_temperature: float = option(2.0, "Temperature of box sampling (the reference uses 2.0).")
    answers: int = option(4, "Answers sampled per box.", minimum=1)
    answer_temperature: float = option(1.0, "Temperature of answer sampling.")
    max_tokens: int = option(256, "Tokens per model turn.", minimum=1)
    negative_iou: float = option(0.5, "IoU with the target above which a candidate overlaps it.")
    judge: str = option(
        "reward",
        "reward: accuracy against the ground truth; llm: an OpenAI-compatible judge.",
        choices=JUDGES,
    )
    judge_model: str | None = option(None, "llm judge: the model name on the server.")
    judge_base_url: str | None = option(
        None, "llm judge: the server, e.g. http://127.0.0.1:8001/v1.", record=False
    )
    seed: int = option(0, "Seed; with the sample id it fixes every sample and negative.")
    shard_size: int = option(64, "Questions per output shard (the unit of resume).", minimum=1)
    limit: int | None = option(None, "Only the first questions (a trial run).", minimum=0)
    threads: int = option(4, "Threads decoding images.", record=False, minimum=1)


def gen_prefs(
    input_dir: Path | str,
    out: Path | str,
    cfg: GenPrefsConfig,
    engine: Callable[[], Engine],
    *,
    judge: Callable[[], Engine] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    shard: ShardSpec = ALL_SHARDS,
) -> Manifest | None:
    if cfg.boxes < 1 or cfg.answers < 1:
        raise HoidataError("--boxes and --answers must be at least 1")
    if cfg.judge == "llm" and judge is None:
        raise HoidataError(
            "--judge llm needs --judge-model and --judge-base-url (an OpenAI-compatible server)"
        )
    manifest = read_manifest(input_dir)
    if manifest.stage != "build-sft" or manifest.config.get("task") != "box-answer":
        raise HoidataError(
            "gen-prefs reads box-then-answer questions: run `hoidata build-sft box-answer` first",
            file=str(input_dir),
        )
    spec = manifest.profile_spec
    assert spec is not None
    profile = get_profile(*spec)
    root = manifest.config.get("images")
    rows = read_table(input_dir).to_pylist()
    rows = rows if cfg.limit is None else rows[: cfg.limit]
    chunks = [rows[i : i + cfg.shard_size] for i in range(0, len(rows), cfg.shard_size)] or [[]]
    config = recorded(cfg) | {
        "input": str(Path(input_dir).resolve()),
        "profile_spec": profile.describe(),
        "judge_prompt": JUDGE_PROMPT if cfg.judge == "llm" else None,
        "split": "train",
    }
    output = Output(
        stage="gen-prefs",
        config=config,
        input_fingerprint=dataset_fingerprint(input_dir),
        features=prefs_features(),
        schema=PREFS_SCHEMA,
        split="train",
    )
    live = functools.cache(engine)
    live_judge = functools.cache(judge) if judge is not None else None

    def questions(part: list[dict[str, Any]]) -> tuple[pa.Table, pa.Table]:
        return _shard(part, live(), live_judge() if live_judge else None, profile, cfg, root)

    def redo(k: int, ids: set[str]) -> tuple[pa.Table, pa.Table]:
        return questions([r for r in chunks[k] if r["sample_id"] in ids])

    return run_stage(
        out,
        output,
        [len(c) for c in chunks],
        lambda k: questions(chunks[k]),
        shard=shard,
        retry=Retry("status", ENGINE_ERROR, by_column("sample_id"), redo),
        overwrite=overwrite,
        progress="gen-prefs" if progress else None,
        profile=profile.describe(),
    )


def _shard(
    rows: list[dict[str, Any]],
    engine: Engine,
    judge: Engine | None,
    profile: Profile,
    cfg: GenPrefsConfig,
    root: str | None,
) -> tuple[pa.Table, pa.Table]:
    scenes = open_images([r["images"][0] for r in rows], root, cfg.threads)
    rejects = [
        {"sample_id": r["sample_id"], "field": "images", "reason": f"{type(im).__name__}: {im}"}
        for r, im in zip(rows, scenes, strict=True)
        if isinstance(im, Exception)
    ]
    kept = [(r, im) for r, im in zip(rows, scenes, strict=True) if not isinstance(im, Exception)]
    questions = [r["messages"][0]["content"][1]["text"] for r, _ in kept]
    prompts = [[_user(im, q)] for (_, im), q in zip(kept, questions, strict=True)]
    box_sampling = Sampling(cfg.boxes, cfg.box_temperature, 1.0, cfg.max_tokens)
    seeds = [sample_seed(cfg.seed, r["sample_id"], "boxes") for r, _ in kept]
    drafts = engine.generate(prompts, box_sampling, seeds) if kept else []
    out, asks = [], []  # asks: (row, candidate, conversation) of every answer request
    for k, ((r, im), q, gens) in enumerate(zip(kept, questions, drafts, strict=True)):
        errors = [g.error or "engine error" for g in gens if g.finish_reason == "error"]
        w, h = float(r["width"]), float(r["height"])
        target = first_box(r["messages"][1]["content"][0]["text"], profile, w, h)
        candidates = [
            {"text": g.text, "box": first_box(g.text, profile, w, h), "origin": "policy"} for g in gens
        ]
        boxes = [c["box"] for c in candidates if c["box"] is not None]
        if target is not None and boxes and all(_iou(b, target) >= cfg.negative_iou for b in boxes):
            negative = _negative(target, boxes, w, h, cfg, r["sample_id"])
            if negative is not None:
                model = profile.to_model(negative[None], w, h)[0]
                candidates.append({"text": box_turn(profile, model), "box": negative, "origin": "negative"})
        images = [r["images"][0]]
        for j, c in enumerate(candidates):
            c.update(crop=-1, answers=[], accuracy=[], judge_raw=[], score=0.0)
            if c["box"] is None:
                continue
            view = crop(im, c["box"], min_size=profile.factor)
            c["crop"] = len(images)
            images.append({"bytes": _png(view), "path": None})
            model = profile.to_model(c["box"][None], w, h)[0]
            turns = [
                _user(im, q),
                {"role": "assistant", "content": box_turn(profile, model)},
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "image": view},
                        {"type": "text", "text": crop_text(profile, model)},
                    ],
                },
            ]
            asks.append((k, j, turns))
        out.append(
            {
                "row": r,
                "candidates": candidates,
                "images": images,
                "question": questions[k],
                "target": target,
                "errors": errors,
            }
        )
    answer_sampling = Sampling(cfg.answers, cfg.answer_temperature, 1.0, cfg.max_tokens)
    seeds = [sample_seed(cfg.seed, kept[k][0]["sample_id"], "answers", j) for k, j, _ in asks]
    answers = engine.generate([t for _, _, t in asks], answer_sampling, seeds) if asks else []
    for (k, j, _), gens in zip(asks, answers, strict=True):
        out[k]["candidates"][j]["answers"] = [g.text for g in gens]
        out[k]["errors"] += [g.error or "engine error" for g in gens if g.finish_reason == "error"]
    _judge(out, judge, profile)
    table = pa.Table.from_pylist([_row(o) for o in out], PREFS_SCHEMA)
    return table, pa.Table.from_pylist(rejects, REJECTS_SCHEMA)


def _judge(out: list[dict[str, Any]], judge: Engine | None, profile: Profile) -> None:
    """Every answer's accuracy: the reward module's against the pairs, or the LLM judge's score / 10."""
    flat = [(o, c, a) for o in out for c in o["candidates"] for a in c["answers"]]
    if not flat:
        return
    if judge is None:
        rows = [o["row"] for o, _, _ in flat]
        targets = Targets.from_rows(
            [r["pairs"] for r in rows],
            ["referring"] * len(rows),
            [r["width"] for r in rows],
            [r["height"] for r in rows],
        )
        accuracy = score([a for _, _, a in flat], targets, profile).accuracy
        raw = [None] * len(flat)
    else:
        prompts = [
            [
                {
                    "role": "user",
                    "content": [
                        {
                            "type": "text",
                            "text": JUDGE_PROMPT.format(
                                question=o["question"], reference=_reference(o["row"]), answer=a
                            ),
                        }
                    ],
                }
            ]
            for o, _, a in flat
        ]
        replies = [g[0] for g in judge.generate(prompts, Sampling(1, 0.0, 1.0, 8), [0] * len(prompts))]
        raw = [g.text for g in replies]
        accuracy = np.array([np.nan if g.finish_reason == "error" else _judge_score(g.text) for g in replies])
        for (o, _, _), g in zip(flat, replies, strict=True):
            if g.finish_reason == "error":  # unknown, not wrong: the row is failed, for a rerun
                o["errors"].append(f"judge: {g.error or 'engine error'}")
    for (_, c, _), acc, text in zip(flat, accuracy, raw, strict=True):
        c["accuracy"].append(float(acc))
        if text is not None:
            c["judge_raw"].append(text)
    for o in out:
        for c in o["candidates"]:
            c["score"] = float(np.mean(c["accuracy"])) if c["accuracy"] else 0.0


def _judge_score(reply: str) -> float:
    found = re.search(r"-?\d+(?:\.\d+)?", reply or "")
    return float(np.clip(float(found.group()) / 10.0, 0.0, 1.0)) if found else 0.0


def _reference(row: dict[str, Any]) -> str:
    return str(row["messages"][-1]["content"][0]["text"]).removeprefix("<answer>").removesuffix("</answer>")


def _negative(
    target: np.ndarray, boxes: list[np.ndarray], w: float, h: float, cfg: GenPrefsConfig, sample_id: str
) -> np.ndarray | None:
    """A random box of the target's size overlapping neither it nor any candidate (seeded)."""
    rng = np.random.default_rng(sample_seed(cfg.seed, sample_id, "negative"))
    bw, bh = min(target[2] - target[0], w / 2), min(target[3] - target[1], h / 2)
    for _ in range(64):
        x, y = rng.uniform(0, w - bw), rng.uniform(0, h - bh)
        box = np.array([x, y, x + bw, y + bh])
        if all(_iou(box, b) < cfg.negative_iou for b in [target, *boxes]):
            return box
    return None


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    iw = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    ih = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = iw * ih
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def _user(image: Any, question: str) -> dict[str, Any]:
    return {
        "role": "user",
        "content": [{"type": "image", "image": image}, {"type": "text", "text": question}],
    }


def _row(o: dict[str, Any]) -> dict[str, Any]:
    r = o["row"]
    return {
        "sample_id": r["sample_id"],
        "source_id": r["source_id"],
        "task": r["task"],
        "images": o["images"],
        "question": o["question"],
        "reference": _reference(r),
        "target": None if o["target"] is None else o["target"].tolist(),
        "width": r["width"],
        "height": r["height"],
        "pairs": r["pairs"],
        "candidates": [c | {"box": None if c["box"] is None else c["box"].tolist()} for c in o["candidates"]],
        "prompt": [r["messages"][0]],
        "status": ENGINE_ERROR if o["errors"] else "ok",
        "error": o["errors"][0] if o["errors"] else None,
    }


def _png(image: Any) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()
