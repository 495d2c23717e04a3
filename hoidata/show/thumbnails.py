"""The images of a site, put in its ``thumbs/`` folder by a process pool while the pages are written.

An image is named by what it shows (a file's path, size and modification time, or the hash of
embedded bytes), so a rerun puts in only the missing ones and an image shared by many samples is
handled once. A small image in a format every browser shows (at most :data:`SMALL` bytes: HICO-DET,
SWIG-HOI and video frames mostly are) goes in as it is, hard-linked when it can be: decoding and
re-encoding it would cost more time than it saves bytes. Any other image gets a JPEG thumbnail,
decoded at a fraction of its size where JPEG allows. Either way the site holds every image it shows
(it can be served or copied on its own) and links the full image. Files are written atomically, so
an interrupted run never leaves a truncated file that a rerun would trust.
"""

from __future__ import annotations

import hashlib
import io
import math
import os
import shutil
import stat
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any
from urllib.parse import quote

from PIL import Image, ImageDraw

from hoidata.io.images import check_image_header, file_under
from hoidata.io.progress import Progress

THUMB = 320  # longest side a card shows; a thumbnail keeps the JPEG decoder's scale up to twice that
SMALL = 256 << 10  # bytes: a web-format image this small goes into the site as it is
RECIPE = f"v2-{THUMB}-{SMALL}-jpeg80"  # part of every name: changing the recipe remakes them all
CHUNK = 32  # images per task sent to a worker
WEB = {".jpg": "jpg", ".jpeg": "jpg", ".png": "png", ".webp": "webp", ".gif": "gif"}
MAGIC = ((b"\x89PNG", "png"), (b"\xff\xd8", "jpg"), (b"RIFF", "webp"), (b"GIF8", "gif"), (b"BM", "bmp"))
PAGE_DIR = "page"  # every page that shows images lies one folder below the site root


@dataclass(frozen=True)
class ImageRef:
    """Where a page finds an image: its copy in the site and the full image, relative to the page."""

    thumb: str | None
    original: str | None
    error: str | None = None


def default_workers() -> int:
    return max(
        1, min(8, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)
    )


class Thumbnails:
    """Collects the images pages show and has the missing ones put in the site, ``workers``
    processes at a time (0: in this process)."""

    def __init__(self, site: Path, workers: int | None = None) -> None:
        self.site = site.resolve()
        self.workers = default_workers() if workers is None else workers
        self.known: dict[str, ImageRef] = {}
        self.folders: dict[str, str] = {}
        self.existing: set[str] | None = None
        self.pending: list[tuple[Any, ...]] = []
        self.futures: list[tuple[Future[list[str | None]], list[tuple[Any, ...]]]] = []
        self.pool: ProcessPoolExecutor | None = None
        self.made = self.reused = 0
        self.failed: list[str] = []

    # ---- what pages ask for ---------------------------------------------------------------------
    def image(self, image: dict[str, Any] | None, root: str | None) -> ImageRef | None:
        """A dataset's image struct (``{bytes, path}``; ``path`` relative to ``root``)."""
        if not image:
            return None
        if image.get("bytes"):
            return self.embedded(image["bytes"])
        path = image.get("path")
        if not path:
            return None
        if not root:
            return self.file(path)
        try:  # the rules every stage follows: nothing outside the image root
            return self.file(file_under(root, path))
        except (OSError, ValueError, RuntimeError) as e:
            return ImageRef(None, None, f"image not readable: {path} ({getattr(e, 'strerror', None) or e})")

    def file(self, path: str | Path) -> ImageRef:
        """An image file; a missing one gets nothing in the site (a page shows the error instead)."""
        path = os.path.abspath(path)
        try:
            st = os.stat(path)
        except OSError as e:
            return ImageRef(None, None, f"image not readable: {path} ({e.strerror})")
        if not stat.S_ISREG(st.st_mode):  # a directory, or a FIFO that would hang the read
            return ImageRef(None, None, f"image not readable: {path} (not a regular file)")
        key = hashlib.sha1(f"{path}|{st.st_size}|{st.st_mtime_ns}|{RECIPE}".encode()).hexdigest()[:24]
        ref = self.known.get(key)
        if ref is None:
            web = WEB.get(os.path.splitext(path)[1].lower())
            as_is = web is not None and st.st_size <= SMALL
            name = f"{key}.{web}" if as_is else f"{key}.jpg"
            ref = self.known[key] = ImageRef(self._link(name), self._file_link(path))
            self._want(name, ("link" if as_is else "file", path, self._file(name), None))
        return ref

    def embedded(self, data: bytes) -> ImageRef:
        """Image bytes stored in a dataset; a large one is also written out whole, for its link."""
        key = hashlib.sha1(data).hexdigest()[:24]
        ref = self.known.get(key)
        if ref is None:
            ext = next((e for magic, e in MAGIC if data.startswith(magic)), "img")
            if ext in WEB.values() and len(data) <= SMALL:
                name = f"{key}.{ext}"
                ref = self.known[key] = ImageRef(self._link(name), self._link(name))
                self._want(name, ("raw", data, self._file(name), None))
            else:
                name, original = f"{key}.jpg", f"originals/{key[:2]}/{key}.{ext}"
                ref = self.known[key] = ImageRef(self._link(name), f"../{original}")
                self._want(name, ("bytes", data, self._file(name), str(self.site / original)))
        return ref

    # ---- putting them in ------------------------------------------------------------------------
    def finish(self, progress: bool = True) -> None:
        """Wait for every image; an unreadable one gets a placeholder (no broken link)."""
        self._flush(force=True)
        bar = Progress("show (images)", unit="image") if progress else None
        if bar is not None:
            bar.start(sum(len(jobs) for _, jobs in self.futures))
        for future, jobs in self.futures:
            for job, error in zip(jobs, future.result(), strict=True):
                if error is None:
                    self.made += 1
                else:
                    self.failed.append(error)
                    _placeholder(Path(job[2]))
            if bar is not None:
                bar.update(len(jobs))
        if bar is not None:
            bar.close()
        self.futures = []
        if self.pool is not None:
            self.pool.shutdown()
            self.pool = None

    def _want(self, name: str, job: tuple[Any, ...]) -> None:
        if self.existing is None:  # what an earlier run put in: one listing per folder, not a stat each
            thumbs = self.site / "thumbs"
            self.existing = (
                {f.name for d in os.scandir(thumbs) if d.is_dir() for f in os.scandir(d)}
                if thumbs.is_dir()
                else set()
            )
        if name in self.existing and (job[3] is None or os.path.exists(job[3])):
            self.reused += 1
            return
        self.pending.append(job)
        self._flush()

    def _flush(self, force: bool = False) -> None:
        if not self.pending or (len(self.pending) < CHUNK and not force):
            return
        jobs, self.pending = self.pending, []
        if self.workers == 0:
            done: Future[list[str | None]] = Future()
            done.set_result(make_thumbnails(jobs))
            self.futures.append((done, jobs))
            return
        if self.pool is None:  # fork: workers start at once and share what is already imported
            self.pool = ProcessPoolExecutor(self.workers, mp_context=get_context("fork"))
        for start in range(0, len(jobs), CHUNK):
            chunk = jobs[start : start + CHUNK]
            self.futures.append((self.pool.submit(make_thumbnails, chunk), chunk))

    def _file(self, name: str) -> str:
        return f"{self.site}/thumbs/{name[:2]}/{name}"

    @staticmethod
    def _link(name: str) -> str:
        return f"../thumbs/{name[:2]}/{name}"

    def _file_link(self, path: str) -> str:
        """An image file as a page one folder below the site root links to it (relative, so that
        the site and the data can move together); one relative path per folder of images."""
        folder, name = os.path.split(path)
        link = self.folders.get(folder)
        if link is None:
            link = self.folders[folder] = Path(os.path.relpath(folder, self.site / PAGE_DIR)).as_posix()
        return f"{link}/{quote(name)}"


