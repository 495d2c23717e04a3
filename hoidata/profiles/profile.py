"""A model profile owns everything that differs between model families on the data side.

Pixel budget and resize rule, the frame boxes are written in (0–1000 relative, or absolute pixels
on the ``smart_resize``d image), how a box and an HOI answer look as text, and how to read them
back. Adding a model family is adding a profile, not an if-statement in every stage.

Text is produced vectorised (``*_texts`` methods take arrays and return Arrow string arrays), so
the builders format hundreds of thousands of boxes without a Python loop; the scalar helpers call
the same code on one row.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

from hoidata.errors import HoidataError
from hoidata.profiles.text import (
    BOX_END,
    BOX_START,
    REF_END,
    REF_START,
    BoxStyle,
    box_pattern,
    join_texts,
)
from hoidata.schemas import boxes as bx


class BoxFrame(StrEnum):
    RELATIVE_1000 = "relative-1000"  # round(x / width * 1000), clamped to [0, 1000]
    RESIZED_PIXELS = "resized-pixels"  # absolute pixels on the smart_resize'd image


@dataclass(frozen=True)
class ParsedPair:
    """One (person, verb, object) read back from a model's answer, boxes in canonical pixels."""

    person_box: np.ndarray | None
    object_box: np.ndarray | None
    verb: str | None = None  # taxonomy spelling (underscores)
    object: str | None = None


@dataclass(frozen=True)
class Profile:
    name: str
    factor: int  # smart_resize multiple: patch size × spatial merge
    min_pixels: int
    max_pixels: int
    frame: BoxFrame
    style: BoxStyle
    chat_template: str | None  # a template shipped in hoidata/profiles/templates, or None: the model's own

    # ---- sizes and frames -------------------------------------------------------------------------
    def resized(self, widths: Any, heights: Any) -> tuple[np.ndarray, np.ndarray]:
        """``(resized_widths, resized_heights)`` the processor will produce for these images."""
        rh, rw = bx.smart_resize_many(heights, widths, self.factor, self.min_pixels, self.max_pixels)
        return rw, rh

    def image_tokens(self, width: int, height: int) -> int:
        """Visual tokens the model spends on an image of this size."""
        rw, rh = self.resized([width], [height])
        return int(rw[0] // self.factor) * int(rh[0] // self.factor)

    def to_model(self, boxes: Any, widths: Any, heights: Any) -> np.ndarray:
        """Canonical pixel boxes → the integers a model of this family reads and writes (N, 4)."""
        b = bx.as_boxes(boxes)
        if self.frame is BoxFrame.RELATIVE_1000:
            return bx.quantize(bx.to_normalized(b, widths, heights, 1000), high=1000)
        rw, rh = self.resized(widths, heights)
        scaled = np.rint(bx.to_resized(b, widths, heights, rw, rh))
        scaled[:, 0::2] = np.clip(scaled[:, 0::2], 0, np.asarray(rw, np.float64).reshape(-1, 1))
        scaled[:, 1::2] = np.clip(scaled[:, 1::2], 0, np.asarray(rh, np.float64).reshape(-1, 1))
        return scaled.astype(np.int64)

    def from_model(self, boxes: Any, widths: Any, heights: Any) -> np.ndarray:
        """Model-frame boxes → canonical pixels (float64)."""
        b = bx.as_boxes(boxes)
        if self.frame is BoxFrame.RELATIVE_1000:
            return bx.from_normalized(b, widths, heights, 1000)
        rw, rh = self.resized(widths, heights)
        return bx.from_resized(b, widths, heights, rw, rh)

    def quantization_error(self, widths: Any, heights: Any) -> np.ndarray:
        """Largest canonical error (pixels) a to_model → from_model round trip can make, per image."""
        w, h = np.asarray(widths, np.float64), np.asarray(heights, np.float64)
        if self.frame is BoxFrame.RELATIVE_1000:
            return 0.5 * np.maximum(w, h) / 1000
        rw, rh = self.resized(w, h)
        return 0.5 * np.maximum(w / rw, h / rh)

    # ---- text -------------------------------------------------------------------------------------
    def box_texts(self, model_boxes: Any) -> pa.StringArray:
        """Model-frame integer boxes (N, 4) → one string each, as this family writes a box."""
        b = np.asarray(model_boxes, dtype=np.int64).reshape(-1, 4)
        c = [pa.array(b[:, i]).cast(pa.string()) for i in range(4)]
        if self.style is BoxStyle.JSON:
            parts: list[Any] = ["[", c[0], ", ", c[1], ", ", c[2], ", ", c[3], "]"]
        else:
            parts = [BOX_START + "(", c[0], ",", c[1], "),(", c[2], ",", c[3], ")" + BOX_END]
        return join_texts(parts, len(b))

    def box_text(self, model_box: Any) -> str:
        return self.box_texts([model_box])[0].as_py()

    def pair_texts(
        self,
        person_boxes: Any,
        object_boxes: Any,
        has_object: Any,
        verbs: pa.Array | None = None,
        objects: pa.Array | None = None,
    ) -> pa.StringArray:
        """One answer entry per interaction; verbs/objects (display names) may be left out (grounding)."""
        n = len(np.asarray(person_boxes).reshape(-1, 4))
        pb, ob = self.box_texts(person_boxes), self.box_texts(object_boxes)
        has_object = pa.array(np.asarray(has_object, dtype=bool))
        if self.style is BoxStyle.JSON:
            parts: list[Any] = ['{"person_bbox_2d": ', pb]
            if verbs is not None:
                parts += [', "verb": ', _json_strings(verbs)]
            if objects is not None:
                parts += [', "object": ', _json_strings(objects)]
            parts += [pc.if_else(has_object, join_texts([', "object_bbox_2d": ', ob], n), ""), "}"]
        else:
            parts = [REF_START + "person" + REF_END, pb]
            if verbs is not None:
                parts += [" ", verbs]
            if objects is not None:
                parts += [" ", REF_START, objects, REF_END]
            parts += [pc.if_else(has_object, ob, "")]
        return join_texts(parts, n)

    def join_entries(self, entries: pa.ListArray) -> pa.StringArray:
        """A list of answer entries per sample → the answer text (a JSON list, or one entry per line)."""
        if self.style is BoxStyle.JSON:
            return join_texts(["[", pc.binary_join(entries, ", "), "]"], len(entries))
        return pc.binary_join(entries, "\n")

    def answer_hint(self, labels: bool = True) -> str:
        """How to answer with pairs, as told to the model in a prompt (``labels``: with verb and object)."""
        if self.style is BoxStyle.JSON:
            frame = "0-1000 relative" if self.frame is BoxFrame.RELATIVE_1000 else "pixel"
            middle = ' "verb": ..., "object": ...,' if labels else ""
            return (
                f'Answer with a JSON list of {{"person_bbox_2d": [x1, y1, x2, y2],{middle} '
                f'"object_bbox_2d": [x1, y1, x2, y2]}} entries, {frame} coordinates.'
            )
        if labels:
            return "Answer with one line per interaction: the person and its box, the verb, the object and its box."
        return "Answer with one line per pair: the person and its box, then the object's box."

    # ---- parsing ----------------------------------------------------------------------------------
    def parse_boxes(self, text: str, width: float, height: float) -> np.ndarray:
        """Every box written in ``text`` (answer block preferred), as canonical pixels (N, 4)."""
        from hoidata.profiles.answers import answer_body  # numba: kept out of the data stages

        found = box_pattern(self.style).findall(answer_body(text))
        if not found:
            return np.zeros((0, 4))
        return self.from_model(np.array(found, dtype=np.float64), width, height)

    def parse_pairs(self, text: str, width: float, height: float) -> list[ParsedPair]:
        """HOI answer entries in ``text`` → canonical pairs; unreadable entries are skipped."""
        from hoidata.profiles.answers import parse_answers  # numba: kept out of the data stages

        a = parse_answers(self, [text], width, height)
        has_object, verbs, labels = a.has_object, a.verb.to_pylist(), a.object_label.to_pylist()
        return [
            ParsedPair(a.person[i], a.object[i] if has_object[i] else None, verbs[i], labels[i])
            for i in range(len(a.person))
        ]

    def with_budget(self, min_pixels: int | None = None, max_pixels: int | None = None) -> Profile:
        mn = self.min_pixels if min_pixels is None else min_pixels
        mx = self.max_pixels if max_pixels is None else max_pixels
        if not 0 < mn <= mx:
            raise HoidataError(f"pixel budget must satisfy 0 < min_pixels <= max_pixels, got {mn}..{mx}")
        if mx < self.factor**2:
            raise HoidataError(f"max_pixels must be at least {self.factor**2} for {self.name}")
        return replace(self, min_pixels=mn, max_pixels=mx)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "factor": self.factor,
            "min_pixels": self.min_pixels,
            "max_pixels": self.max_pixels,
            "frame": str(self.frame),
            "style": str(self.style),
            "chat_template": self.chat_template or "model",
        }


