"""Detections for the tool environment: what ``detect_humans`` / ``detect_objects`` see.

A :class:`Scene` is one sample (its ground truth and a lazy image); a :class:`Detector` turns it into
:class:`Detection` s in canonical pixels. :class:`OracleDetector` answers from the ground truth and can
imitate a real detector (jitter, misses, false positives), seeded per sample so that CoT generation
and RL see the same detections for a sample. :class:`CallableDetector` plugs in a real model.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
from PIL import Image


@dataclass(frozen=True, eq=False)  # eq=False: a numpy box has no single truth value to compare with
class Detection:
    """One detected instance; ``box`` is canonical ``[x1, y1, x2, y2]`` float pixels."""

    box: np.ndarray
    label: str  # taxonomy spelling (underscores)
    is_human: bool
    score: float


@dataclass
class Scene:
    """One sample as a detector sees it: canonical frame, ground truth, and the image on demand."""

    sample_id: str
    width: int
    height: int
    boxes: np.ndarray  # (N, 4) canonical pixels
    labels: list[str]  # taxonomy names, one per box
    is_human: np.ndarray  # (N,) bool
    load_image: Callable[[], Image.Image] | None = None
    _image: Image.Image | None = field(default=None, init=False, repr=False)
    _loading: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def image(self) -> Image.Image:
        """The decoded image, loaded on first use only (most detectors never need it), and once
        for the episodes sharing the scene, whichever threads their tools run in."""
        if self._image is None:
            with self._loading:
                if self._image is None:
                    if self.load_image is None:
                        raise ValueError(f"scene {self.sample_id!r} has no image")
                    self._image = self.load_image()
        return self._image


class Detector(Protocol):
    def detect(self, scene: Scene) -> list[Detection]: ...


def stable_seed(*parts: object) -> int:
    """A seed from ``parts`` that is the same in every process (unlike ``hash``, which is salted)."""
    digest = hashlib.blake2b("\x1f".join(map(str, parts)).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


def clip_boxes(boxes: np.ndarray, width: float, height: float) -> np.ndarray:
    """Boxes ``(N, 4)`` clipped to the ``width`` × ``height`` frame."""
    out = np.asarray(boxes, np.float64).reshape(-1, 4).copy()
    out[:, 0::2] = np.clip(out[:, 0::2], 0, width)
    out[:, 1::2] = np.clip(out[:, 1::2], 0, height)
    return out


@dataclass(frozen=True)
class OracleDetector:
    """Ground truth as detections, optionally degraded like a real detector.

    ``box_noise``: std of the Gaussian jitter of each coordinate, as a fraction of the box's size;
    ``miss_rate``: chance that a true instance is not reported; ``false_positives``: expected number of
    spurious boxes per image (Poisson), labelled with the scene's own labels and scored low.
    """

    box_noise: float = 0.0
    miss_rate: float = 0.0
    false_positives: float = 0.0
    seed: int = 0

    def detect(self, scene: Scene) -> list[Detection]:
        rng = np.random.default_rng(stable_seed("oracle", self.seed, scene.sample_id))
        boxes = np.asarray(scene.boxes, np.float64).reshape(-1, 4)
        n = len(boxes)
        # every draw happens whatever the settings, so one knob never reshuffles another's outcome
        missed = rng.random(n) < self.miss_rate
        jitter = rng.standard_normal((n, 4))
        true_scores = rng.uniform(0.7, 1.0, n)
        size = np.tile(boxes[:, 2:] - boxes[:, :2], 2)
        noisy = boxes + jitter * self.box_noise * size
        # jitter may swap a box's corners; sort each axis back into x1 < x2, y1 < y2
        noisy = np.concatenate([np.sort(noisy[:, 0::2], 1), np.sort(noisy[:, 1::2], 1)], 1)[:, [0, 2, 1, 3]]
        degraded = self.box_noise > 0 or self.miss_rate > 0 or self.false_positives > 0
        scores = true_scores if degraded else np.ones(n)
        labels = list(scene.labels)
        human = np.asarray(scene.is_human, bool).reshape(-1)

        k = int(rng.poisson(self.false_positives)) if self.false_positives > 0 and n else 0
        frame = np.array([scene.width, scene.height, scene.width, scene.height], np.float64)
        centre = rng.random((k, 2)) * frame[:2]
        half = rng.uniform(0.025, 0.25, (k, 2)) * frame[:2]
        fp_boxes = np.concatenate([centre - half, centre + half], 1)
        fp_pick = rng.integers(0, max(n, 1), k)
        fp_scores = rng.uniform(0.05, 0.5, k)

        all_boxes = clip_boxes(np.concatenate([noisy[~missed], fp_boxes]), scene.width, scene.height)
        all_labels = [labels[i] for i in np.flatnonzero(~missed)] + [labels[i] for i in fp_pick]
        all_human = np.concatenate([human[~missed], human[fp_pick]])
        all_scores = np.concatenate([scores[~missed], fp_scores])
        keep = (all_boxes[:, 2] > all_boxes[:, 0]) & (all_boxes[:, 3] > all_boxes[:, 1])
        return [
            Detection(all_boxes[i], all_labels[i], bool(all_human[i]), float(all_scores[i]))
            for i in np.flatnonzero(keep)
        ]


@dataclass(frozen=True)
class CallableDetector:
    """A real detector: ``fn(image) -> list[Detection]`` with boxes in the image's own pixels.

    The image is decoded only here, on the first detection of a sample; boxes are rescaled to the
    canonical frame when the stored image has another size than the scene's width × height.
    """

    fn: Callable[[Image.Image], list[Detection]]

    def detect(self, scene: Scene) -> list[Detection]:
        image = scene.image()
        found = list(self.fn(image))
        if not found:
            return []
        scale = np.array([scene.width / image.width, scene.height / image.height] * 2)
        boxes = clip_boxes(np.stack([d.box for d in found]) * scale, scene.width, scene.height)
        return [Detection(boxes[i], d.label, bool(d.is_human), float(d.score)) for i, d in enumerate(found)]
