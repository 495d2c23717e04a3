"""HTML pieces every page shares: escaping, the page shell, the pager, boxes over an image.

Pages are plain strings: no template engine, nothing fetched. Every box is an absolutely positioned
div in percent of its frame, with its coordinates in the frame's own pixels as ``data-box-*``
attributes, so a browser test can measure where it landed.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from functools import lru_cache
from typing import Any

import orjson

from hoidata.show.thumbnails import ImageRef

FRAME = 320  # the longest side of an image frame on a card, in CSS pixels
LAYERS = (  # (body class, label, checked by default, checkbox inverts the class)
    ("hide-boxes", "boxes", True, True),
    ("hide-labels", "labels", True, True),
    ("show-union", "union/refer", False, False),
    ("show-gt", "ground truth", False, False),
)


class Markup(str):
    """Text that is already HTML: :func:`esc` leaves it as it is."""


def esc(value: Any) -> str:
    if isinstance(value, Markup):
        return value
    return _escape("" if value is None else str(value))


@lru_cache(maxsize=1 << 16)
def _escape(text: str) -> str:
    """Labels, verbs and ids repeat on every page: escaped once each."""
    return html.escape(text, quote=True)


def attrs(**values: Any) -> str:
    """``data_box_x1=3`` → `` data-box-x1="3"``; None values are left out."""
    return "".join(f' {k.replace("_", "-")}="{esc(v)}"' for k, v in values.items() if v is not None)


def page(
    title: str, body: str, *, depth: int, heading: str = "", layers: bool = False, find: bool = False
) -> str:
    """A whole HTML document; ``depth`` is how many folders below the site root it lies."""
    up = "../" * depth
    tools = [f'<a href="{up}index.html">summary</a>']
    if layers:
        for layer, label, checked, invert in LAYERS:
            on = " checked" if checked else ""
            tools.append(
                f'<label><input type="checkbox" data-layer="{layer}" data-invert="{int(invert)}"{on}> {label}</label>'
            )
    if find:
        tools.append(
            '<input type="search" id="find" placeholder="find on this page"> <span id="find-count"></span>'
        )
    return (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title>"
        f'<link rel="stylesheet" href="{up}assets/show.css"></head>\n<body>'
        f'<header class="top"><h1>{esc(heading or title)}</h1>{"".join(tools)}</header>\n'
        f"<main>{body}</main>\n"
        f'<script src="{up}assets/show.js"></script></body></html>\n'
    )


def page_name(prefix: str, number: int) -> str:
    return f"{prefix}-{number:04d}.html"


def pager(prefix: str, current: int, total: int) -> str:
    """Links to the first, last and nearby pages (1-based), with prev/next for the arrow keys."""
    if total <= 1:
        return ""
    parts = []
    if current > 1:
        parts.append(f'<a rel="prev" href="{page_name(prefix, current - 1)}">← prev</a>')
    shown = sorted({1, total, *range(max(1, current - 3), min(total, current + 3) + 1)})
    last = 0
    for n in shown:
        if n > last + 1:
            parts.append("<span>…</span>")
        cls = ' class="current"' if n == current else ""
        parts.append(
            f"<span{cls}>{n}</span>" if n == current else f'<a href="{page_name(prefix, n)}">{n}</a>'
        )
        last = n
    if current < total:
        parts.append(f'<a rel="next" href="{page_name(prefix, current + 1)}">next →</a>')
    return f'<nav class="pager">{"".join(parts)}</nav>'


def fit(width: float, height: float, longest: int = FRAME) -> tuple[float, float]:
    """The displayed size of a ``width × height`` image: ``longest`` on its longer side (small
    images grow at most twofold)."""
    scale = min(2.0, longest / max(width, height, 1))
    return width * scale, height * scale


def frame(
    image: ImageRef | None, width: float, height: float, boxes: Sequence[str], caption: str = ""
) -> str:
    """An image of ``width × height`` (the frame's own pixels) with ``boxes`` drawn over it, and a
    caption (default: the size) with the link to the original."""
    dw, dh = fit(width, height)
    inner = ""
    if image is not None and image.thumb:
        inner = f'<img src="{esc(image.thumb)}" alt="" decoding="async">'
    link = ""
    if image is not None and image.original:
        link = f' <a href="{esc(image.original)}">original</a>'
    return (
        f'<div class="frame" style="width:{dw:.2f}px;height:{dh:.2f}px"'
        f"{attrs(data_frame_w=_num(width), data_frame_h=_num(height))}>{inner}{''.join(boxes)}</div>"
        f'<div class="meta">{esc(caption or f"{_num(width)}×{_num(height)}")}{link}</div>'
    )


def box(
    bbox: Sequence[float],
    width: float,
    height: float,
    cls: str,
    tag: str = "",
    *,
    box_id: str | None = None,
    title: str | None = None,
) -> str:
    """One box ``[x1, y1, x2, y2]`` in the frame's pixels, placed in percent of the frame. Written
    with one f-string: a page holds thousands."""
    x1, y1, x2, y2 = (float(v) for v in bbox)
    sx, sy = 100 / width, 100 / height
    label = f'<span class="tag">{esc(tag)}</span>' if tag else ""
    extra = (f' data-id="{box_id}"' if box_id else "") + (f' title="{esc(title)}"' if title else "")
    return (
        f'<div class="box {cls}" style="left:{x1 * sx:.4f}%;top:{y1 * sy:.4f}%;width:{(x2 - x1) * sx:.4f}%;'
        f'height:{(y2 - y1) * sy:.4f}%" data-box-x1="{x1:g}" data-box-y1="{y1:g}" data-box-x2="{x2:g}" '
        f'data-box-y2="{y2:g}"{extra}>{label}</div>'
    )


def json_block(value: Any, summary: str = "JSON", limit: int = 20_000) -> str:
    """A collapsed, pretty JSON view (cut at ``limit`` characters)."""
    text = orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS, default=str).decode()
    if len(text) > limit:
        text = text[:limit] + f"\n… ({len(text) - limit:,} more characters)"
    return f"<details><summary>{esc(summary)}</summary><pre>{esc(text)}</pre></details>"


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], numeric: Sequence[int] = ()) -> str:
    """A plain table; columns listed in ``numeric`` align right."""
    head = "".join(f"<th{' class=num' if i in numeric else ''}>{esc(h)}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>"
        + "".join(f"<td{' class=num' if i in numeric else ''}>{esc(v)}</td>" for i, v in enumerate(r))
        + "</tr>"
        for r in rows
    )
    return f"<table><tr>{head}</tr>{body}</table>"


def _num(v: float) -> str:
    """A coordinate as short text: integers without a fraction, others to 0.01 px."""
    return str(int(v)) if float(v).is_integer() else f"{float(v):.2f}"
