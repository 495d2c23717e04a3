"""``hoidata gen-cot``: tool-augmented chain-of-thought rollouts, scored by the GRPO rewards.

Prompts are the questions ``build-sft`` asks (from a ``boxes`` dataset, for ``--task``; or an
SFT dataset as it is), told to think, use the tools and answer. Each shard of ``shard_size``
prompts runs the multi-turn loop (asynchronously by default: :mod:`hoidata.gen.rollouts`; or as
one wave per turn) and is written atomically: a killed run
resumes at the first unfinished shard, and seeds follow the sample (not the batch or the shard
layout), so the rerun writes what an uninterrupted run would have. ``--shard i/N`` runs every
N-th shard, i first, into the same directory: several processes or machines (a shared file system)
fill one dataset, and whichever finds every shard written finishes it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
from PIL import Image

from hoidata.engines import Engine, Sampling
from hoidata.engines.options import GenerationConfig
from hoidata.errors import HoidataError
from hoidata.gen.loop import ENGINE_ERROR, LoopConfig, Trace, run_loop
from hoidata.gen.media import CropEncoder, SourceImages
from hoidata.gen.records import GEN_SCHEMA, gen_features, rollout_rows
from hoidata.gen.rollouts import run_rollouts
from hoidata.imagine import LIVE_BACKENDS, live_backend
from hoidata.io import (
    ALL_SHARDS,
    Manifest,
    Output,
    ShardSpec,
    dataset_fingerprint,
    read_manifest,
    read_table,
    require_stage,
    run_stage,
)
from hoidata.io.images import open_images
from hoidata.io.progress import Progress
from hoidata.io.retry import Retry, by_column
from hoidata.options import option, recorded
from hoidata.pipelines.build_sft import BuildSftConfig, build_table
from hoidata.profiles import Profile, get_profile
from hoidata.rewards import RewardConfig, Targets, score
from hoidata.schemas.canonical import REJECTS_SCHEMA
from hoidata.sft import prompts
from hoidata.tools.environment import TOOL_NAMES, HoiEnvironment, tool_schemas

COT_TASKS = ("referring", "grounding", "detection", "spatial")
LOOPS = ("async", "waves")


@dataclass
class GenCotConfig(GenerationConfig):
    """What decides a generation run; recorded in the manifest (``threads`` aside: it changes speed,
    not the result, so the processes of one run and a resumed run may differ in it)."""

    task: str = option("referring", "Which build-sft questions to ask (boxes input).", choices=COT_TASKS)
    n: int = option(4, "Rollouts per prompt.", minimum=1)
    max_turns: int = option(3, "Model turns per rollout, tool-calling ones included.", minimum=1)
    temperature: float = option(0.7, "Sampling temperature.")
    top_p: float = option(0.95, "Nucleus sampling.")
    max_tokens: int = option(1024, "Tokens per model turn.", minimum=1)
    seed: int = option(0, "Seed; with the sample id it fixes every rollout.")
    shard_size: int = option(256, "Prompts per output shard (the unit of resume).", minimum=1)
    limit: int | None = option(None, "Only the first prompts (a trial run).", minimum=0)
    tools: tuple[str, ...] = option(
        TOOL_NAMES, "Tools offered, comma-separated (e.g. zoom_in for chain-of-focus data)."
    )
    threads: int = option(
        4, "Threads decoding images and encoding crops (and, async, running tools).", record=False, minimum=1
    )
    loop: str = option(
        "async",
        "async: a conversation goes back to the engine as soon as its turn and tools are done, tools "
        "run while others generate; waves: one engine call per turn for every open rollout.",
        choices=LOOPS,
        record=False,
    )
    max_open: int = option(256, "async: prompts in flight at once (bounds memory).", record=False, minimum=1)
    imagine_cache: str | None = option(
        None, "An imagine cache (hoidata imagine): the imagine tool answers from it first."
    )
    imagine_backend: str = option(
        "context",
        "Live imagine backend for regions the cache lacks: context (crops), none (a tool error), "
        "http (--imagine-url), diffusers (--imagine-model).",
        choices=LIVE_BACKENDS,
    )
    imagine_url: str | None = option(None, "http imagine backend: the service's endpoint.")
    imagine_model: str | None = option(None, "diffusers imagine backend: a pipeline directory or Hub id.")


def gen_cot(
    input_dir: Path | str,
    out: Path | str,
    cfg: GenCotConfig,
    engine: Callable[[], Engine],
    *,
    overwrite: bool = False,
    progress: bool = True,
    shard: ShardSpec = ALL_SHARDS,
) -> Manifest | None:
    """Roll out every prompt ``cfg.n`` times and write one row per rollout; ``engine`` is built only
    when some shard is left to run (a finished run loads no model). Returns the manifest, or None
    when this process ran its shards and others are still to come (``--shard i/N``)."""
    if not cfg.tools or set(cfg.tools) - set(TOOL_NAMES):
        raise HoidataError(
            f"--tools must be some of {', '.join(TOOL_NAMES)}, got {', '.join(cfg.tools) or 'none'}"
        )
    samples, profile, root = prompt_rows(Path(input_dir), cfg.task, cfg.limit)
    chunks = [samples[i : i + cfg.shard_size] for i in range(0, len(samples), cfg.shard_size)] or [[]]
    config = recorded(cfg) | {
        "input": str(Path(input_dir).resolve()),
        "images": root,
        "profile": profile.name,
        "profile_spec": profile.describe(),
        "instruction": prompts.COT_INSTRUCTION,
        "split": "train",
    }
    output = Output(
        stage="gen-cot",
        config=config,
        input_fingerprint=dataset_fingerprint(input_dir),
        features=gen_features(decode_images=True),
        schema=GEN_SCHEMA,
        split="train",
    )
    live = functools.cache(engine)  # loaded by the first shard that runs
    bar = Progress("gen-cot", unit="prompt") if progress else None

    def rollouts(part: list[dict[str, Any]]) -> tuple[pa.Table, pa.Table, dict[str, float]]:
        if cfg.loop == "waves":
            return _shard(part, live(), profile, cfg, root)
        return _shard_async(part, live(), profile, cfg, root, bar)

    def redo(k: int, prompt_ids: set[str]) -> tuple[pa.Table, pa.Table, dict[str, float]]:
        """The rollouts of these prompts of shard ``k`` (their seeds depend on the prompt only)."""
        return rollouts([s for s in chunks[k] if s["sample_id"] in prompt_ids])

    return run_stage(
        out,
        output,
        [len(c) for c in chunks],
        lambda k: rollouts(chunks[k]),
        shard=shard,
        overwrite=overwrite,
        rows_are_records=False,
        progress=bar,
        retry=Retry("status", ENGINE_ERROR, by_column("prompt_id"), redo),
        profile=profile.describe(),
    )


def _shard(
    samples: list[dict[str, Any]],
    engine: Engine | None,
    profile: Profile,
    cfg: GenCotConfig,
    root: str | None,
) -> tuple[pa.Table, pa.Table, dict[str, float]]:
    """Roll out one shard's prompts; samples whose image cannot be read are rejects."""
    assert engine is not None
    kept, prompts, stored, rows, rejects = [], [], [], [], []
    opened = open_images([s["images"][0] for s in samples], root, cfg.threads)
    for s, image in zip(samples, opened, strict=True):
        if isinstance(image, Exception):
            reason = f"{type(image).__name__}: {image}"
            rejects.append({"sample_id": s["sample_id"], "field": "images", "reason": reason})
            continue
        prompt, shown = _prompt(s, image)
        kept.append(s)
        stored.append(prompt)
        prompts.append(shown)
        rows.append({**s, "images": [image]})
    traces = run_loop(
        engine,
        prompts,
        rows,
        _environment(cfg, profile),
        _loop_config(cfg),
        tools=tool_schemas(cfg.tools),
        sample_ids=[s["sample_id"] for s in kept],
    )
    return _tables(traces, kept, stored, rejects, engine, profile, cfg)


