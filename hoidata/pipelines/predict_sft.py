"""``hoidata predict`` on an SFT dataset: each sample's own question, for ``eval grounding|referring``.

A grounding, referring or detection sample is asked its stored question. A spatial sample is asked
the question rebuilt from its ``refer_boxes`` by :func:`hoidata.sft.spatial_prompt.spatial_question`,
the function ``build-sft spatial`` writes with, so a spatial-linking model is asked exactly the text
it was trained on (box tokens included), even on data built before the box tokens existed. The rows
have ``predict``'s schema and are keyed by the sample id, which the answer evaluators join on.

A run directory with ``spatial_linking.safetensors`` runs with its module (:func:`with_spatial_linking`):
only the ``hf`` engine can, so another engine is refused rather than answering without it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from hoidata.engines import Engine, Sampling
from hoidata.errors import HoidataError
from hoidata.eval.predictions import prediction_features
from hoidata.gen.loop import sample_seed
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
from hoidata.models.spatial_config import SpatialLinkingConfig, check_frame, has_spatial_linking
from hoidata.options import recorded
from hoidata.pipelines.predict import PREDICT_SCHEMA, PredictConfig
from hoidata.profiles import Profile
from hoidata.profiles.answers import parse_answers
from hoidata.schemas.canonical import REJECTS_SCHEMA
from hoidata.sft.spatial_prompt import sample_question

COLUMNS = ["sample_id", "task", "images", "messages", "refer_boxes", "pairs", "width", "height"]


def with_spatial_linking(
    factory: Callable[[], Engine], engine: str, model: str, profile: Profile
) -> Callable[[], Engine]:
    """``factory``, attaching the run's spatial-linking module to the model it loads (if it has one)."""
    if not has_spatial_linking(model):
        return factory
    cfg = SpatialLinkingConfig.load(model)
    check_frame(cfg, profile.name, str(profile.frame))
    if engine != "hf":
        raise HoidataError(
            f"the model carries a spatial-linking module, which only --engine hf runs (--engine {engine} "
            "would answer without it)",
            file=model,
        )

    def build() -> Engine:
        from hoidata.models.spatial_linking import load_spatial_linking  # imports torch

        live = factory()
        load_spatial_linking(live.network, model, live.processor.tokenizer)  # type: ignore[attr-defined]
        return live

    return build


def predict_questions(
    input_dir: Path | str,
    out: Path | str,
    cfg: PredictConfig,
    engine: Callable[[], Engine],
    *,
    overwrite: bool = False,
    shard: ShardSpec = ALL_SHARDS,
) -> Manifest | None:
    """Ask every sample of an SFT dataset its question; one row per sample."""
    manifest = read_manifest(input_dir)
    require_stage(manifest, input_dir, "build-sft")
    if cfg.tools:
        raise HoidataError("--tools: an SFT dataset's questions are asked as they are, without tools")
    if getattr(cfg, "task", "auto") != "auto":
        raise HoidataError(f"--task {cfg.task}: an SFT dataset's samples are asked their own questions")
    profile = cfg.resolved_profile()
    built = manifest.profile_spec
    if built and (built.name, built.min_pixels, built.max_pixels) != (
        profile.name,
        profile.min_pixels,
        profile.max_pixels,
    ):
        raise HoidataError(
            f"the dataset was built for {built.name} at {built.min_pixels}..{built.max_pixels} pixels, "
            f"predict asks as {profile.name} at {profile.min_pixels}..{profile.max_pixels}: pass the "
            "dataset's --profile and budget",
            file=str(input_dir),
        )
    config = recorded(cfg) | {
        "input": str(Path(input_dir).resolve()),
        "questions": "each sample's own (spatial: rebuilt from refer_boxes)",
        "profile_spec": profile.describe(),
        "ranking": "unscored: predictions keep their position in the answer as rank",
        "split": manifest.split,
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
        split=manifest.split,
    )
    live = functools.cache(engine)
    root = manifest.image_root
    return run_stage_on_shards(
        input_dir,
        out,
        output,
        lambda table, _: _answer_table(table, live(), profile, cfg, root),
        columns=COLUMNS,
        shard=shard,
        overwrite=overwrite,
        progress="predict",
        profile=profile.describe(),
    )


def _answer_table(
    table: pa.Table, engine: Engine, profile: Profile, cfg: PredictConfig, root: str | None
) -> tuple[pa.Table, pa.Table]:
    rows = table.to_pylist()
    firsts = [r["images"][0] if r["images"] else {"bytes": None, "path": None} for r in rows]
    images = open_images(firsts, root, cfg.threads)
    kept, rejects = [], []
    for r, image in zip(rows, images, strict=True):
        if isinstance(image, Exception):
            reason = f"{type(image).__name__}: {image}"
            rejects.append({"sample_id": r["sample_id"], "field": "images", "reason": reason})
        else:
            kept.append((r, image))
    conversations = [
        [
            {
                "role": "user",
                "content": [
                    {"type": "image", "image": im},
                    {"type": "text", "text": sample_question(r, profile)},
                ],
            }
        ]
        for r, im in kept
    ]
    sampling = Sampling(n=1, temperature=cfg.temperature, max_tokens=cfg.max_tokens)
    generated = []
    for start in range(0, len(kept), cfg.shard_size):
        part = kept[start : start + cfg.shard_size]
        seeds = [sample_seed(cfg.seed, r["sample_id"], 0) for r, _ in part]
        generated += [
            g[0] for g in engine.generate(conversations[start : start + cfg.shard_size], sampling, seeds)
        ]
    widths = np.array([r["width"] for r, _ in kept], np.float64)
    heights = np.array([r["height"] for r, _ in kept], np.float64)
    answers = parse_answers(profile, [g.text for g in generated], widths, heights)
    verbs, labels = answers.verb.to_pylist(), answers.object_label.to_pylist()
    result = []
    for k, ((r, _), g) in enumerate(zip(kept, generated, strict=True)):
        s, e = answers.offsets[k], answers.offsets[k + 1]
        predictions = [
            {
                "person_bbox": answers.person[j].tolist(),
                "object_bbox": answers.object[j].tolist() if answers.has_object[j] else None,
                "object": labels[j],
                "verb": verbs[j],
                "hoi_id": None,
                "score": None,
                "rank": int(j - s),
            }
            for j in range(s, e)
        ]
        row = {"sample_id": r["sample_id"], "predictions": predictions, "completion": g.text}
        result.append(row | {"finish_reason": g.finish_reason, "error": g.error})
    return pa.Table.from_pylist(result, PREDICT_SCHEMA), pa.Table.from_pylist(rejects, REJECTS_SCHEMA)
