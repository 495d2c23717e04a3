"""Image files under an image root: safe relative paths, header sizes, original bytes, decoding.

Every stage decodes through :func:`decode_image`, so every stage treats odd files alike:

* **frame**: pixels as stored. EXIF orientation is *not* applied: HICO-DET, SWIG-HOI and HOI-QA
  annotate the stored pixels (their loaders and the COCO API never rotate), so boxes stay right.
* **modes**: CMYK, palette, grey and alpha images become RGB (alpha dropped); 16- and 32-bit grey
  images are scaled to 8 bits, not clipped.
* **limits**: an image over :data:`MAX_IMAGE_PIXELS` (a decompression bomb, or a scan no VLM can
  take) is refused before its pixels are decoded; truncated and unreadable files raise.
* **paths**: a relative path that leaves the image root (``..``, an absolute path, a symlink
  pointing outside, a symlink loop) raises instead of reading.

A stage catches what these raise and rejects the record with the reason; nothing here crashes a shard.
"""

from __future__ import annotations

import errno
import io
import os
import posixpath
import stat
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

MAX_IMAGE_PIXELS = 150_000_000  # 150 MP: far above any HOI dataset, far below a bomb's billions
Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS  # Pillow refuses twice this even in header-only opens


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


def probe(path: Path, embed: bool, root: Path | None = None) -> ImageInfo:
    """Read an image header (and, when embedding, its bytes, never re-encoded); under ``root`` when
    given (a symlink out of it, or a loop, is an error)."""
    try:
        if root is not None:
            path = path_under(root, str(path.relative_to(root)))
        if not stat.S_ISREG(path.stat().st_mode):  # a directory, or a FIFO that would hang the read
            raise ValueError("not a regular file")
        data = path.read_bytes() if embed else None
        with check_image_header(data) if data is not None else Image.open(path) as im:
            w, h = im.size
        if w * h > MAX_IMAGE_PIXELS:
            raise ValueError(f"image of {w}x{h} pixels refused (limit {MAX_IMAGE_PIXELS:,})")
        return ImageInfo(w, h, data)
    except FileNotFoundError:
        return ImageInfo(error=f"image not found: {path}")
    except (UnidentifiedImageError, OSError, ValueError, RuntimeError, Image.DecompressionBombError) as e:
        return ImageInfo(error=f"unreadable image {path}: {e}")


def probe_many(
    paths: list[Path],
    embed: bool,
    workers: int | None = None,
    progress: object = None,
    root: Path | None = None,
) -> list[ImageInfo]:
    """:func:`probe` over many files with a thread pool (the work is file I/O)."""
    workers = workers or min(16, (os.cpu_count() or 2) * 4)
    with ThreadPoolExecutor(workers) as pool:
        out = []
        for info in pool.map(lambda p: probe(p, embed, root), paths, chunksize=64):
            out.append(info)
            if progress is not None:
                progress.update(1)  # type: ignore[attr-defined]
    return out


def open_image(image: dict[str, Any], root: str | Path | None) -> Image.Image:
    """A dataset's image struct (``{bytes, path}``) decoded as RGB; ``path`` is under ``root``."""
    return decode_image(image_bytes(image, root))


def image_bytes(image: dict[str, Any], root: str | Path | None) -> bytes:
    """The stored bytes of an image struct, or those of its file under ``root`` (never outside it)."""
    data = image.get("bytes")
    if data is not None:
        return bytes(data)
    if not root or not image.get("path"):
        raise ValueError("image has neither bytes nor a path under an image root")
    return read_under(root, image["path"])