def _shard_async(
    samples: list[dict[str, Any]],
    engine: Engine,
    profile: Profile,
    cfg: GenCotConfig,
    root: str | None,
    bar: Progress | None,
) -> tuple[pa.Table, pa.Table, dict[str, float]]:
    """One shard through the async loop: each image decoded when its prompt is admitted (once for
    all prompts showing it), each distinct crop encoded once, while other rollouts generate."""
    images = SourceImages(root)
    stored: list[list[dict[str, Any]]] = [[] for _ in samples]

    def load(i: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        image = images.open(samples[i]["images"][0])
        stored[i], shown = _prompt(samples[i], image)
        return shown, {**samples[i], "images": [image]}

    with ThreadPoolExecutor(cfg.threads, "hoidata-encode") as pool:
        encoder = CropEncoder(pool)
        traces, failures = run_rollouts(
            engine,
            len(samples),
            load,
            _environment(cfg, profile),
            _loop_config(cfg),
            tools=tool_schemas(cfg.tools),
            sample_ids=[s["sample_id"] for s in samples],
            max_open=cfg.max_open,
            threads=cfg.threads,
            encoder=encoder,
            done=None if bar is None else lambda _: bar.update(1),
        )
        rejects = [
            {"sample_id": samples[i]["sample_id"], "field": "images", "reason": f"{type(e).__name__}: {e}"}
            for i, e in sorted(failures.items())
        ]
        return _tables(traces, samples, stored, rejects, engine, profile, cfg, encoder)


def _environment(cfg: GenCotConfig, profile: Profile) -> Callable[[], HoiEnvironment]:
    """One fresh tool environment per rollout, in either loop."""
    return HoiEnvironment.factory(
        cfg.tools,
        profile=profile,
        imagine_backend=live_backend(cfg.imagine_backend, url=cfg.imagine_url, model=cfg.imagine_model),
        imagine_cache=cfg.imagine_cache,
    )


def _loop_config(cfg: GenCotConfig) -> LoopConfig:
    return LoopConfig(Sampling(cfg.n, cfg.temperature, cfg.top_p, cfg.max_tokens), cfg.max_turns, cfg.seed)


def _tables(
    traces: list[Trace],
    samples: list[dict[str, Any]],
    stored: list[list[dict[str, Any]]],
    rejects: list[dict[str, Any]],
    engine: Engine,
    profile: Profile,
    cfg: GenCotConfig,
    encoder: CropEncoder | None = None,
) -> tuple[pa.Table, pa.Table, dict[str, float]]:
    """Score the rollouts (``samples[t.sample]`` is a trace's SFT row) and make the shard's tables."""
    kept = samples
    targets = Targets.from_rows(
        [kept[t.sample]["pairs"] for t in traces],
        [kept[t.sample]["task"] for t in traces],
        [kept[t.sample]["width"] for t in traces],
        [kept[t.sample]["height"] for t in traces],
    )
    scores = score([t.messages for t in traces], targets, profile, RewardConfig())
    out = rollout_rows(
        traces,
        kept,
        stored,
        scores,
        engine=engine.name,
        model=engine.model,
        seed=cfg.seed,
        tools_json=orjson.dumps(tool_schemas(cfg.tools)).decode(),
        threads=cfg.threads,
        encoder=encoder,
    )
    used = sum(t.prompt_tokens + t.completion_tokens for t in traces)
    tables = pa.Table.from_pylist(out, GEN_SCHEMA), pa.Table.from_pylist(rejects, REJECTS_SCHEMA)
    return (*tables, {"tokens": float(used)})


def question(sample: dict[str, Any]) -> str:
    """A sample's question with the think / tools / answer instruction."""
    user = next(m for m in sample["messages"] if m["role"] == "user")
    text = next(b["text"] for b in user["content"] if b["type"] == "text")
    return prompts.with_cot_instruction(text)


def _prompt(sample: dict[str, Any], image: Image.Image) -> tuple[list[dict], list[dict]]:
    """The stored prompt (image placeholder) and the one sent (PIL image), with the instruction."""
    stored = [{"type": "image", "text": None}, {"type": "text", "text": question(sample)}]
    shown = [
        {"type": "image", "image": image} if b["type"] == "image" else {"type": "text", "text": b["text"]}
        for b in stored
    ]
    return [{"role": "user", "content": stored, "tool_calls": None}], [{"role": "user", "content": shown}]


def prompt_rows(
    input_dir: Path, task: str, limit: int | None = None
) -> tuple[list[dict[str, Any]], Profile, str | None]:
    """SFT rows to take prompts from: an SFT dataset as is, or build-sft's questions on a boxes one
    (shared by generation and GRPO, so both ask the same questions). Returns the rows, the
    dataset's profile and its image root."""
    manifest = read_manifest(input_dir)
    require_stage(manifest, input_dir, "boxes", "build-sft")
    spec = manifest.profile_spec
    if spec is None:
        raise HoidataError("the dataset names no model profile (profile_spec)", file=str(input_dir))
    profile = get_profile(*spec)
    root = manifest.config.get("images")
    if manifest.stage == "build-sft":
        table = read_table(input_dir)
    else:
        if task == "cof":
            raise HoidataError(
                "--task cof writes answers with a crop; ask referring or spatial questions instead"
            )
        mode = "embed" if manifest.embedded_images else "path"
        table, _ = build_table(read_table(input_dir), profile, BuildSftConfig(task=task), mode, root)
    rows = table.to_pylist()
    return (rows if limit is None else rows[:limit]), profile, root
