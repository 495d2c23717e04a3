"""The site's first page: every entry with its counts, what is shown of it, its manifest, timings
and rejects by reason, and links to its pages."""

from __future__ import annotations

from pathlib import Path

from hoidata.io.manifest import REJECTS
from hoidata.show.discover import Entry
from hoidata.show.html import Markup, esc, json_block, page, table
from hoidata.show.pages import Gallery
from hoidata.show.rejects import reasons


def index_page(source: Path, entries: list[tuple[Entry, Gallery]], footer: str) -> str:
    overview = []
    for entry, gallery in entries:
        m = entry.manifest
        counts = m.counts if m else {}
        overview.append(
            (
                Markup(f'<a href="#{esc(entry.slug)}">{esc(entry.name)}</a>'),
                entry.kind,
                m.stage if m else "",
                _n(counts.get("in")),
                _n(counts.get("out")),
                _n(counts.get("rejected")),
                _n(counts.get("rows")),
                _n(gallery.cards) if gallery.pages else "",
                f"{m.timings.get('total_s', 0):.2f} s" if m else "",
                Markup(" · ".join(_links(entry, gallery))),
            )
        )
    body = [
        f'<p class="note">{esc(source)}</p>',
        table(
            ["entry", "kind", "stage", "in", "out", "rejected", "rows", "shown", "time", "pages"],
            overview,
            numeric=[3, 4, 5, 6, 7, 8],
        ),
    ]
    body += [_section(entry, gallery) for entry, gallery in entries]
    body.append(f'<p class="note">{esc(footer)}</p>')
    return page(f"hoidata show: {source.name}", "".join(body), depth=0, heading=f"hoidata show: {source}")


def _links(entry: Entry, gallery: Gallery) -> list[str]:
    links = []
    if gallery.first:
        shown = f"{gallery.cards:,} cards on {gallery.pages:,} page{'s' if gallery.pages != 1 else ''}"
        links.append(f'<a href="{esc(gallery.first)}">{shown if gallery.cards else "no cards"}</a>')
    if gallery.rejects_first:
        links.append(f'<a href="{esc(gallery.rejects_first)}">{gallery.rejects:,} rejects</a>')
    if gallery.report:
        links.append(f'<a href="{esc(gallery.report)}">report and charts</a>')
    if gallery.pictures:
        links.append(f'<a href="{esc(gallery.pictures)}">{len(entry.images):,} pictures</a>')
    return links


def _section(entry: Entry, gallery: Gallery) -> str:
    links = _links(entry, gallery)
    parts = [
        f'<section class="entry" id="{esc(entry.slug)}">'
        f'<h2>{esc(entry.name)} <span class="badge">{esc(entry.kind)}</span></h2>',
        f'<p class="note">{esc(entry.path)}</p>',
        f"<p>{' · '.join(links)}</p>" if links else "",
    ]
    parts += [f'<p class="note">{esc(n)}</p>' for n in gallery.notes]
    m = entry.manifest
    if m is not None:
        tables = [table(["count", "records"], [(k, _n(v)) for k, v in m.counts.items()], numeric=[1])]
        if m.timings:
            timings = [(k, f"{v:.3f}") for k, v in m.timings.items()]
            tables.append(table(["timing", "seconds"], timings, numeric=[1]))
        parts.append(f'<div class="side-by-side">{"".join(tables)}</div>')
        by_reason = reasons(entry.path / REJECTS)
        if by_reason:
            parts.append("<h3>Rejects by reason</h3>")
            parts.append(
                table(
                    ["reason", "count", "first example"],
                    [(r, _n(n), ex) for r, n, ex in by_reason],
                    numeric=[1],
                )
            )
        stored = {
            k: getattr(m, k)
            for k in (
                "stage",
                "version",
                "created",
                "input_fingerprint",
                "config",
                "counts",
                "timings",
                "shards",
                "extra",
            )
        }
        parts.append(json_block(stored, "manifest"))
    parts.append("</section>")
    return "".join(parts)


def _n(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else ""
