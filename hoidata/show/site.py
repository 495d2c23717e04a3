"""``write_site``: a static, self-contained HTML gallery of any hoidata directory.

It finds what the directory holds (:mod:`~hoidata.show.discover`), selects the rows to show (the
``--filter`` columns only, then ``--limit``), writes their cards a page at a time while a process
pool makes the missing thumbnails, then the summary page. Nothing on a page is fetched from
elsewhere: the stylesheet and script are copied beside the pages, images are files of the site
(thumbnails, embedded originals) or links to the dataset's own image files.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

import numpy as np
import pyarrow as pa

from hoidata.errors import HoidataError
from hoidata.io.manifest import MANIFEST
from hoidata.io.progress import Progress
from hoidata.show.discover import Entry, discover
from hoidata.show.filters import Condition, parse_condition
from hoidata.show.html import page_name
from hoidata.show.pages import (
    GRID,
    Gallery,
    card_maker,
    write_cards,
    write_pictures,
    write_rejects,
    write_report,
)
from hoidata.show.rows import Rows
from hoidata.show.summary import index_page
from hoidata.show.thumbnails import Thumbnails

ASSETS = ("show.css", "show.js")
CARD_KINDS = ("canonical", "sft", "rollouts", "pairs", "predictions")


@dataclass
class ShowOptions:
    limit: int | None = None  # records shown per dataset at most
    filters: list[str] = field(default_factory=list)  # FIELD OP VALUE conditions, all must hold
    page_size: int = 100
    workers: int | None = None  # thumbnail processes (None: the machine's cores, at most 8; 0: none)
    pr_classes: list[str] = field(default_factory=list)  # HICO-DET classes whose PR curves are drawn
    progress: bool = True


@dataclass
class Site:
    index: Path
    entries: list[tuple[Entry, Gallery]]
    thumbnails_made: int
    thumbnails_reused: int
    thumbnails_failed: list[str]
    seconds: float

    @property
    def cards(self) -> int:
        return sum(g.cards for _, g in self.entries)

    @property
    def pages(self) -> int:
        return sum(g.pages for _, g in self.entries)


def default_out(source: Path) -> Path:
    """Beside a dataset directory or report (``NAME-site``: the dataset stays as its stage wrote it),
    inside a folder of outputs (``DIR/site``)."""
    if source.is_file() or (source / MANIFEST).is_file():
        return source.parent / f"{source.stem if source.is_file() else source.name}-site"
    return source / "site"


def write_site(source: Path | str, out: Path | str | None = None, options: ShowOptions | None = None) -> Site:
    t0 = time.perf_counter()
    opts = options or ShowOptions()
    if opts.page_size < 1:
        raise HoidataError("--page-size must be at least 1")
    if opts.limit is not None and opts.limit < 0:
        raise HoidataError("--limit must not be negative")
    source = Path(source)
    entries = discover(source)
    conditions = [parse_condition(f) for f in opts.filters]
    plans = {id(e): _plan(e, conditions, opts.limit) for e in entries if e.kind in CARD_KINDS}
    if plans and all(isinstance(p, str) for p in plans.values()):  # the filter fits nothing here
        raise HoidataError(next(iter(plans.values())))  # type: ignore[arg-type]
    site = Path(out) if out is not None else default_out(source)
    site.mkdir(parents=True, exist_ok=True)
    _copy_assets(site / "assets")
    thumbs = Thumbnails(site, opts.workers)
    progress = Progress("show", unit="record") if opts.progress else Progress("")
    if opts.progress:
        progress.start(sum(len(p[1]) for p in plans.values() if not isinstance(p, str)))
    results = []
    for entry in entries:
        folder = site / entry.slug
        folder.mkdir(exist_ok=True)
        for old in folder.glob("*.html"):  # pages of an earlier, longer run
            old.unlink()
        gallery = Gallery()
        try:
            _write_entry(entry, folder, plans.get(id(entry)), conditions, thumbs, opts, gallery, progress)
        except (HoidataError, OSError, pa.ArrowException) as e:
            gallery.notes.append(f"not shown: {e}")
        results.append((entry, gallery))
    progress.close()
    thumbs.finish(progress=opts.progress)
    footer = (
        f"written in {time.perf_counter() - t0:.2f} s; thumbnails: {thumbs.made:,} made, {thumbs.reused:,} up to date"
        + (f", {len(thumbs.failed):,} unreadable" if thumbs.failed else "")
    )
    index = site / "index.html"
    index.write_text(index_page(source, results, footer), encoding="utf-8")
    return Site(index, results, thumbs.made, thumbs.reused, thumbs.failed, time.perf_counter() - t0)


def _plan(entry: Entry, conditions: list[Condition], limit: int | None) -> tuple[Rows, np.ndarray] | str:
    """The entry's rows and the row numbers to show, or why none can be (a filter it lacks)."""
    assert entry.manifest is not None
    rows = Rows(entry.manifest.shard_files(entry.path))
    try:
        return rows, rows.select(conditions, limit)
    except HoidataError as e:
        return str(e)


def _write_entry(
    entry: Entry,
    folder: Path,
    plan: tuple[Rows, np.ndarray] | str | None,
    conditions: list[Condition],
    thumbs: Thumbnails,
    opts: ShowOptions,
    gallery: Gallery,
    progress: Progress,
) -> None:
    link = f"{entry.slug}/"
    if entry.images:
        gallery.pictures = link + write_pictures(entry, folder, thumbs)
    if entry.kind == "report":
        gallery.report = link + write_report(entry, folder, opts.pr_classes)
        return
    if isinstance(plan, str):
        gallery.notes.append(f"not shown: {plan}")
    elif plan is not None:
        rows, selected = plan
        columns, cards = card_maker(entry, thumbs)
        note = f"{entry.path} · {entry.kind} ({entry.manifest.stage if entry.manifest else ''})"
        if conditions:
            note += " · filter " + " and ".join(str(c) for c in conditions)
        title = entry.name
        gallery.pages = write_cards(
            folder,
            "page",
            title,
            rows,
            selected,
            columns,
            cards,
            grid=GRID.get(entry.kind, "grid"),
            page_size=opts.page_size,
            note=note,
            progress=progress,
        )
        gallery.cards, gallery.first = len(selected), link + page_name("page", 1)
    if entry.manifest is not None:
        shown, pages = write_rejects(entry, folder, opts.page_size, opts.limit, Progress(""))
        if pages:
            gallery.rejects, gallery.rejects_first = shown, link + page_name("rejects", 1)


def _copy_assets(folder: Path) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    assets = files("hoidata.show").joinpath("assets")
    for name in ASSETS:
        data = assets.joinpath(name).read_bytes()
        target = folder / name
        if not target.is_file() or target.read_bytes() != data:
            target.write_bytes(data)
