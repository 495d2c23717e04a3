"""``hoidata gen-cot``: tool-augmented chain-of-thought rollouts, scored by the GRPO rewards.

Prompts are the questions ``build-sft`` asks (from a ``boxes`` dataset, for ``--task``; or an
SFT dataset as it is), told to think, use the tools and answer. Each shard of ``shard_size``
prompts runs the multi-turn loop as one wave per turn and is written atomically: a killed run
resumes at the first unfinished shard, and seeds follow the sample (not the batch or the shard
layout), so the rerun writes what an uninterrupted run would have. ``--shard i/N`` runs every
N-th shard, i first, into the same directory: several processes or machines (a shared file system)
fill one dataset, and whichever finds every shard written finishes it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
from PIL import Image

from hoidata.engines import Engine, Sampling
from hoidata.errors import HoidataError
from hoidata.gen.loop import LoopConfig, run_loop
from hoidata.gen.records import GEN_SCHEMA, gen_features, rollout_rows
from hoidata.io import Manifest, StageRun, read_manifest, read_table
from hoidata.io.files import fingerprint
from hoidata.io.images import open_images
from hoidata.profiles import Profile, get_profile
from hoidata.rewards import RewardConfig, Targets, score
from hoidata.schemas.canonical import REJECTS_SCHEMA
from hoidata.sft import prompts
from hoidata.tools.environment import TOOL_NAMES, HoiEnvironment, tool_schemas


@dataclass
class GenCotConfig:
    """What decides a generation run; recorded in the manifest (``threads`` and ``shard`` aside: they
    change speed, not the result, so the processes of one run and a resumed run may differ in them)."""

    engine: str = "hf"
    model: str = ""
    task: str = "referring"  # when the input is a boxes dataset: which build-sft questions to ask
    n: int = 4
    max_turns: int = 3
    temperature: float = 0.7
    top_p: float = 0.95
    max_tokens: int = 1024
    seed: int = 0
    shard_size: int = 256
    shard: str = "0/1"  # i/N: this machine runs shards i, i+N, i+2N, ...
    limit: int | None = None  # first prompts only (trial runs)
    threads: int = 4  # image decoding and crop encoding
    tools: tuple[str, ...] = TOOL_NAMES  # offered to the model (e.g. zoom_in only, for chain-of-focus data)


def gen_cot(
    input_dir: Path | str,
    out: Path | str,
    cfg: GenCotConfig,
    engine: Callable[[], Engine],
    *,
    overwrite: bool = False,
    progress: bool = True,
) -> Manifest | None:
    """Roll out every prompt ``cfg.n`` times and write one row per rollout; ``engine`` is built only
    when some shard is left to run (a finished run loads no model). Returns the manifest, or None
    when this process ran its shards and others are still to come (``--shard i/N``)."""
    start = time.perf_counter()
    if not cfg.tools or set(cfg.tools) - set(TOOL_NAMES):
        raise HoidataError(
            f"--tools must be some of {', '.join(TOOL_NAMES)}, got {', '.join(cfg.tools) or 'none'}"
        )
    index, count = parse_shard(cfg.shard)
    samples, profile, root = prompt_rows(Path(input_dir), cfg.task, cfg.limit)
    chunks = [samples[i : i + cfg.shard_size] for i in range(0, len(samples), cfg.shard_size)] or [[]]
    mine = list(range(index, len(chunks), count))
    if count > 1 and overwrite:
        raise HoidataError("--overwrite cannot be combined with --shard i/N (other shards may be running)")
    config = {k: v for k, v in asdict(cfg).items() if k not in ("threads", "shard")} | {
        "input": str(Path(input_dir).resolve()),
        "images": root,
        "profile": profile.name,
        "profile_spec": profile.describe(),
        "instruction": prompts.COT_INSTRUCTION,
        "split": "train",
    }
    run = StageRun(
        out,
        stage="gen-cot",
        config=config,
        input_fingerprint=fingerprint([Path(input_dir) / "manifest.json"]),
        features=gen_features(decode_images=True),
        schema=GEN_SCHEMA,
        split="train",
        num_shards=len(chunks),
        overwrite=overwrite,
        shared=count > 1,
    )
    todo = [k for k in mine if not run.is_done(k)]
    live = engine() if todo else None
    bar = _bar(sum(len(chunks[k]) for k in todo), progress)
    tokens = 0
    for k in todo:
        table, rejects, used = _shard(chunks[k], live, profile, cfg, root)
        run.write_shard(k, table, rejects)
        tokens += used
        if bar is not None:
            bar.update(len(chunks[k]))
            bar.set_postfix(tokens_per_s=f"{tokens / max(bar.format_dict['elapsed'], 1e-9):.0f}")
    if bar is not None:
        bar.close()
    if not run.all_done() or (count > 1 and not run.claim_finish()):
        return None
    records_in = len(samples)
    rejected = sum(
        pq.read_metadata(run.work / f"rejects-{k:05d}.parquet").num_rows for k in range(len(chunks))
    )
    return run.finish(
        records_in, started=start, records_out=records_in - rejected, profile=profile.describe()
    )


def _shard(
    samples: list[dict[str, Any]],
    engine: Engine | None,
    profile: Profile,
    cfg: GenCotConfig,
    root: str | None,
) -> tuple[pa.Table, pa.Table, int]:
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
        HoiEnvironment.factory(cfg.tools, profile=profile),
        LoopConfig(Sampling(cfg.n, cfg.temperature, cfg.top_p, cfg.max_tokens), cfg.max_turns, cfg.seed),
        tools=tool_schemas(cfg.tools),
        sample_ids=[s["sample_id"] for s in kept],
    )
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
    )
    used = sum(t.prompt_tokens + t.completion_tokens for t in traces)
    return pa.Table.from_pylist(out, GEN_SCHEMA), pa.Table.from_pylist(rejects, REJECTS_SCHEMA), used


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
    spec = manifest.config.get("profile_spec")
    if manifest.stage not in ("boxes", "build-sft") or not spec:
        raise HoidataError(
            f"expected a `hoidata boxes` or `hoidata build-sft` dataset, got a {manifest.stage!r} one",
            file=str(input_dir),
        )
    profile = get_profile(spec["name"], spec["min_pixels"], spec["max_pixels"])
    root = manifest.config.get("images")
    if manifest.stage == "build-sft":
        table = read_table(input_dir)
    else:
        from hoidata.pipelines.build_sft import BuildSftConfig, build_table

        if task == "cof":
            raise HoidataError(
                "--task cof writes answers with a crop; ask referring or spatial questions instead"
            )
        mode = "embed" if manifest.config.get("embed_images") else "path"
        table, _ = build_table(read_table(input_dir), profile, BuildSftConfig(task=task), mode, root)
    rows = table.to_pylist()
    return (rows if limit is None else rows[:limit]), profile, root


def parse_shard(spec: str) -> tuple[int, int]:
    try:
        i, n = (int(x) for x in spec.split("/"))
    except ValueError:
        raise HoidataError(f"--shard must look like i/N (e.g. 0/4), got {spec!r}") from None
    if not 0 <= i < n:
        raise HoidataError(f"--shard {spec}: need 0 <= i < N")
    return i, n


def _bar(total: int, enabled: bool) -> Any:
    if not enabled or not total:
        return None
    from tqdm import tqdm

    return tqdm(total=total, desc="gen-cot", unit="sample", disable=None, leave=False)
