"""The ``http`` imagine backend: any external service (a BAGEL-style server, a hosted model) that
speaks one small JSON protocol. hoidata prepares the canvas and mask (:mod:`hoidata.imagine.canvas`)
so every backend fills the same geometry; the service only generates.

Request: ``POST {url}`` with ``Content-Type: application/json`` (and ``Authorization: Bearer KEY``
when a key is set)::

    {"image": "<base64 PNG, RGB canvas>", "mask": "<base64 PNG, L: 255 = generate>",
     "mode": "outpaint" | "edit", "prompt": "...", "seed": 123,
     "box": [x1, y1, x2, y2],        # the region, in canvas pixels
     "window": [left, top, right, bottom]}   # the canvas, in the source image's pixels

Answer: ``200`` with ``{"image": "<base64 PNG or JPEG>"}`` of any size (resized to the canvas; the
known pixels are pasted back). ``429`` and ``5xx`` answers, timeouts and refused connections are
retried ``retries`` times with exponential backoff (``Retry-After`` honoured, up to 30 s); other
answers, malformed JSON or an undecodable image fail the request with a one-line error.
"""

from __future__ import annotations

import base64
import io
import json
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from PIL import Image

from hoidata.imagine.backends import ImagineRequest
from hoidata.imagine.canvas import Canvas, make_canvas, prompt_for

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})
MAX_WAIT = 30.0


class ImagineServiceError(RuntimeError):
    """A request the service did not answer with an image (after retries where they apply)."""


@dataclass
class HttpImagine:
    url: str
    api_key: str | None = None
    timeout: float = 60.0
    retries: int = 3
    backoff: float = 0.5  # seconds before the first retry; doubled each time
    concurrency: int = 4
    scale: float = 2.0
    seed: int = 0

    @property
    def fingerprint(self) -> str:
        return f"http:{self.url}:scale={self.scale}:seed={self.seed}"

    def imagine(self, image: Image.Image, box: np.ndarray, mode: str) -> Image.Image:
        (view,) = self.imagine_many([ImagineRequest(image, np.asarray(box, np.float64), mode)])
        if isinstance(view, Exception):
            raise view
        return view

    def imagine_many(self, requests: Sequence[ImagineRequest]) -> list[Image.Image | Exception]:
        with ThreadPoolExecutor(max(1, self.concurrency)) as pool:
            return list(pool.map(self._one, requests))

    def _one(self, r: ImagineRequest) -> Image.Image | Exception:
        try:
            canvas = make_canvas(r.image, r.box, r.mode, self.scale)
            if r.mode == "context" or not canvas.needs_generation:
                return canvas.image
            return canvas.composite(self._post(r, canvas))
        except Exception as e:
            return e

    def _post(self, r: ImagineRequest, canvas: Canvas) -> Image.Image:
        left, top = canvas.window[:2]
        body = json.dumps(
            {
                "image": _b64(canvas.image),
                "mask": _b64(canvas.mask),
                "mode": r.mode,
                "prompt": prompt_for(r.label, r.question),
                "seed": r.seed(self.seed),
                "box": [
                    float(r.box[0]) - left,
                    float(r.box[1]) - top,
                    float(r.box[2]) - left,
                    float(r.box[3]) - top,
                ],
                "window": list(canvas.window),
            }
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        wait = self.backoff
        for attempt in range(self.retries + 1):
            request = urllib.request.Request(self.url, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as answer:
                    return _decode(answer.read())
            except urllib.error.HTTPError as e:
                if e.code not in RETRY_STATUS or attempt == self.retries:
                    detail = e.read()[:200].decode(errors="replace").strip()
                    raise ImagineServiceError(f"{self.url} answered {e.code}: {detail or e.reason}") from None
                after = e.headers.get("Retry-After") if e.headers else None
                pause = float(after) if after and after.replace(".", "", 1).isdigit() else wait
            except (urllib.error.URLError, TimeoutError, ConnectionError) as e:
                if attempt == self.retries:
                    reason = getattr(e, "reason", e)
                    raise ImagineServiceError(
                        f"{self.url} unreachable after {self.retries + 1} attempts: {reason}"
                    ) from None
                pause = wait
            time.sleep(min(pause, MAX_WAIT))
            wait *= 2
        raise AssertionError("unreachable")


def _b64(image: Image.Image) -> str:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode()


def _decode(payload: bytes) -> Image.Image:
    try:
        data = json.loads(payload)
        raw = base64.b64decode(data["image"], validate=True)
        image = Image.open(io.BytesIO(raw))
        image.load()
    except Exception as e:
        raise ImagineServiceError(
            f"the service's answer is not a JSON image: {type(e).__name__}: {e}"
        ) from None
    return image.convert("RGB")
