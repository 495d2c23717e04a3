"""``hoidata predict``: a model's HOI detections over a canonical dataset, ready for ``eval hico``.

Every image gets one fixed detection question (the first ``detection`` paraphrase with the
profile's answer format: evaluation should not vary its prompt) and one greedy answer by default.
The answer is parsed through the profile into canonical pixels. VLMs give no scores, so each
prediction keeps its position in the answer as ``rank`` and no ``score``: ``eval`` ranks by it and
says so. The raw text, finish reason and any engine error stay in the row, so a bad number can be
traced to what the model wrote.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from hoidata.engines import Engine, Sampling
from hoidata.errors import HoidataError
from hoidata.eval.predictions import PREDICTION, prediction_features
from hoidata.gen.loop import sample_seed
from hoidata.io import Manifest, StageRun, read_manifest
from hoidata.io.files import fingerprint
from hoidata.io.images import open_images
from hoidata.pipelines.boxes import image_root, input_shards
from hoidata.profiles import Profile, get_profile
from hoidata.profiles.answers import parse_answers
from hoidata.schemas.canonical import REJECTS_SCHEMA
from hoidata.sft.prompts import templates

PREDICT_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("predictions", pa.list_(PREDICTION)),
        ("completion", pa.string()),
        ("finish_reason", pa.string()),  # stop | length | error
        ("error", pa.string()),
    ]
)


@dataclass
class PredictConfig:
    engine: str = "hf"
    model: str = ""
    profile: str = "qwen2.5-vl"
    min_pixels: int | None = None  # the profile's budget unless given; keep it equal to training's
    max_pixels: int | None = None
    temperature: float = 0.0  # greedy: one reproducible answer per image
    max_tokens: int = 1024
    seed: int = 0
    shard_size: int = 512
    threads: int = 4


def question(profile: Profile) -> str:
    """The one detection question every image is asked."""
    return templates()["detection"][0].replace("{format}", profile.answer_hint())


def predict(
    input_dir: Path | str,
    out: Path | str,
    cfg: PredictConfig,
    engine: Callable[[], Engine],
    *,
    overwrite: bool = False,
) -> Manifest:
    start = time.perf_counter()
    manifest = read_manifest(input_dir)
    if manifest.stage not in ("convert", "boxes"):
        raise HoidataError(
            f"expected a canonical dataset (convert or boxes), got {manifest.stage!r}", file=str(input_dir)
        )
    profile = get_profile(cfg.profile, cfg.min_pixels, cfg.max_pixels)
    root = image_root(manifest)
    shards = input_shards(input_dir, manifest)
    config = {k: v for k, v in asdict(cfg).items() if k != "threads"} | {
        "input": str(Path(input_dir).resolve()),
        "question": question(profile),
        "profile_spec": profile.describe(),
        "ranking": "unscored: predictions keep their position in the answer as rank",
        "split": manifest.config.get("split", "test"),
    }
    features = prediction_features() | {
        name: {"dtype": "string", "_type": "Value"} for name in ("completion", "finish_reason", "error")
    }
    run = StageRun(
        out,
        stage="predict",
        config=config,
        input_fingerprint=fingerprint([Path(input_dir) / "manifest.json"]),
        features=features,
        schema=PREDICT_SCHEMA,
        split=str(config["split"]),
        num_shards=len(shards),
        overwrite=overwrite,
    )
    todo = [i for i in range(len(shards)) if not run.is_done(i)]
    live = engine() if todo else None
    records_in = 0
    for i, shard in enumerate(shards):
        records_in += pq.read_metadata(shard).num_rows
        if i in todo:
            table = pq.read_table(shard, columns=["sample_id", "image", "width", "height"])
            assert live is not None
            run.write_shard(i, *_predict_table(table, live, profile, cfg, root))
    return run.finish(records_in, started=start, profile=profile.describe())


def _predict_table(
    table: pa.Table, engine: Engine, profile: Profile, cfg: PredictConfig, root: str | None
) -> tuple[pa.Table, pa.Table]:
    rows = table.to_pylist()
    images = open_images([r["image"] for r in rows], root, cfg.threads)
    text = question(profile)
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
    out: list[list[Any]] = []
    for start in range(0, len(kept), cfg.shard_size):
        batch = conversations[start : start + cfg.shard_size]
        seeds = [sample_seed(cfg.seed, r["sample_id"], 0) for r, _ in kept[start : start + cfg.shard_size]]
        out += engine.generate(batch, sampling, seeds)
    generations = [g[0] for g in out]
    texts = [g.text for g in generations]
    widths = np.array([r["width"] for r, _ in kept], np.float64)
    heights = np.array([r["height"] for r, _ in kept], np.float64)
    answers = parse_answers(profile, texts, widths, heights)
    verbs, labels = answers.verb.to_pylist(), answers.object_label.to_pylist()
    has_object = answers.has_object
    result = []
    for k, ((r, _), g) in enumerate(zip(kept, generations, strict=True)):
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
                "completion": g.text,
                "finish_reason": g.finish_reason,
                "error": g.error,
            }
        )
    return pa.Table.from_pylist(result, PREDICT_SCHEMA), pa.Table.from_pylist(rejects, REJECTS_SCHEMA)