def _json_strings(values: pa.Array) -> pa.Array:
    """JSON string literals of ``values``, escaped once per distinct value."""
    encoded = values.dictionary_encode()
    literals = pa.array([orjson.dumps(v).decode() for v in encoded.dictionary.to_pylist()], pa.string())
    return literals.take(encoded.indices)


PROFILES: dict[str, Profile] = {
    "qwen2-vl": Profile(
        name="qwen2-vl",
        factor=28,
        min_pixels=4 * 28 * 28,
        max_pixels=1280 * 28 * 28,
        frame=BoxFrame.RELATIVE_1000,
        style=BoxStyle.TOKENS,
        chat_template="qwen2_5_vl_tools.jinja",  # same vision tokens as Qwen2.5-VL; stock template has no tools
    ),
    "qwen2.5-vl": Profile(
        name="qwen2.5-vl",
        factor=28,
        min_pixels=4 * 28 * 28,
        max_pixels=1280 * 28 * 28,
        frame=BoxFrame.RESIZED_PIXELS,
        style=BoxStyle.JSON,
        chat_template="qwen2_5_vl_tools.jinja",
    ),
    "qwen3-vl": Profile(
        name="qwen3-vl",
        factor=32,
        min_pixels=64 * 32 * 32,
        max_pixels=1280 * 32 * 32,
        frame=BoxFrame.RELATIVE_1000,
        style=BoxStyle.JSON,
        chat_template=None,  # Qwen3-VL's own template renders tools
    ),
}


def get_profile(name: str, min_pixels: int | None = None, max_pixels: int | None = None) -> Profile:
    """The named profile, with an optional pixel budget of the user's."""
    try:
        profile = PROFILES[name]
    except KeyError:
        raise HoidataError(f"unknown profile {name!r}; choose one of {', '.join(PROFILES)}") from None
    return profile.with_budget(min_pixels, max_pixels)
