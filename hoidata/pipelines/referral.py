"""``hoidata qa``: HOI-Ref-style referral questions about every person-object pair, written into the
canonical ``qa`` column (after any items a row already holds), so a HICO-DET or SWIG-HOI dataset
trains (``build-sft hoiqa``), is asked (``predict --task qa``) and is scored (``eval hoiqa``) as
HOI-QA is. The questions are :mod:`hoidata.sft.referral`'s; every record passes through.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
from hoidata.schemas import canonical
from hoidata.sft.referral import FAMILIES, referral_qa


@dataclass
class QAConfig:
    """Which questions to ask; recorded in the manifest."""

    questions: tuple[str, ...] = option(
        FAMILIES,
        "Question families, comma-separated (objN2objBB, objBB2objN: ho_ref; actObjN2objBB, "
        "actObjN2personBB, actN2objN: i_ref).",
    )
    max_boxes: int = option(4, "Skip a question whose answer needs more boxes than this (crowds).", minimum=1)


def add_qa(
    input_dir: Path | str,
    out: Path | str,
    cfg: QAConfig,
    *,
    overwrite: bool = False,
    shard: ShardSpec = ALL_SHARDS,
) -> Manifest | None:
    unknown = sorted(set(cfg.questions) - set(FAMILIES))
    if unknown or not cfg.questions:
        raise HoidataError(
            f"--questions: unknown {', '.join(unknown) or '(none given)'}; choose from {', '.join(FAMILIES)}"
        )
    if cfg.max_boxes < 1:
        raise HoidataError(f"--max-boxes must be at least 1, got {cfg.max_boxes}")
    manifest = read_manifest(input_dir)
    require_stage(manifest, input_dir, "convert", hint=" (qa reads a canonical dataset, before boxes)")
    decode = manifest.embedded_images
    config = recorded(cfg) | {
        "images": manifest.image_root,
        "embed_images": decode,
        "split": manifest.split,
        "input": str(Path(input_dir).resolve()),
        "source_config": manifest.config,
    }
    output = Output(
        stage="qa",
        config=config,
        input_fingerprint=dataset_fingerprint(input_dir),
        features=canonical.features(decode_images=decode),
        schema=canonical.SCHEMA,
        split=manifest.split,
    )

    def transform(table: pa.Table, _: str) -> tuple[pa.Table, pa.Table]:
        table = table.combine_chunks()
        qa = referral_qa(table, cfg.questions, cfg.max_boxes)
        table = table.set_column(table.schema.get_field_index("qa"), "qa", qa)
        return table.cast(canonical.SCHEMA), canonical.REJECTS_SCHEMA.empty_table()

    return run_stage_on_shards(
        input_dir, out, output, transform, shard=shard, overwrite=overwrite, progress="qa"
    )
