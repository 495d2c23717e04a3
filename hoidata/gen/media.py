"""Images in the async rollout loop: each source image decoded once, each distinct crop encoded once.

Decoding and PNG encoding are most of the pipeline's own work, and both run in threads (PIL and
zlib release the GIL) while other conversations generate. A shard's samples often share an image,
and the ``n`` rollouts of a prompt often zoom on the same region, so both are keyed: by the image's
path, and by a crop's pixels.
"""

from __future__ import annotations

import io
import struct
import threading
import weakref
from collections.abc import Hashable
from concurrent.futures import Executor, Future
from typing import Any

import numpy as np
from PIL import Image
from zlib_ng import zlib_ng

from hoidata.io.images import open_image


class SourceImages:
    """A shard's images, decoded when first asked for and shared by every sample that shows them
    while any of them is open (decoded RGB, as :func:`hoidata.io.images.open_image` gives them).
    Only live images are kept: once no open sample holds one, it goes, so memory follows the
    prompts in flight rather than the shard."""

    def __init__(self, root: str | None) -> None:
        self.root = root
        self.decoded = 0  # decodes done, for tests and benchmarks
        self._live: weakref.WeakValueDictionary[Hashable, Image.Image] = weakref.WeakValueDictionary()
        self._decoding: dict[Hashable, Future[Image.Image]] = {}
        self._lock = threading.Lock()

    def open(self, image: dict[str, Any]) -> Image.Image:
        key = image.get("path") or id(image)
        with self._lock:
            live = self._live.get(key)
            if live is not None:
                return live
            future = self._decoding.get(key)
            mine = future is None
            if future is None:
                future = self._decoding[key] = Future()
        if mine:
            try:
                decoded = open_image(image, self.root)
            except Exception as e:
                with self._lock:
                    del self._decoding[key]
                future.set_exception(e)
            else:
                with self._lock:
                    del self._decoding[key]
                    self._live[key] = decoded
                    self.decoded += 1
                future.set_result(decoded)
        return future.result()


class CropEncoder:
    """PNG bytes of the images tools returned, each distinct one encoded once, in ``pool``;
    :meth:`submit` starts an image as soon as its rollout is done, :meth:`encode` waits for it.

    Distinct by pixels: a CRC of them finds a candidate (a fifth of a cryptographic digest's cost,
    which was as dear as the encoding), and the pixels themselves are compared before bytes are
    shared, so a collision costs one comparison, never a wrong image."""

    def __init__(self, pool: Executor) -> None:
        self._pool = pool
        self._started: dict[int, tuple[Image.Image, Future[bytes]]] = {}  # the image keeps its id taken
        self._by_pixels: dict[tuple[Any, ...], list[tuple[Image.Image, Future[bytes]]]] = {}
        self._distinct = 0
        self._lock = threading.Lock()

    def submit(self, image: Image.Image) -> None:
        with self._lock:
            if id(image) not in self._started:
                self._started[id(image)] = (image, self._pool.submit(self._encode, image))

    def encode(self, image: Image.Image) -> bytes:
        self.submit(image)
        return self._started[id(image)][1].result()

    @property
    def distinct(self) -> int:
        """Images encoded so far (after deduplication by pixels)."""
        return self._distinct

    def _encode(self, image: Image.Image) -> bytes:
        pixels = np.asarray(image)  # one copy out of PIL, for the key and the encoding both
        key = (image.mode, image.size, zlib_ng.crc32(pixels.data))
        with self._lock:
            bucket = self._by_pixels.setdefault(key, [])
            same = next((f for seen, f in bucket if np.array_equal(np.asarray(seen), pixels)), None)
            if same is None:
                bucket.append((image, future := Future()))
                self._distinct += 1
        if same is not None:  # encoded, or being encoded, for an equal image
            return same.result()
        try:
            future.set_result(png_bytes(image, pixels))
        except Exception as e:
            future.set_exception(e)
        return future.result()


def png_bytes(image: Image.Image, pixels: np.ndarray | None = None) -> bytes:
    """A lossless PNG, written fast: every row with PNG's Sub filter (each byte minus the same
    channel of the pixel to its left), deflated with the run-length strategy by zlib-ng (six times
    faster than zlib at level 1 here, the same size).

    Encoding is the costliest step left in the pipeline: Pillow's adaptive filters and full
    deflate take 3-5x longer for files of about the same size (a photo crop: ~25 ms against ~9;
    flat synthetic scenes: ~2 ms against ~0.7). Modes PNG cannot hold as they are go through Pillow.
    """
    kind = _PNG_COLOR.get(image.mode)
    if kind is None:
        buf = io.BytesIO()
        image.save(buf, "PNG", compress_level=1)
        return buf.getvalue()
    pixels = np.asarray(image) if pixels is None else pixels  # ``pixels``: the caller's copy of them
    height, width = pixels.shape[:2]
    step = 1 if pixels.ndim == 2 else pixels.shape[2]  # bytes per pixel
    flat = pixels.reshape(height, -1)
    rows = np.empty((height, 1 + flat.shape[1]), np.uint8)
    rows[:, 0] = 1  # filter type Sub
    rows[:, 1 : 1 + step] = flat[:, :step]
    np.subtract(flat[:, step:], flat[:, :-step], out=rows[:, 1 + step :])  # modulo 256, as PNG wants
    deflate = zlib_ng.compressobj(1, zlib_ng.DEFLATED, 15, 8, zlib_ng.Z_RLE)
    data = deflate.compress(rows.data) + deflate.flush()
    header = struct.pack(">IIBBBBB", width, height, 8, kind, 0, 0, 0)
    return b"".join((PNG_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", data), _chunk(b"IEND", b"")))


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_COLOR = {"L": 0, "RGB": 2, "RGBA": 6}  # 8-bit modes and their PNG colour types


def _chunk(tag: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib_ng.crc32(data, zlib_ng.crc32(tag)))
    )
