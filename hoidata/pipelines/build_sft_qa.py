"""``build-sft hoiqa``: QA items of a boxed dataset → SFT samples, one per item or one per image.

An image record whose items cannot be written (an unknown task tag, ``<box>`` placeholders that do
not pair up with its boxes) is rejected whole, naming the item and field, as is an image without QA
items: records in = images out + rejected. Ids: ``{sample_id}#{k}`` per item (the ids ``predict``
and ``eval hoiqa`` use), ``{sample_id}`` per image.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.profiles import Profile
from hoidata.schemas.canonical import REJECTS_SCHEMA
from hoidata.sft import qa
from hoidata.sft.messages import multi_turn
from hoidata.sft.schema import PAIR, SFT_SCHEMA

CONVERSATIONS = ("item", "image")


def valid_items(table: pa.Table, source_file: str) -> tuple[qa.QAItems, pa.Table]:
    """The QA items of rows that can be written, and a reject per row that cannot."""
    items = qa.flatten_items(table["qa"])
    first_problem: dict[int, tuple[str, str]] = {}
    for i, name, reason in qa.item_problems(items):
        first_problem.setdefault(int(items.row[i]), (f"qa[{items.index[i]}].{name}", reason))
    has_items = np.bincount(items.row, minlength=table.num_rows) > 0
    for r in np.flatnonzero(~has_items):
        first_problem.setdefault(int(r), ("qa", "no QA items to build a sample from"))
    bad_rows = sorted(first_problem)
    ids = table["sample_id"].take(pa.array(bad_rows, pa.int64())).to_pylist() if bad_rows else []
    rejects = pa.Table.from_pylist(
        [
            {
                "source_file": source_file,
                "record_index": r,
                "sample_id": sid,
                "field": first_problem[r][0],
                "reason": first_problem[r][1],
                "raw": None,
            }
            for r, sid in zip(bad_rows, ids, strict=True)
        ],
        schema=REJECTS_SCHEMA,
    )
    ok_row = np.ones(table.num_rows, bool)
    ok_row[bad_rows] = False
    return items.take(np.flatnonzero(ok_row[items.row])), rejects


def qa_samples(
    table: pa.Table,
    images: pa.StructArray,
    sizes: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray],
    profile: Profile,
    *,
    box_format: str,
    conversation: str,
    tags: bool,
    source_file: str = "",
) -> tuple[pa.Table, pa.Table]:
    """SFT samples of one boxed table. ``sizes``: (original width, height, stored width, height) per
    row; boxes are written from the original size (the profile frame is relative to the resize the
    processor makes of any stored size, so the text is the same either way)."""
    width, height, stored_w, stored_h = sizes
    items, rejects = valid_items(table, source_file)
    text = qa.render_items(items, width[items.row], height[items.row], profile, box_format, tags)
    source_ids = table["sample_id"].combine_chunks()
    if conversation == "item":
        row = items.row
        offsets = np.arange(len(items) + 1)
        sample_ids = pc.binary_join_element_wise(
            source_ids.take(pa.array(row)), pa.array(items.index).cast(pa.string()), "#"
        )
    else:
        row, starts = np.unique(items.row, return_index=True)
        offsets = np.append(starts, len(items))
        sample_ids = source_ids.take(pa.array(row))
    n = len(row)
    rw, rh = profile.resized(stored_w, stored_h)
    columns = {
        "sample_id": sample_ids,
        "source_id": source_ids.take(pa.array(row)),
        "task": pa.array(np.full(n, "hoiqa", object), pa.string()),
        "images": pa.ListArray.from_arrays(
            pa.array(np.arange(n + 1), pa.int32()), images.take(pa.array(row))
        ),
        "messages": multi_turn(text.question, text.answer, offsets),
        "tools": pa.nulls(n, pa.string()),
        "width": pa.array(stored_w[row].astype(np.int32)),
        "height": pa.array(stored_h[row].astype(np.int32)),
        "resized_width": pa.array(np.asarray(rw)[row].astype(np.int32)),
        "resized_height": pa.array(np.asarray(rh)[row].astype(np.int32)),
        "pairs": pa.ListArray.from_arrays(pa.array(np.zeros(n + 1), pa.int32()), pa.array([], PAIR)),
        "refer_boxes": pa.nulls(n, SFT_SCHEMA.field("refer_boxes").type),
        "uses_tool": pa.array(np.zeros(n, bool)),
    }
    return pa.table([columns[f.name] for f in SFT_SCHEMA], schema=SFT_SCHEMA), rejects
