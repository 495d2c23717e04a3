"""The gallery pages of one entry: cards of its rows a page at a time, its rejects, its report, its
pictures. Each kind of dataset has a card maker: the columns it reads and a function from a page of
rows to that page's cards."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hoidata.io.manifest import REJECTS
from hoidata.io.progress import Progress
from hoidata.show import canonical, predictions, rejects, sft
from hoidata.show.discover import Entry
from hoidata.show.html import esc, page, page_name, pager
from hoidata.show.reports import report_body
from hoidata.show.rows import Rows
from hoidata.show.sources import GroundTruth, dataset_profile, filter_verdicts, image_size
from hoidata.show.thumbnails import Thumbnails

Cards = Callable[[list[dict[str, Any]]], list[str]]
GRID = {"canonical": "grid", "predictions": "grid", "rejects": "grid", "pairs": "grid wide"}


@dataclass
class Gallery:
    """What the site holds of one entry (links relative to the site root)."""

    cards: int = 0
    pages: int = 0
    first: str | None = None
    rejects: int = 0
    rejects_first: str | None = None
    report: str | None = None
    pictures: str | None = None
    notes: list[str] = field(default_factory=list)


def card_maker(entry: Entry, thumbs: Thumbnails) -> tuple[list[str], Cards]:
    """The columns an entry's cards read, and how a page of rows becomes cards."""
    assert entry.manifest is not None
    root = entry.manifest.image_root
    if entry.kind == "canonical":
        return canonical.COLUMNS, lambda rows: [
            canonical.canonical_card(r, thumbs.image(r.get("image"), root)) for r in rows
        ]
    if entry.kind == "predictions":
        gt = GroundTruth(entry.manifest)

        def prediction_cards(rows: list[dict[str, Any]]) -> list[str]:
            truth = gt.lookup([r["sample_id"] for r in rows], predictions.GT_COLUMNS)
            out = []
            for r in rows:
                g = truth.get(r["sample_id"])
                out.append(
                    predictions.prediction_card(
                        r, g, thumbs.image(g.get("image"), gt.image_root) if g else None
                    )
                )
            return out

        return predictions.COLUMNS, prediction_cards
    profile = dataset_profile(entry.manifest)

    def images(row: dict[str, Any]) -> list[Any]:
        return [thumbs.image(im, root) for im in row.get("images") or []]

    if entry.kind == "sft":
        return sft.SFT_COLUMNS, lambda rows: [sft.sft_card(r, images(r), profile) for r in rows]
    if entry.kind == "rollouts":
        verdicts = filter_verdicts(entry.path)
        return sft.ROLLOUT_COLUMNS, lambda rows: [
            sft.rollout_card(
                r, images(r), profile, verdicts.get(r["sample_id"]) if verdicts is not None else None
            )
            for r in rows
        ]
    return sft.PAIR_COLUMNS, lambda rows: [
        sft.pair_card(r, images(r), profile, image_size((r.get("images") or [None])[0], root)) for r in rows
    ]


def write_cards(
    folder: Path,
    prefix: str,
    title: str,
    source: Rows,
    selected: np.ndarray,
    columns: list[str],
    cards: Cards,
    *,
    grid: str,
    page_size: int,
    note: str,
    progress: Progress,
    layers: bool = True,
) -> int:
    """Pages ``prefix-0001.html`` … of ``cards`` for the ``selected`` rows; returns the page count."""
    total = max(1, -(-len(selected) // page_size))
    if not len(selected):
        empty = f'<div class="{grid}" data-records="0"></div>'
        body = f'<p class="note">{esc(note)}</p><p class="note">no records to show</p>{empty}'
        (folder / page_name(prefix, 1)).write_text(page(title, body, depth=1), encoding="utf-8")
        return 1
    for number, rows in enumerate(source.pages(selected, page_size, columns), start=1):
        first = (number - 1) * page_size + 1
        shown = f"{note} · records {first:,}–{first + len(rows) - 1:,} of {len(selected):,}"
        body = (
            f'<p class="note">{esc(shown)}</p>{pager(prefix, number, total)}'
            f'<div class="{grid}" data-records="{len(rows)}">{"".join(cards(rows))}</div>{pager(prefix, number, total)}'
        )
        html = page(
            f"{title} · page {number}",
            body,
            depth=1,
            heading=f"{title} · page {number} of {total}",
            layers=layers,
            find=True,
        )
        (folder / page_name(prefix, number)).write_text(html, encoding="utf-8")
        progress.update(len(rows))
    return total


def write_rejects(
    entry: Entry, folder: Path, page_size: int, limit: int | None, progress: Progress
) -> tuple[int, int]:
    """Rejects pages of a dataset directory: (records shown, pages)."""
    source = Rows([entry.path / REJECTS])
    if not source.total:
        return 0, 0
    selected = source.select([], limit)
    note = f"rejects of {entry.path}"
    pages = write_cards(
        folder,
        "rejects",
        f"{entry.name}: rejects",
        source,
        selected,
        rejects.COLUMNS,
        lambda rows: [rejects.reject_card(r) for r in rows],
        grid="grid",
        page_size=page_size,
        note=note,
        progress=progress,
        layers=False,
    )
    return len(selected), pages


def write_report(entry: Entry, folder: Path, pr_classes: list[str]) -> str:
    assert entry.report is not None
    body = report_body(entry.report, folder, str(entry.path), pr_classes)
    (folder / "report.html").write_text(page(f"{entry.name}: report", body, depth=1), encoding="utf-8")
    return "report.html"


def write_pictures(entry: Entry, folder: Path, thumbs: Thumbnails) -> str:
    """Extra pictures (a manifest's ``extra.images``, ``maps/``): thumbnails linking the files."""
    figures = []
    for path, caption in entry.images:
        ref = thumbs.file(path)
        if ref.thumb is None:
            figures.append(f"<figure><figcaption>{esc(caption)}: {esc(ref.error)}</figcaption></figure>")
            continue
        figures.append(
            f'<figure><a href="{esc(ref.original)}"><img src="{esc(ref.thumb)}" alt="{esc(caption)}"></a>'
            f"<figcaption>{esc(caption)}</figcaption></figure>"
        )
    body = (
        f'<p class="note">{len(entry.images):,} pictures in {esc(entry.path)}</p>'
        f'<div class="gallery">{"".join(figures)}</div>'
    )
    (folder / "pictures.html").write_text(page(f"{entry.name}: pictures", body, depth=1), encoding="utf-8")
    return "pictures.html"