def read_under(root: str | Path, name: str) -> bytes:
    """The bytes of ``root / name``, refused where :func:`path_under` refuses it, in few system
    calls: the file is opened without following a symlink (one that is there is checked in full).
    A thread gives the GIL up at every system call and waits for it back while others are busy, so
    a full ``realpath`` (an ``lstat`` per path component) costs a busy pipeline milliseconds per image."""
    try:  # non-blocking: a FIFO planted among the images must not hang the reader
        fd = os.open(_in_resolved_directory(root, name), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as e:
        if e.errno != errno.ELOOP:  # ELOOP: the file is a symlink, which path_under follows and checks
            raise
        fd = os.open(path_under(root, name), os.O_RDONLY | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError(f"image path {name!r} is not a regular file")
    with open(fd, "rb") as f:
        return f.read()


def file_under(root: str | Path, name: str) -> str:
    """The path of ``root / name`` for a reader that opens it itself, refused where
    :func:`path_under` refuses it (one ``lstat``; a symlink is checked in full)."""
    path = _in_resolved_directory(root, name)
    mode = os.lstat(path).st_mode  # raises FileNotFoundError for a missing file
    if stat.S_ISLNK(mode):
        path = str(path_under(root, name))
        mode = os.stat(path).st_mode
    if not stat.S_ISREG(mode):  # a directory, or a FIFO that would hang its reader
        raise ValueError(f"image path {name!r} is not a regular file")
    return path


def _in_resolved_directory(root: str | Path, name: str) -> str:
    """``name``'s file in its directory under ``root`` with every symlink resolved (once per
    process, once the directory exists); the file itself is not followed. A relative root is taken
    from the current directory each time (a Ray worker changes it between jobs). A directory under
    the root that is replaced by a symlink while the process runs is not looked at again."""
    rel = safe_relative_path(name)
    if rel is None:
        raise ValueError(f"image path {name!r} leaves the image root")
    directory, file = posixpath.split(rel)
    root = os.fspath(root)
    key = (root if os.path.isabs(root) else os.path.join(os.getcwd(), root), directory)
    real = _DIRECTORIES.get(key)
    if real is None:
        base = os.path.realpath(root)
        real = os.path.realpath(os.path.join(base, directory))
        if not (real == base or real.startswith(base.rstrip("/") + "/")):
            raise ValueError(f"image path {name!r} resolves outside the image root (a symlink?)")
        if os.path.isdir(real) and len(_DIRECTORIES) < 4096:  # one made later is resolved then
            _DIRECTORIES[key] = real
    return os.path.join(real, file)


_DIRECTORIES: dict[tuple[str, str], str] = {}  # (root, directory) -> resolved, inside the root


def path_under(root: str | Path, name: str) -> Path:
    """``root / name``, refused when it leaves ``root`` (``..``, absolute, a symlink out or a loop)."""
    rel = safe_relative_path(name)
    if rel is None:
        raise ValueError(f"image path {name!r} leaves the image root")
    base = Path(root).resolve()
    path = (base / rel).resolve(strict=True)  # raises on a missing file or a symlink loop
    if not path.is_relative_to(base):
        raise ValueError(f"image path {name!r} resolves outside the image root (a symlink?)")
    return path


def check_image_header(data: bytes) -> Image.Image:
    """The image opened lazily (header only), refused when it is no image or over the pixel limit."""
    try:
        im = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:  # Pillow's message names an in-memory buffer, not the file
        raise UnidentifiedImageError(
            "empty file" if not data else "not an image format Pillow reads (a damaged file?)"
        ) from None
    w, h = im.size
    if w <= 0 or h <= 0 or w * h > MAX_IMAGE_PIXELS:
        raise ValueError(
            f"image of {w}x{h} pixels refused (limit {MAX_IMAGE_PIXELS:,}: a decompression bomb?)"
        )
    return im


def decode_image(data: bytes) -> Image.Image:
    """Bytes → an RGB image, by the rules in the module docstring."""
    im = check_image_header(data)
    im.load()
    if im.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        pixels = np.asarray(im, dtype=np.float64)
        top = 65535.0 if im.mode.startswith("I;16") else max(float(pixels.max()), 1.0)
        im = Image.fromarray(np.clip(pixels / top * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    elif im.mode == "F":
        pixels = np.asarray(im, dtype=np.float64)
        im = Image.fromarray(np.clip(np.nan_to_num(pixels) * 255.0 + 0.5, 0, 255).astype(np.uint8), "L")
    return im if im.mode == "RGB" else im.convert("RGB")  # convert would copy an RGB image whole


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
