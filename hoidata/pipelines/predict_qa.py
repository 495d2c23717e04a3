"""``predict --task qa``: every QA item of a dataset (HOI-QA's, or ``hoidata qa``'s) asked on its own.

The question is written by :func:`hoidata.sft.qa.render_items`, the function ``build-sft hoiqa``
uses, with the same box format and tags, so the model is asked as it was taught. One output row per
item, id ``{sample_id}#{k}``: what ``eval hoiqa`` reads. Records are images: an image that cannot
be read, or whose items cannot be written, is rejected whole (records in = out + rejected).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.engines import Engine, Sampling
from hoidata.gen.loop import sample_seed
from hoidata.io.images import open_images
from hoidata.pipelines.build_sft_qa import valid_items
from hoidata.profiles import Profile
from hoidata.schemas.canonical import REJECTS_SCHEMA
from hoidata.sft.qa import render_items


def predict_qa_table(
    table: pa.Table,
    engine: Engine,
    profile: Profile,
    *,
    box_format: str,
    tags: bool,
    sampling: Sampling,
    seed: int,
    batch_size: int,
    root: str | None,
    threads: int,
    schema: pa.Schema,
) -> tuple[pa.Table, pa.Table]:
    table = table.combine_chunks()
    images = open_images(table["image"].to_pylist(), root, threads)
    unreadable = [r for r, im in enumerate(images) if isinstance(im, Exception)]
    keep = np.ones(table.num_rows, bool)
    keep[unreadable] = False
    image_rejects = [
        {
            "record_index": r,
            "sample_id": table["sample_id"][r].as_py(),
            "field": "image",
            "reason": f"{type(images[r]).__name__}: {images[r]}",
        }
        for r in unreadable
    ]
    kept = table.filter(pa.array(keep))
    kept_images = [im for im in images if not isinstance(im, Exception)]
    items, item_rejects = valid_items(kept, "")
    # the size the annotations were made on; the image's own where a source did not record one
    width = kept["width"].fill_null(-1).to_numpy(zero_copy_only=False).astype(np.float64)
    height = kept["height"].fill_null(-1).to_numpy(zero_copy_only=False).astype(np.float64)
    for r, im in enumerate(kept_images):
        if width[r] <= 0 or height[r] <= 0:
            width[r], height[r] = im.size
    text = render_items(items, width[items.row], height[items.row], profile, box_format, tags).question
    ids = pc.binary_join_element_wise(
        kept["sample_id"].take(pa.array(items.row)), pa.array(items.index).cast(pa.string()), "#"
    ).to_pylist()
    questions = text.to_pylist()
    conversations: list[list[dict[str, Any]]] = [
        [
            {
                "role": "user",
                "content": [{"type": "image", "image": kept_images[r]}, {"type": "text", "text": q}],
            }
        ]
        for r, q in zip(items.row, questions, strict=True)
    ]
    rows = []
    for start in range(0, len(conversations), batch_size):
        part = slice(start, start + batch_size)
        seeds = [sample_seed(seed, sid, 0) for sid in ids[part]]
        for sid, g in zip(ids[part], engine.generate(conversations[part], sampling, seeds), strict=True):
            rows.append(
                {
                    "sample_id": sid,
                    "predictions": [],
                    "completion": g[0].text,
                    "finish_reason": g[0].finish_reason,
                    "error": g[0].error,
                }
            )
    rejects = pa.concat_tables(
        [pa.Table.from_pylist(image_rejects, REJECTS_SCHEMA), _with_ids(item_rejects, kept, keep)]
    )
    return pa.Table.from_pylist(rows, schema), rejects


def _with_ids(rejects: pa.Table, kept: pa.Table, keep: np.ndarray) -> pa.Table:
    """Rejects of the readable rows, their record indices put back in the input table's numbering."""
    if not rejects.num_rows:
        return rejects
    original = np.flatnonzero(keep)[rejects["record_index"].to_numpy()]
    return rejects.set_column(
        rejects.schema.get_field_index("record_index"), "record_index", pa.array(original, pa.int64())
    )
