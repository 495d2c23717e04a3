"""``hoidata predict``: a model's HOI detections over a canonical dataset, ready for ``eval hico``.

Every image gets one fixed detection question (the first ``detection`` paraphrase with the
profile's answer format: evaluation should not vary its prompt) and one greedy answer by default.
A model trained to use tools can have them at test time too (``--tools zoom_in``): the question
then carries the think/tools/answer instruction it was trained with, and the multi-turn loop of
gen-cot runs its calls. Only tools that need no ground truth are offered (the detection tools
would read the annotations being evaluated).
The answer is parsed through the profile into canonical pixels. VLMs give no scores, so each
prediction keeps its position in the answer as ``rank`` and no ``score``: ``eval`` ranks by it and
says so. The raw text, finish reason and any engine error stay in the row, so a bad number can be
traced to what the model wrote.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hoidata.engines import Engine, Sampling
from hoidata.engines.options import GenerationConfig
from hoidata.errors import HoidataError
from hoidata.eval.predictions import PREDICTION, prediction_features
from hoidata.gen.loop import ANSWERED, ENGINE_ERROR, LENGTH, MAX_TURNS, LoopConfig, run_loop, sample_seed
from hoidata.io import (
    ALL_SHARDS,
    Manifest,
    Output,
    ShardSpec,
    dataset_fingerprint,
    read_manifest,
    require_stage,
    run_stage_on_shards,
)
from hoidata.io.images import open_images
from hoidata.io.retry import Retry, by_column
from hoidata.options import option, recorded
from hoidata.pipelines.predict_qa import predict_qa_table
from hoidata.profiles import PROFILES, Profile, get_profile
from hoidata.profiles.answers import parse_answers
from hoidata.schemas.canonical import REJECTS_SCHEMA
from hoidata.sft.prompts import templates, with_cot_instruction
from hoidata.sft.qa import BOX_FORMATS
from hoidata.tools.environment import HoiEnvironment, tool_schemas

PREDICT_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("predictions", pa.list_(PREDICTION)),
        ("completion", pa.string()),
        ("finish_reason", pa.string()),  # stop | length | error | max_turns
        ("error", pa.string()),
    ]
)


PREDICT_TASKS = ("auto", "detection", "qa")
TEST_TIME_TOOLS = ("imagine", "zoom_in")  # they look at the image only, never at the annotations


@dataclass
class PredictConfig(GenerationConfig):
    """What decides a prediction run; recorded in the manifest."""

    profile: str = option("qwen2.5-vl", "How the model writes boxes and answers.", choices=tuple(PROFILES))
    min_pixels: int | None = option(
        None, "Pixel budget (default: the profile's); keep it equal to training's.", minimum=1
    )
    max_pixels: int | None = option(None, "Pixel budget (default: the profile's).", minimum=1)
    temperature: float = option(0.0, "0: greedy, one reproducible answer per image.")
    max_tokens: int = option(1024, "Tokens per answer.", minimum=1)
    seed: int = option(0, "Seed of sampling, with the sample id (when temperature > 0).")
    shard_size: int = option(512, "Images per engine call.", minimum=1)
    threads: int = option(4, "Threads decoding images.", record=False, minimum=1)
    tools: tuple[str, ...] = option(
        (),
        "Tools offered at test time, comma-separated: zoom_in, imagine (none: one plain answer). "
        "The question then carries the gen-cot instruction.",
    )
    max_turns: int = option(3, "With tools: model turns per image, tool-calling ones included.", minimum=1)
    task: str = option(
        "auto",
        "detection: every HOI of every image (eval hico); qa: each QA item, as build-sft hoiqa wrote it "
        "(eval hoiqa); auto: qa for datasets of QA items (convert hoiqa, hoidata qa), else detection.",
        choices=PREDICT_TASKS,
    )
    box_format: str = option("profile", "qa: how boxes are written, as build-sft hoiqa --box-format.")
    tags: bool = option(True, "qa: start each question with its task tag, as build-sft hoiqa --tags.")

    def resolved_profile(self) -> Profile:
        return get_profile(self.profile, self.min_pixels, self.max_pixels)


def question(profile: Profile, tools: bool = False) -> str:
    """The one detection question every image is asked (with tools: and the gen-cot instruction)."""
    text = templates()["detection"][0].replace("{format}", profile.answer_hint())
    return with_cot_instruction(text) if tools else text


def predict(
    input_dir: Path | str,
    out: Path | str,
    cfg: PredictConfig,
    engine: Callable[[], Engine],
    *,
    overwrite: bool = False,
    shard: ShardSpec = ALL_SHARDS,
) -> Manifest | None:
    """Ask every image of a canonical dataset the detection question; one row per image."""
    manifest = read_manifest(input_dir)
    require_stage(manifest, input_dir, "convert", "qa", "boxes", hint=" (predict asks a canonical dataset)")
    task = resolved_task(cfg.task, input_dir)
    if task == "qa" and cfg.tools:
        raise HoidataError("--tools are for detection; QA items are asked in one turn, as trained")
    if cfg.box_format not in BOX_FORMATS:
        raise HoidataError(f"--box-format must be one of {', '.join(BOX_FORMATS)}, got {cfg.box_format!r}")
    unknown = sorted(set(cfg.tools) - set(TEST_TIME_TOOLS))
    if unknown:
        raise HoidataError(
            f"--tools: {', '.join(unknown)} cannot be offered at test time; choose from "
            f"{', '.join(TEST_TIME_TOOLS)} (the detection tools would read the annotations being evaluated)"
        )
    if cfg.max_turns < 1:
        raise HoidataError(f"--max-turns must be at least 1, got {cfg.max_turns}")
    profile = cfg.resolved_profile()
    root = manifest.image_root
    config = recorded(cfg) | {
        "input": str(Path(input_dir).resolve()),
        "task": task,
        "question": question(profile, bool(cfg.tools)) if task == "detection" else "each QA item",
        "profile_spec": profile.describe(),
        "ranking": "unscored: predictions keep their position in the answer as rank",
        "split": manifest.config.get("split", "test"),
    }
    features = prediction_features() | {
        name: {"dtype": "string", "_type": "Value"} for name in ("completion", "finish_reason", "error")
    }
    output = Output(
        stage="predict",
        config=config,
        input_fingerprint=dataset_fingerprint(input_dir),
        features=features,
        schema=PREDICT_SCHEMA,
        split=str(config["split"]),
    )
    live = functools.cache(engine)  # loaded by the first shard that runs
    if task == "qa":
        sampling = Sampling(n=1, temperature=cfg.temperature, max_tokens=cfg.max_tokens)
        return run_stage_on_shards(
            input_dir,
            out,
            output,
            lambda table, _: predict_qa_table(
                table,
                live(),
                profile,
                box_format=cfg.box_format,
                tags=cfg.tags,
                sampling=sampling,
                seed=cfg.seed,
                batch_size=cfg.shard_size,
                root=root,
                threads=cfg.threads,
                schema=PREDICT_SCHEMA,
            ),
            columns=["sample_id", "image", "width", "height", "qa"],
            retry=Retry("finish_reason", "error", _item_records),
            shard=shard,
            overwrite=overwrite,
            rows_are_records=False,
            progress="predict",
            profile=profile.describe(),
        )

    return run_stage_on_shards(
        input_dir,
        out,
        output,
        lambda table, _: _predict_table(table, live(), profile, cfg, root),
        columns=["sample_id", "image", "width", "height"],
        retry=Retry("finish_reason", "error", by_column("sample_id")),
        shard=shard,
        overwrite=overwrite,
        progress="predict",
        profile=profile.describe(),
    )


def _item_records(rows: pa.Table) -> list[str]:
    """The image records of QA rows (``{sample_id}#{item}``)."""
    return [sid.rpartition("#")[0] for sid in rows["sample_id"].to_pylist()]


def resolved_task(task: str, input_dir: Path | str) -> str:
    """``auto``: ``qa`` when the dataset holds QA items (HOI-QA's, or ``hoidata qa``'s), else detection."""
    if task != "auto":
        return task
    for path in read_manifest(input_dir).shard_files(input_dir):
        qa = pq.read_table(path, columns=["qa"]).column("qa")
        if pc.sum(pc.list_value_length(qa)).as_py():
            return "qa"
    return "detection"


def _predict_table(
    table: pa.Table, engine: Engine, profile: Profile, cfg: PredictConfig, root: str | None
) -> tuple[pa.Table, pa.Table]:
    rows = table.to_pylist()
    images = open_images([r["image"] for r in rows], root, cfg.threads)
    text = question(profile, bool(cfg.tools))
    kept, rejects = [], []
    for r, image in zip(rows, images, strict=True):
        if isinstance(image, Exception):
            reason = f"{type(image).__name__}: {image}"
            rejects.append({"sample_id": r["sample_id"], "field": "image", "reason": reason})
        else:
            kept.append((r, image))
    conversations = [
        [{"role": "user", "content": [{"type": "image", "image": im}, {"type": "text", "text": text}]}]
        for _, im in kept
    ]
    sampling = Sampling(n=1, temperature=cfg.temperature, max_tokens=cfg.max_tokens)
    replies: list[Reply] = []
    for start in range(0, len(kept), cfg.shard_size):
        batch, part = conversations[start : start + cfg.shard_size], kept[start : start + cfg.shard_size]
        if cfg.tools:
            replies += _with_tools(engine, batch, part, profile, cfg, sampling)
        else:
            seeds = [sample_seed(cfg.seed, r["sample_id"], 0) for r, _ in part]
            generated = [g[0] for g in engine.generate(batch, sampling, seeds)]
            replies += [Reply(g.text, g.finish_reason, g.error, g.text) for g in generated]
    widths = np.array([r["width"] for r, _ in kept], np.float64)
    heights = np.array([r["height"] for r, _ in kept], np.float64)
    answers = parse_answers(profile, [reply.answer for reply in replies], widths, heights)
    verbs, labels = answers.verb.to_pylist(), answers.object_label.to_pylist()
    has_object = answers.has_object
    result = []
    for k, ((r, _), reply) in enumerate(zip(kept, replies, strict=True)):
        s, e = answers.offsets[k], answers.offsets[k + 1]
        predictions = [
            {
                "person_bbox": answers.person[j].tolist(),
                "object_bbox": answers.object[j].tolist() if has_object[j] else None,
                "object": labels[j],
                "verb": verbs[j],
                "hoi_id": None,  # eval derives it from (verb, object) in its taxonomy
                "score": None,
                "rank": int(j - s),
            }
            for j in range(s, e)
        ]
        result.append(
            {
                "sample_id": r["sample_id"],
                "predictions": predictions,
                "completion": reply.text,
                "finish_reason": reply.finish_reason,
                "error": reply.error,
            }
        )
    return pa.Table.from_pylist(result, PREDICT_SCHEMA), pa.Table.from_pylist(rejects, REJECTS_SCHEMA)


class Reply(NamedTuple):
    text: str  # what the model wrote; with tools, every turn of it
    finish_reason: str
    error: str | None
    answer: str  # what is parsed: the last turn


_FINISH = {ANSWERED: "stop", LENGTH: "length", MAX_TURNS: "max_turns", ENGINE_ERROR: "error"}


def _with_tools(
    engine: Engine,
    conversations: list[list[dict[str, Any]]],
    kept: list[tuple[dict[str, Any], Any]],
    profile: Profile,
    cfg: PredictConfig,
    sampling: Sampling,
) -> list[Reply]:
    """gen-cot's multi-turn loop, one rollout per image, with the test-time tools only."""
    # no instances or pairs: the environment knows the image and its size, nothing of the annotations
    rows = [
        {"images": [image], "width": r["width"], "height": r["height"], "sample_id": r["sample_id"]}
        for r, image in kept
    ]
    traces = run_loop(
        engine,
        conversations,
        rows,
        HoiEnvironment.factory(cfg.tools, profile=profile),
        LoopConfig(sampling, cfg.max_turns, cfg.seed),
        tools=tool_schemas(cfg.tools),
        sample_ids=[r["sample_id"] for r, _ in kept],
    )
    replies = []
    for t in traces:
        turns = [m["content"] for m in t.messages if m["role"] == "assistant"]
        replies.append(
            Reply("\n\n".join(turns), _FINISH.get(t.status, t.status), t.error, turns[-1] if turns else "")
        )
    return replies
