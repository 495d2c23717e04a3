"""Rejected records: counted by reason for the summary page, and one card each (reason, field,
where it came from, the raw record as it was read)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pyarrow.compute as pc
import pyarrow.parquet as pq

from hoidata.show.html import esc

COLUMNS = ["source_file", "record_index", "sample_id", "field", "reason", "raw"]
RAW_LIMIT = 4_000  # characters of a raw record shown on its card


def reasons(path: Path, top: int = 20) -> list[tuple[str, int, str]]:
    """(reason, count, first example) by reason, most frequent first: the text before the first
    colon, numbers written as #, so "accuracy 0 < 1" and "accuracy 0.5 < 1" count together."""
    if not path.is_file():
        return []
    column = (
        pq.read_table(path, columns=["reason"]).column("reason").combine_chunks().fill_null("(no reason)")
    )
    short = pc.replace_substring_regex(column, r":.*$", "")
    short = pc.replace_substring_regex(short, r"[-+]?\d+(\.\d+)?(e[-+]?\d+)?", "#")
    counts = pc.value_counts(short)
    values, numbers = counts.field("values").to_pylist(), counts.field("counts").to_pylist()
    first = {}
    for k, value in enumerate(short.to_pylist()):  # only the reasons' text: small
        first.setdefault(value, k)
    ranked = sorted(zip(values, numbers, strict=True), key=lambda vn: (-vn[1], vn[0]))[:top]
    full = column.to_pylist()
    return [(value, n, full[first[value]]) for value, n in ranked]


def reject_card(row: dict[str, Any]) -> str:
    where = f"{row.get('source_file') or ''} record {row.get('record_index')}".strip()
    return (
        f'<article class="card" data-sample-id="{esc(row.get("sample_id"))}">'
        f"<h2>{esc(row.get('reason'))}</h2>"
        f'<div class="meta">field <b>{esc(row.get("field"))}</b> · '
        f"{esc(row.get('sample_id') or 'no sample id')} · {esc(where)}</div>"
        f"<pre>{esc(_raw(row.get('raw')))}</pre></article>"
    )


def _raw(raw: str | None) -> str:
    if raw is None:
        return "(no raw record stored)"
    try:
        text = orjson.dumps(orjson.loads(raw), option=orjson.OPT_INDENT_2).decode()
    except orjson.JSONDecodeError:
        text = raw
    return (
        text
        if len(text) <= RAW_LIMIT
        else text[:RAW_LIMIT] + f"\n… ({len(text) - RAW_LIMIT:,} more characters)"
    )
