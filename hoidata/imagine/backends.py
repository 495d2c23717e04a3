"""Imagine backends for data generation and live tool calls: ``context`` (non-generative, the fast
default), ``diffusers`` (any diffusers inpainting pipeline) and ``http`` (an external service).

Each answers :class:`~hoidata.tools.imagine.ImagineBackend`'s ``imagine(image, box, mode)`` for the
tool environment, and ``imagine_many(requests)`` for the ``imagine`` stage, which batches: a failed
request comes back as its exception, never as a crashed batch. ``fingerprint`` names what decides
the pixels, so a cache made by one backend is never served as another's.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from hoidata.imagine.canvas import (
    Canvas,
    batch_shape,
    image_key,
    make_canvas,
    prompt_for,
    request_seed,
    working_size,
)
from hoidata.tools.imagine import ContextImagine


@dataclass
class ImagineRequest:
    image: Image.Image
    box: np.ndarray  # float pixels of ``image``
    mode: str
    key: str = ""  # the sample id (seeds the request); empty: a hash of the pixels
    label: str = ""  # what the region shows, for the prompt
    question: str | None = None

    def seed(self, base: int) -> int:
        return request_seed(self.key or image_key(self.image), self.box, self.mode, base)


@dataclass
class ContextBackend:
    """:class:`ContextImagine` with the stage's interface: crops, mirrored beyond the border."""

    scale: float = 2.0

    @property
    def fingerprint(self) -> str:
        return f"context:scale={self.scale}"

    def imagine(self, image: Image.Image, box: np.ndarray, mode: str) -> Image.Image:
        if mode == "edit":
            raise ValueError("the context backend cannot edit; use a generative backend")
        return ContextImagine(self.scale).imagine(image, box, mode)

    def imagine_many(self, requests: Sequence[ImagineRequest]) -> list[Image.Image | Exception]:
        return [_attempt(lambda r=r: self.imagine(r.image, r.box, r.mode)) for r in requests]


@dataclass
class DiffusersImagine:
    """A diffusers inpainting pipeline (SD / SDXL inpainting, FLUX Fill, ...) from a local directory or
    a Hub id, loaded on first use. Canvases of one shape (:func:`batch_shape`: each resized to its
    working size, padded to the shape) go to the pipeline together (``batch_size`` per call), each
    with its own seeded generator, so a batch equals its requests run one by one."""

    model: str
    device: str = "cpu"
    dtype: str = "auto"  # auto: bfloat16 on CUDA, float32 elsewhere
    steps: int = 20
    guidance: float = 7.5
    size: int = 512  # the long side generated at
    batch_size: int = 4
    scale: float = 2.0
    seed: int = 0
    _pipe: Any = field(default=None, repr=False)

    @property
    def fingerprint(self) -> str:
        return (
            f"diffusers:{self.model}:steps={self.steps}:guidance={self.guidance}:size={self.size}"
            f":scale={self.scale}:seed={self.seed}:shapes=1/8"
        )

    def pipeline(self) -> Any:
        if self._pipe is None:
            import torch
            from diffusers import AutoPipelineForInpainting
            from diffusers.utils import logging as diffusers_logging

            diffusers_logging.disable_progress_bar()
            dtype = (
                self.dtype
                if self.dtype != "auto"
                else ("bfloat16" if self.device.startswith("cuda") else "float32")
            )
            pipe = AutoPipelineForInpainting.from_pretrained(self.model, dtype=getattr(torch, dtype))
            pipe.set_progress_bar_config(disable=True)
            self._pipe = pipe.to(self.device)
        return self._pipe

    def imagine(self, image: Image.Image, box: np.ndarray, mode: str) -> Image.Image:
        (view,) = self.imagine_many([ImagineRequest(image, np.asarray(box, np.float64), mode)])
        if isinstance(view, Exception):
            raise view
        return view

    def imagine_many(self, requests: Sequence[ImagineRequest]) -> list[Image.Image | Exception]:
        out: list[Image.Image | Exception | None] = [None] * len(requests)
        todo: dict[tuple[int, int], list[tuple[int, Canvas]]] = {}  # by padded shape
        for i, r in enumerate(requests):
            try:
                canvas = make_canvas(r.image, r.box, "context" if r.mode == "context" else r.mode, self.scale)
            except Exception as e:
                out[i] = e
                continue
            if r.mode == "context" or not canvas.needs_generation:
                out[i] = canvas.image  # nothing to make up: the view is what the image shows
                continue
            todo.setdefault(batch_shape(*working_size(*canvas.image.size, self.size), self.size), []).append(
                (i, canvas)
            )
        for (w, h), group in todo.items():
            for start in range(0, len(group), self.batch_size):
                part = group[start : start + self.batch_size]
                try:
                    views = self._generate([requests[i] for i, _ in part], [c for _, c in part], w, h)
                except Exception as e:
                    views = [e] * len(part)
                for (i, _), view in zip(part, views, strict=True):
                    out[i] = view
        return out  # type: ignore[return-value]

    def _generate(
        self, requests: list[ImagineRequest], canvases: list[Canvas], width: int, height: int
    ) -> list[Image.Image]:
        """One pipeline call at ``width`` x ``height``: each canvas at its working size, centred,
        with the padding around it masked (generated, then cropped off before compositing)."""
        import torch

        padded = [_padded(c, working_size(*c.image.size, self.size), (width, height)) for c in canvases]
        result = self.pipeline()(
            prompt=[prompt_for(r.label, r.question) for r in requests],
            image=[image for image, _, _ in padded],
            mask_image=[mask for _, mask, _ in padded],
            height=height,
            width=width,
            num_inference_steps=self.steps,
            guidance_scale=self.guidance,
            generator=[torch.Generator(device="cpu").manual_seed(r.seed(self.seed)) for r in requests],
            output_type="pil",
        )
        return [  # resized first: a pipeline may round the size it was asked for (FLUX Fill: to 16)
            c.composite(view.resize((width, height), Image.Resampling.BICUBIC).crop(window))
            for c, view, (_, _, window) in zip(canvases, result.images, padded, strict=True)
        ]


def _padded(
    canvas: Canvas, size: tuple[int, int], shape: tuple[int, int]
) -> tuple[Image.Image, Image.Image, tuple[int, int, int, int]]:
    """``canvas`` resized to ``size`` and centred in ``shape`` (grey, masked around it): the image,
    the mask, and the window of the canvas in them."""
    left, top = (shape[0] - size[0]) // 2, (shape[1] - size[1]) // 2
    image = Image.new("RGB", shape, (127, 127, 127))
    image.paste(canvas.image.resize(size, Image.Resampling.BICUBIC), (left, top))
    mask = Image.new("L", shape, 255)
    mask.paste(canvas.mask.resize(size, Image.Resampling.NEAREST), (left, top))
    return image, mask, (left, top, left + size[0], top + size[1])


def _attempt(fn: Any) -> Any:
    try:
        return fn()
    except Exception as e:
        return e
