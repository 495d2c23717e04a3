"""Image files under an image root: safe relative paths, header sizes, original bytes, decoding."""

from __future__ import annotations

import io
import os
import posixpath
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image, UnidentifiedImageError


def safe_relative_path(name: str) -> str | None:
    """The normalised POSIX path of ``name`` when it stays inside the image root, else None."""
    if not name or "\x00" in name:
        return None
    norm = posixpath.normpath(name.replace("\\", "/"))
    if posixpath.isabs(norm) or norm == ".." or norm.startswith("../") or norm == ".":
        return None
    return norm


@dataclass(frozen=True, slots=True)
class ImageInfo:
    width: int = -1
    height: int = -1
    data: bytes | None = None  # the file's original bytes, when embedding
    error: str | None = None


def probe(path: Path, embed: bool) -> ImageInfo:
    """Read an image header (and, when embedding, its bytes, never re-encoded)."""
    try:
        if embed:
            data = path.read_bytes()
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
            return ImageInfo(w, h, data)
        with Image.open(path) as im:
            w, h = im.size
        return ImageInfo(w, h)
    except FileNotFoundError:
        return ImageInfo(error=f"image not found: {path}")
    except (UnidentifiedImageError, OSError, ValueError) as e:
        return ImageInfo(error=f"unreadable image {path}: {e}")


def probe_many(
    paths: list[Path], embed: bool, workers: int | None = None, progress: object = None
) -> list[ImageInfo]:
    """:func:`probe` over many files with a thread pool (the work is file I/O)."""
    workers = workers or min(16, (os.cpu_count() or 2) * 4)
    with ThreadPoolExecutor(workers) as pool:
        out = []
        for info in pool.map(lambda p: probe(p, embed), paths, chunksize=64):
            out.append(info)
            if progress is not None:
                progress.update(1)  # type: ignore[attr-defined]
    return out


def open_image(image: dict[str, Any], root: str | Path | None) -> Image.Image:
    """A dataset's image struct (``{bytes, path}``) decoded as RGB; ``path`` is under ``root``."""
    data = image.get("bytes")
    if data is None:
        if not root or not image.get("path"):
            raise ValueError("image has neither bytes nor a path under an image root")
        data = (Path(root) / image["path"]).read_bytes()
    im = Image.open(io.BytesIO(data))
    im.load()
    return im.convert("RGB")


def open_images(
    images: list[dict[str, Any]], root: str | Path | None, threads: int = 4
) -> list[Image.Image | Exception]:
    """Each distinct image decoded once (by path, else by identity), in threads (PIL decodes
    without the GIL); an unreadable image comes back as its exception, for a per-record reject."""

    def attempt(image: dict[str, Any]) -> Image.Image | Exception:
        try:
            return open_image(image, root)
        except Exception as e:
            return e

    keys = [im.get("path") or id(im) for im in images]
    first = dict(zip(keys, images, strict=True))
    with ThreadPoolExecutor(threads) as pool:
        decoded = dict(zip(first, pool.map(attempt, first.values()), strict=True))
    return [decoded[k] for k in keys]