def make_thumbnails(jobs: list[tuple[Any, ...]]) -> list[str | None]:
    """Worker: one image put in the site per job; an error message where it failed."""
    return [_make(*job) for job in jobs]


def _make(kind: str, source: Any, target: str, original: str | None) -> str | None:
    try:
        if kind == "link":  # its header read as every stage reads it (no empty file, no bomb); small
            with open(source, "rb") as f:
                check_image_header(f.read())
            _link_or_copy(source, Path(target))
            return None
        if kind == "raw":
            check_image_header(source)
            _write_atomic(Path(target), source)
            return None
        if kind == "bytes":
            if original and not os.path.exists(original):
                _write_atomic(Path(original), source)
            im = Image.open(io.BytesIO(source))
        else:
            im = Image.open(source)
        w, h = im.size
        scale = min(1.0, THUMB / max(w, h, 1))
        im.draft("RGB", (math.ceil(w * scale), math.ceil(h * scale)))  # JPEG: decoded at 1/2, 1/4 or 1/8
        im = im.convert("RGB")
        if max(im.size) > 2 * THUMB:  # the decoder's own scaling is enough below that: no resampling
            im.thumbnail((THUMB, THUMB), Image.Resampling.BILINEAR)
        buf = io.BytesIO()
        im.save(buf, "JPEG", quality=80)
        _write_atomic(Path(target), buf.getvalue())
        return None
    except Exception as e:  # any unreadable image: reported, and the page keeps working
        name = "embedded image" if kind in ("bytes", "raw") else source
        return f"{name}: {e}"


def _placeholder(path: Path) -> None:
    im = Image.new("RGB", (160, 120), (200, 200, 200))
    ImageDraw.Draw(im).text((10, 50), "unreadable image", fill=(80, 80, 80))
    buf = io.BytesIO()
    im.save(buf, "JPEG")
    _write_atomic(path, buf.getvalue())


def _link_or_copy(source: str, target: Path) -> None:
    """A hard link where the file system allows (no copy, no disk), else a copy; atomic either way."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    try:
        os.link(source, tmp)
    except OSError:
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _write_atomic(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
