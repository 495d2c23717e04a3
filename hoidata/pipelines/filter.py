"""``hoidata filter sft|prefs``: gen-cot rollouts → TRL SFT data, or TRL DPO preference pairs.

Both read the rewards each rollout was scored with (the same module GRPO uses) and work one input
shard at a time (gen-cot keeps all rollouts of a prompt in one shard). Every rollout not kept is a
reject with its reason, so rollouts in = rollouts kept + rejected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from hoidata.errors import HoidataError
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
from hoidata.options import option, recorded
from hoidata.rewards import COMPONENTS
from hoidata.schemas.canonical import REJECTS_SCHEMA
from hoidata.sft.schema import IMAGE, MESSAGE, SFT_SCHEMA, sft_features

ANSWERED = "answered"


@dataclass
class FilterSftConfig:
    """Thresholds are minimums per reward part (None: no condition)."""

    min_accuracy: float | None = option(1.0, "Lowest accuracy reward kept.")
    min_format: float | None = option(1.0, "Lowest format reward kept.")
    min_tool: float | None = option(None, "Lowest tool reward kept.")
    min_spatial: float | None = option(None, "Lowest spatial reward kept.")
    min_total: float | None = option(None, "Lowest total reward kept.")
    per_prompt: int = option(1, "Rollouts kept per prompt at most (best total first).", minimum=1)
    dedupe: bool = option(True, "Identical rollouts of a prompt count once.")


@dataclass
class FilterPrefsConfig:
    min_margin: float = option(0.5, "Chosen total reward minus rejected, at least.")
    min_chosen_accuracy: float = option(1.0, "Accuracy reward the chosen rollout needs.")
    pairs_per_prompt: int = option(
        1,
        "Pairs per prompt at most (best against worst, then second best against second worst, ...).",
        minimum=1,
    )


DPO_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("prompt_id", pa.string()),
        ("images", pa.list_(IMAGE)),
        ("prompt", pa.list_(MESSAGE)),
        ("chosen", pa.list_(MESSAGE)),
        ("rejected", pa.list_(MESSAGE)),
        ("chosen_reward", pa.float64()),
        ("rejected_reward", pa.float64()),
        ("tools", pa.string()),  # the tool schemas the rollouts were generated with (JSON), or null
    ]
)


def dpo_features() -> dict[str, Any]:
    """The `datasets` Features of :data:`DPO_SCHEMA`."""
    messages = sft_features(True)["messages"]
    return {
        "sample_id": {"dtype": "string", "_type": "Value"},
        "prompt_id": {"dtype": "string", "_type": "Value"},
        "images": sft_features(True)["images"],
        "prompt": messages,
        "chosen": messages,
        "rejected": messages,
        "chosen_reward": {"dtype": "float64", "_type": "Value"},
        "rejected_reward": {"dtype": "float64", "_type": "Value"},
        "tools": {"dtype": "string", "_type": "Value"},
    }


def filter_sft(
    input_dir: Path | str,
    out: Path | str,
    cfg: FilterSftConfig,
    *,
    overwrite: bool = False,
    shard: ShardSpec = ALL_SHARDS,
) -> Manifest | None:
    """Keep rollouts that pass every threshold, at most ``per_prompt`` per prompt, as SFT rows."""
    if cfg.per_prompt < 1:
        raise HoidataError("--per-prompt must be at least 1")

    def select(table: pa.Table) -> tuple[pa.Table, pa.Table]:
        n = table.num_rows
        reason = np.full(n, "", object)
        status = table.column("status").to_numpy(zero_copy_only=False)
        reason[status != ANSWERED] = [f"status {s}" for s in status[status != ANSWERED]]
        rewards = table.column("rewards").combine_chunks()
        for part in (*COMPONENTS, "total"):
            low = getattr(cfg, f"min_{part}")
            if low is None:
                continue
            value = rewards.field(part).to_numpy(zero_copy_only=False)
            below = (value < low) & (reason == "")
            reason[below] = [f"{part} {v:.3g} < {low:g}" for v in value[below]]
        total = rewards.field("total").to_numpy(zero_copy_only=False)
        ok = np.flatnonzero(reason == "")
        prompt = table.column("prompt_id").to_numpy(zero_copy_only=False)
        # best total first within each prompt, then rollout order
        order = ok[np.lexsort((table.column("rollout").to_numpy()[ok], -total[ok], prompt[ok]))]
        if cfg.dedupe:
            keys = _rollout_keys(table)
            seen: set[tuple[str, str]] = set()
            for i in order:
                if (prompt[i], keys[i]) in seen:
                    reason[i] = "duplicate of a kept rollout"
                seen.add((prompt[i], keys[i]))
            order = order[reason[order] == ""]
        rank = _rank_within(prompt[order])
        reason[order[rank >= cfg.per_prompt]] = f"beyond {cfg.per_prompt} per prompt"
        kept = np.sort(order[rank < cfg.per_prompt])
        return table.select(SFT_SCHEMA.names).take(pa.array(kept, pa.int64())), _rejects(table, reason)

    output = _output(input_dir, "filter-sft", recorded(cfg), SFT_SCHEMA, sft_features(True))
    return _run(input_dir, out, output, select, overwrite, shard)


def filter_prefs(
    input_dir: Path | str,
    out: Path | str,
    cfg: FilterPrefsConfig,
    *,
    overwrite: bool = False,
    shard: ShardSpec = ALL_SHARDS,
) -> Manifest | None:
    """Chosen/rejected pairs from rollouts of the same prompt, by reward margin (TRL DPO format).

    TRL's DPO gives images to the prompt only, and its completions are text. So the turns both
    rollouts share (a zoom-in on the same region, its crop) join the prompt, images included, and
    each completion runs from where the two differ up to its next tool image: the preference is over
    the decision that followed the same view, as in VisRL. Rewards are those of the whole rollouts.
    """

    def select(table: pa.Table) -> tuple[pa.Table, pa.Table]:
        rows = table.to_pylist()
        reason = [""] * len(rows)
        by_prompt: dict[str, list[int]] = {}
        for i, r in enumerate(rows):
            if r["status"] != ANSWERED:
                reason[i] = f"status {r['status']}"
            else:
                by_prompt.setdefault(r["prompt_id"], []).append(i)
        pairs = []
        for prompt_id, members in by_prompt.items():
            ranked = sorted(members, key=lambda i: (-rows[i]["rewards"]["total"], rows[i]["rollout"]))
            used = 0
            while used < cfg.pairs_per_prompt and len(ranked) >= 2:
                best, worst = ranked[0], ranked[-1]
                good, bad = rows[best]["rewards"], rows[worst]["rewards"]
                if (
                    good["total"] - bad["total"] < cfg.min_margin
                    or good["accuracy"] < cfg.min_chosen_accuracy
                ):
                    break
                pair = _pair(rows[best], rows[worst], f"{prompt_id}/{used}")
                if pair is None:
                    reason[best] = reason[worst] = "the pair differs only in a tool image"
                else:
                    pairs.append(pair)
                    used += 1
                ranked = ranked[1:-1]
            for i in ranked:
                reason[i] = "no pair with enough reward margin"
        return pa.Table.from_pylist(pairs, DPO_SCHEMA), _rejects(table, np.array(reason, object))

    features = dpo_features()
    return _run(
        input_dir,
        out,
        _output(input_dir, "filter-prefs", recorded(cfg), DPO_SCHEMA, features),
        select,
        overwrite,
        shard,
    )


def _pair(chosen: dict[str, Any], rejected: dict[str, Any], sample_id: str) -> dict[str, Any] | None:
    """The DPO row of two rollouts of one prompt: shared turns → prompt, the rest up to a tool image
    → completions. None when nothing text-only tells them apart."""
    c_msgs, r_msgs = chosen["messages"], rejected["messages"]
    c_start, r_start = _image_offsets(c_msgs), _image_offsets(r_msgs)

    def same(k: int) -> bool:
        c_imgs = chosen["images"][c_start[k] : c_start[k + 1]]
        return c_msgs[k] == r_msgs[k] and c_imgs == rejected["images"][r_start[k] : r_start[k + 1]]

    split = 0
    while split < min(len(c_msgs), len(r_msgs)) and same(split):
        split += 1
    while split > 0 and (split == len(c_msgs) or c_msgs[split]["role"] != "assistant"):
        split -= 1  # a completion starts with the model's turn
    completions = [_up_to_image(msgs[split:]) for msgs in (c_msgs, r_msgs)]
    if split == 0 or completions[0] == completions[1]:
        return None
    return {
        "sample_id": sample_id,
        "prompt_id": chosen["prompt_id"],
        "images": chosen["images"][: c_start[split]],
        "prompt": c_msgs[:split],
        "chosen": completions[0],
        "rejected": completions[1],
        "chosen_reward": chosen["rewards"]["total"],
        "rejected_reward": rejected["rewards"]["total"],
        "tools": chosen.get("tools"),
    }


def _image_offsets(messages: list[dict[str, Any]]) -> list[int]:
    """Index into the row's images of each message's first image (and the total, last)."""
    counts = [sum(b["type"] == "image" for b in m["content"]) for m in messages]
    return [0, *np.cumsum(counts).tolist()]


def _up_to_image(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cut = next((k for k, m in enumerate(messages) if any(b["type"] == "image" for b in m["content"])), None)
    return messages[:cut]


def _output(
    input_dir: Path | str, stage: str, config: dict[str, Any], schema: pa.Schema, features: dict[str, Any]
) -> Output:
    manifest = read_manifest(input_dir)
    require_stage(manifest, input_dir, "gen-cot")
    return Output(
        stage=stage,
        config=config
        | {"input": str(Path(input_dir).resolve()), "images": manifest.image_root, "split": "train"},
        input_fingerprint=dataset_fingerprint(input_dir),
        features=features,
        schema=schema,
        split="train",
    )


def _run(
    input_dir: Path | str,
    out: Path | str,
    output: Output,
    select: Callable[[pa.Table], tuple[pa.Table, pa.Table]],
    overwrite: bool,
    shard: ShardSpec,
) -> Manifest | None:
    """One output shard per input shard (gen-cot keeps a prompt's rollouts in one shard)."""
    return run_stage_on_shards(
        input_dir,
        out,
        output,
        lambda table, _: select(table),
        shard=shard,
        overwrite=overwrite,
        rows_are_records=False,
        progress=output.stage,
    )


def _rejects(table: pa.Table, reason: np.ndarray) -> pa.Table:
    idx = np.flatnonzero(reason != "")
    return pa.table(
        {
            "source_file": pa.nulls(len(idx), pa.string()),
            "record_index": pa.array(idx, pa.int64()),
            "sample_id": table.column("sample_id").take(pa.array(idx, pa.int64())),
            "field": pa.array(["rewards"] * len(idx), pa.string()),
            "reason": pa.array(reason[idx].tolist(), pa.string()),
            "raw": pa.nulls(len(idx), pa.string()),
        },
        schema=REJECTS_SCHEMA,
    )


def _rank_within(groups: np.ndarray) -> np.ndarray:
    """Position of each element within its run of equal, adjacent group values."""
    if not len(groups):
        return np.zeros(0, np.int64)
    start = np.r_[True, groups[1:] != groups[:-1]]
    first = np.maximum.accumulate(np.where(start, np.arange(len(groups)), 0))
    return np.arange(len(groups)) - first


def _rollout_keys(table: pa.Table) -> list[str]:
    """What a rollout wrote (assistant text and tool calls), to spot identical rollouts of a prompt."""
    keys = []
    for messages in table.column("messages").to_pylist():
        parts = []
        for m in messages:
            if m["role"] == "assistant":
                parts.append("".join(b["text"] or "" for b in m["content"]))
                parts.extend(
                    f"{c['function']['name']}{c['function']['arguments']}" for c in m["tool_calls"] or []
                )
        keys.append("\x1f".join(parts))
    return keys
